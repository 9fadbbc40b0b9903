#!/usr/bin/env python
"""Play the recording rig's side of egg's closed-loop protocol with a simulated dataset's neurons.

Watches an exchange folder (docs/closed_loop.md); for every generation folder whose
``manifest.json`` is present and ``responses.csv`` is not, it reads the PNGs, converts them to
the ground truth's z-scored input (resize and channel conversion if needed), computes every
neuron's expected spike count, optionally draws Poisson spike counts, and writes
``responses.csv`` (image x channel, channel = neuron id) atomically. Stops when egg writes
``done.json`` and no generation is pending for ``--linger`` seconds, or after ``--idle-timeout``
seconds without work.

    python scripts/simulated_rig.py --exchange <run>/exchange --dataset dataset.h5 --noise poisson
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from egg_cli.errors import EggError
from egg_cli.io import write_csv
from egg_cli.synthesis.blackbox.closed_loop import DONE, IMAGE_COLUMN, MANIFEST, RESPONSES, read_manifest, read_png

log = logging.getLogger("simulated_rig")


def pending(exchange: Path) -> list[Path]:
    """Generation folders with a manifest and no responses yet, oldest first."""
    folders = [p.parent for p in exchange.glob(f"*/{MANIFEST}") if not (p.parent / RESPONSES).exists()]
    return sorted(folders, key=lambda p: (p / MANIFEST).stat().st_mtime)


def to_model_input(raw: np.ndarray, shape: tuple[int, int, int], mean: float, std: float) -> torch.Tensor:
    """Raw pixels (C, H, W) -> z-scored (1, *shape): bilinear resize and gray/RGB conversion as needed."""
    x = torch.as_tensor(raw, dtype=torch.float32)[None]
    c, h, w = shape
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    if x.shape[1] != c:
        x = x.mean(dim=1, keepdim=True) if c == 1 else x.expand(-1, c, -1, -1)
    return (x - mean) / std


@torch.no_grad()
def answer(folder: Path, neurons: torch.nn.Module, rng: np.random.Generator, noise: str, gain: float, skip: float) -> int:
    """Score one generation folder and write its responses file; returns the number of images."""
    manifest = read_manifest(folder)
    names = [row["image"] for row in manifest["images"]]
    shape = tuple(int(s) for s in neurons.input_shape)
    batch = torch.cat(
        [to_model_input(read_png(folder / name), shape, float(neurons.pixel_mean), float(neurons.pixel_std)) for name in names]
    )
    rates = neurons(batch).double().numpy() * gain
    responses = rng.poisson(rates).astype(np.float64) if noise == "poisson" else rates
    if skip > 0:
        responses[rng.random(len(names)) < skip] = np.nan
    channels = [str(i) for i in np.asarray(neurons.neuron_ids).tolist()]
    rows = [
        {IMAGE_COLUMN: name, **{ch: ("" if np.isnan(v) else float(v)) for ch, v in zip(channels, row)}}
        for name, row in zip(names, responses)
    ]
    write_csv(folder / RESPONSES, rows)
    return len(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--exchange", required=True, type=Path, help="folder shared with egg")
    parser.add_argument("--dataset", required=True, type=Path, help="simulated dataset.h5 (egg simulate)")
    parser.add_argument(
        "--noise",
        choices=("none", "poisson"),
        default="poisson",
        help="poisson: spike counts drawn around the expected counts (default); none: expected counts",
    )
    parser.add_argument("--gain", type=float, default=1.0, help="multiplies the expected spike counts (longer presentations)")
    parser.add_argument("--skip", type=float, default=0.0, help="fraction of images left unscored (NaN), e.g. fixation breaks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between looks at the exchange folder")
    parser.add_argument("--linger", type=float, default=2.0, help="seconds to stay after done.json with nothing pending")
    parser.add_argument("--idle-timeout", type=float, default=600.0, help="give up after this many seconds without work")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[rig] %(message)s")
    try:
        from egg_cli.simulation import load_ground_truth

        neurons = load_ground_truth(args.dataset, args.device)
    except EggError as err:
        print(f"simulated_rig: error: {err}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    args.exchange.mkdir(parents=True, exist_ok=True)
    last_work = time.monotonic()
    done_since: float | None = None
    answered = 0
    while True:
        folders = pending(args.exchange)
        for folder in folders:
            try:
                n = answer(folder, neurons, rng, args.noise, args.gain, args.skip)
            except EggError as err:
                print(f"simulated_rig: error: {err}", file=sys.stderr)
                return 2
            answered += 1
            log.info("%s: %d images answered", folder.name, n)
        now = time.monotonic()
        if folders:
            last_work, done_since = now, None
        elif (args.exchange / DONE).exists():
            done_since = done_since or now
            if now - done_since >= args.linger:
                log.info("session finished after %d generations", answered)
                return 0
        if now - last_work > args.idle_timeout:
            print(
                f"simulated_rig: error: no generation to answer in {args.exchange} for {args.idle_timeout:.0f} s", file=sys.stderr
            )
            return 1
        time.sleep(args.poll)


if __name__ == "__main__":
    sys.exit(main())
