"""Training throughput (images/s) of every core x readout config, measured in one run.

    OMP_NUM_THREADS=2 python scripts/bench_train.py [--size 64] [--neurons 100] [--batch 64] [--steps 5]

Each combination is built from egg_cli/configs/train_groups/model/{core,readout}/*.yaml and trained on
random images (forward, Poisson loss + penalties, backward, AdamW step). Rounds are interleaved
so that a change in machine load affects every combination alike; the median over rounds is
reported with the ratio to the default (stacked + attention). The load average is printed
because the CPU is shared.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from egg_cli.models import build_model
from egg_cli.models.training import poisson_loss

GROUPS = Path(__file__).resolve().parents[1] / "egg_cli" / "configs" / "train_groups" / "model"
DEFAULT = ("stacked", "attention")


def build(core: str, readout: str, size: int, neurons: int) -> torch.nn.Module:
    cfg = {
        "core": OmegaConf.load(GROUPS / "core" / f"{core}.yaml"),
        "readout": OmegaConf.load(GROUPS / "readout" / f"{readout}.yaml"),
        "output": {"_target_": "egg_cli.models.EluPlusOne"},
    }
    return build_model(cfg, (1, size, size), np.arange(neurons), 0.0, 1.0, np.full(neurons, 2.5)).train()


def step_seconds(model: torch.nn.Module, opt: torch.optim.Optimizer, images: torch.Tensor, responses: torch.Tensor) -> float:
    start = time.perf_counter()
    loss = poisson_loss(model(images), responses) + model.regularizer()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (square, grayscale)")
    parser.add_argument("--neurons", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (one step each, after one warm-up step)")
    parser.add_argument("--cores", nargs="*", default=sorted(p.stem for p in (GROUPS / "core").glob("*.yaml")))
    parser.add_argument("--readouts", nargs="*", default=sorted(p.stem for p in (GROUPS / "readout").glob("*.yaml")))
    parser.add_argument("--out", type=Path, help="also write the table as JSON")
    args = parser.parse_args()

    torch.manual_seed(0)
    combos = list(itertools.product(args.cores, args.readouts))
    images = torch.randn(args.batch, 1, args.size, args.size)
    responses = torch.poisson(torch.full((args.batch, args.neurons), 2.5))
    models, opts = {}, {}
    for combo in combos:
        models[combo] = build(*combo, args.size, args.neurons)
        opts[combo] = torch.optim.AdamW([p for p in models[combo].parameters() if p.requires_grad], lr=1e-3)
        step_seconds(models[combo], opts[combo], images, responses)  # warm-up
    load_start = os.getloadavg()
    times: dict[tuple[str, str], list[float]] = {c: [] for c in combos}
    for _ in range(args.steps):
        for combo in combos:
            times[combo].append(step_seconds(models[combo], opts[combo], images, responses))
    load_end = os.getloadavg()

    rate = {c: args.batch / statistics.median(t) for c, t in times.items()}
    ref = rate.get(DEFAULT)
    print(
        f"training throughput, {args.size}x{args.size} grayscale, {args.neurons} neurons, batch {args.batch}, "
        f"{torch.get_num_threads()} torch threads, median of {args.steps} interleaved steps"
    )
    print(f"load average (1 min) {load_start[0]:.2f} at start, {load_end[0]:.2f} at end on {os.cpu_count()} CPUs")
    print(f"{'core':<14}{'readout':<12}{'params':>10}{'images/s':>11}{'vs default':>12}")
    rows = []
    for combo in combos:
        n_params = sum(p.numel() for p in models[combo].parameters() if p.requires_grad)
        ratio = rate[combo] / ref if ref else float("nan")
        print(f"{combo[0]:<14}{combo[1]:<12}{n_params:>10}{rate[combo]:>11.1f}{ratio:>12.2f}")
        rows.append(
            {
                "core": combo[0],
                "readout": combo[1],
                "trainable_parameters": n_params,
                "images_per_second": rate[combo],
                "ratio_to_default": ratio,
            }
        )
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "threads": torch.get_num_threads(),
                    "load_start": load_start,
                    "load_end": load_end,
                    "size": args.size,
                    "batch": args.batch,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
