#!/usr/bin/env python
"""Benchmark of egg's searchlight RSA against rsatoolbox 0.3.2 on the same data, in one run.

Prints, for one random volume (ellipsoid mask, K conditions, radius in voxels):
(a) searchlight construction: rsatoolbox get_volume_searchlight vs egg volume_searchlights;
(b) searchlight RDMs: rsatoolbox get_searchlight_RDMs vs egg RdmCalculator (and the largest
    difference between the two, which must be below 1e-6);
(c) model comparison of all searchlight RDMs with M model RDMs: rsatoolbox
    evaluate_models_searchlight(eval_fixed) on a subset of searchlights (it is slow; the
    per-searchlight ratio is what counts) and rsatoolbox.rdm.compare on all of them, vs egg's
    Comparison (prepare + one matrix product).

    OMP_NUM_THREADS=2 python scripts/bench_searchlight.py [--shape 30 36 30] [--conditions 16]
        [--radius 3] [--models 12] [--comparison spearman] [--eval-centres 2000]

Absolute times depend on the machine and its load; the ratios are what this prints for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np

RSA_METHOD = {"spearman": "spearman", "pearson": "corr", "tau-a": "tau-a"}


def timed(fn):
    """Run ``fn`` once and return (result, seconds)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[30, 36, 30])
    parser.add_argument("--conditions", type=int, default=16)
    parser.add_argument("--radius", type=float, default=3.0, help="voxels (strictly below, both libraries)")
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--distance", default="correlation", choices=["correlation", "euclidean"])
    parser.add_argument("--comparison", default="spearman", choices=sorted(RSA_METHOD))
    parser.add_argument("--eval-centres", type=int, default=2000, help="searchlights for evaluate_models_searchlight")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from rsatoolbox.inference import eval_fixed
    from rsatoolbox.model import ModelFixed
    from rsatoolbox.rdm import RDMs, compare
    from rsatoolbox.util.searchlight import evaluate_models_searchlight, get_searchlight_RDMs, get_volume_searchlight

    from egg_cli.rsm.compare import Comparison
    from egg_cli.rsm.fmri_simulation import ellipsoid_mask
    from egg_cli.rsm.searchlight import RdmCalculator, volume_searchlights
    from egg_cli.rsm.volume import BrainPatterns

    rng = np.random.default_rng(args.seed)
    mask = ellipsoid_mask(args.shape, 0.9)
    k = args.conditions
    data = rng.standard_normal((k, int(mask.sum())))
    full = np.zeros((k, mask.size))
    full[:, np.flatnonzero(mask.ravel())] = data
    patterns = BrainPatterns(data=data, conditions=np.arange(k), runs=None, mask=mask, affine=np.eye(4))
    models = rng.random((args.models, k * (k - 1) // 2))

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        (rsa_centres, rsa_neighbours), t_rsa_sl = timed(lambda: get_volume_searchlight(mask, radius=args.radius, threshold=1.0))
    sl, t_egg_sl = timed(lambda: volume_searchlights(mask, args.radius, None, threshold=1.0, min_voxels=1))
    assert np.array_equal(np.ravel_multi_index(tuple(sl.center_coordinates.T), mask.shape), rsa_centres)

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rsa_rdms, t_rsa_rdm = timed(
            lambda: get_searchlight_RDMs(full, rsa_centres, rsa_neighbours, np.arange(k), method=args.distance, verbose=False)
        )
    (egg_rdms, ok), t_egg_rdm = timed(lambda: RdmCalculator(patterns, sl, args.distance).all_rdms())
    rdm_diff = float(np.abs(egg_rdms - rsa_rdms.dissimilarities).max())

    cmp = Comparison(args.comparison)
    egg_stats, t_egg_cmp = timed(lambda: cmp.score(cmp.prepare_brain(egg_rdms), cmp.prepare_models(models)))
    model_rdms = RDMs(models)
    rsa_stats, t_rsa_cmp = timed(lambda: compare(model_rdms, rsa_rdms, method=RSA_METHOD[args.comparison]).T)
    cmp_diff = float(np.abs(egg_stats - rsa_stats).max())

    n_eval = min(args.eval_centres, sl.n_centers)
    subset = rsa_rdms[np.arange(n_eval)]
    fixed = [ModelFixed(f"m{i}", model_rdms[i]) for i in range(args.models)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        results, t_rsa_eval = timed(
            lambda: evaluate_models_searchlight(subset, fixed, eval_fixed, method=RSA_METHOD[args.comparison])
        )
    eval_stats = np.array([r.evaluations.reshape(-1, args.models).mean(0) for r in results])
    eval_diff = float(np.abs(eval_stats - egg_stats[:n_eval]).max())
    t_rsa_eval_all = t_rsa_eval * sl.n_centers / n_eval

    print(
        f"data: {sl.n_centers} searchlights of {len(sl.offsets)} voxels, {k} conditions, {args.models} models, "
        f"distance={args.distance}, comparison={args.comparison}"
    )
    print(f"(a) searchlights    rsatoolbox {t_rsa_sl:8.2f} s   egg {t_egg_sl:7.3f} s   ratio {t_rsa_sl / t_egg_sl:8.1f}x")
    print(
        f"(b) RDMs            rsatoolbox {t_rsa_rdm:8.2f} s   egg {t_egg_rdm:7.3f} s   ratio {t_rsa_rdm / t_egg_rdm:8.1f}x   "
        f"max |diff| {rdm_diff:.2e}"
    )
    print(
        f"(c) rdm.compare     rsatoolbox {t_rsa_cmp:8.2f} s   egg {t_egg_cmp:7.3f} s   ratio {t_rsa_cmp / t_egg_cmp:8.1f}x   "
        f"max |diff| {cmp_diff:.2e}"
    )
    print(
        f"(c) evaluate_models_searchlight on {n_eval} searchlights {t_rsa_eval:.2f} s -> {t_rsa_eval_all:.1f} s for all; "
        f"ratio {t_rsa_eval_all / t_egg_cmp:8.1f}x   max |diff| {eval_diff:.2e}"
    )
    print(
        f"RDMs + comparison   ratio {(t_rsa_rdm + t_rsa_eval_all) / (t_egg_rdm + t_egg_cmp):.1f}x "
        f"(rsatoolbox searchlight path) / {(t_rsa_rdm + t_rsa_cmp) / (t_egg_rdm + t_egg_cmp):.1f}x (rdm.compare)"
    )


if __name__ == "__main__":
    main()
