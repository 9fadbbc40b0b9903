#!/usr/bin/env python
"""Benchmark of egg's first-level GLM against nilearn on the same data, in one run.

Simulates R runs of N volumes over V voxels (K conditions, each shown ``--repeats`` times per run
in random order, six motion-like confounds, AR(1) noise), then per run:

* egg: ``egg_cli.rsm.glm.first_level`` (design + fit + one t-value map per condition);
* nilearn: ``make_first_level_design_matrix`` + ``run_glm`` + ``compute_contrast`` per condition
  (the arrays FirstLevelModel works on after masking), with the same noise model.

Prints both times, their ratio, and the largest difference of the t-values (OLS: equal to 1e-6).

    OMP_NUM_THREADS=2 python scripts/bench_glm.py [--voxels 200000] [--runs 4] [--scans 250]
        [--conditions 16] [--noise-model ar1] [--skip-nilearn]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from egg_cli.rsm.design import Events, frame_times, lsa_design
from egg_cli.rsm.glm import GlmConfig, first_level

TR = 2.0
CONFOUNDS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def simulate_run(rng: np.random.Generator, args: argparse.Namespace) -> tuple[Events, np.ndarray, np.ndarray]:
    """Events, confounds (N, 6) and float32 data (N, V) of one run."""
    names = [f"image_{k:02d}" for k in range(args.conditions)]
    trial_type = rng.permutation(np.repeat(names, args.repeats))
    onset = 10.0 + np.cumsum(rng.uniform(4.0, 8.0, len(trial_type)))
    keep = onset < (args.scans - 12) * TR
    events = Events(onset[keep], np.ones(keep.sum()), trial_type[keep])
    confounds = 0.05 * rng.standard_normal((args.scans, len(CONFOUNDS))).cumsum(0)
    x = lsa_design(args.scans, TR, events, names, confounds, CONFOUNDS).matrix
    data = np.empty((args.scans, args.voxels), dtype=np.float32)
    previous = np.zeros(args.voxels, dtype=np.float32)
    for t in range(args.scans):
        previous = 0.4 * previous + rng.standard_normal(args.voxels, dtype=np.float32)
        data[t] = previous
    data += (x @ rng.standard_normal((x.shape[1], args.voxels)).astype(np.float32)).astype(np.float32) + 100
    return events, confounds, data


def egg_glm(runs, names, noise_model: str) -> list[np.ndarray]:
    cfg = GlmConfig(noise_model=noise_model, output="t")
    return [first_level(data, TR, events, names, cfg, confounds, CONFOUNDS)[0] for events, confounds, data in runs]


def nilearn_glm(runs, names, noise_model: str) -> list[np.ndarray]:
    import pandas as pd
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.first_level import make_first_level_design_matrix, run_glm

    out = []
    for events, confounds, data in runs:
        table = pd.DataFrame({"onset": events.onset, "duration": events.duration, "trial_type": events.trial_type})
        design = make_first_level_design_matrix(
            frame_times(len(data), TR),
            table,
            hrf_model="glover",
            drift_model="cosine",
            high_pass=0.01,
            add_regs=confounds,
            add_reg_names=CONFOUNDS,
        )
        labels, results = run_glm(data, design.to_numpy(), noise_model=noise_model)
        columns = list(design.columns)
        maps = []
        for name in names:
            contrast = np.zeros(len(columns))
            contrast[columns.index(name)] = 1.0
            maps.append(compute_contrast(labels, results, contrast).stat())
        out.append(np.stack(maps))
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voxels", type=int, default=200000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--scans", type=int, default=250)
    parser.add_argument("--conditions", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--noise-model", default="ar1", choices=["ols", "ar1"])
    parser.add_argument("--skip-nilearn", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    runs = [simulate_run(rng, args) for _ in range(args.runs)]
    names = [f"image_{k:02d}" for k in range(args.conditions)]
    print(f"{args.runs} runs x {args.scans} volumes, {args.voxels} voxels, {args.conditions} conditions, {args.noise_model}")
    ours, t_egg = timed(lambda: egg_glm(runs, names, args.noise_model))
    print(f"egg      {t_egg:8.2f} s")
    if args.skip_nilearn:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, t_nilearn = timed(lambda: nilearn_glm(runs, names, args.noise_model))
    print(f"nilearn  {t_nilearn:8.2f} s")
    print(f"ratio nilearn / egg: {t_nilearn / t_egg:.2f}")
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
    print(f"largest |t_egg - t_nilearn|: {diff:.3g}" + (" (ols: must be < 1e-6)" if args.noise_model == "ols" else ""))


if __name__ == "__main__":
    main()
