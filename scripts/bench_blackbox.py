#!/usr/bin/env python
"""Benchmark of gradient-free synthesis: XDream and CMA-ES against the GA MEI and natural images.

On one model and its dataset, for N neurons (default 16, the best by test correlation), with a
budget of image evaluations (default 3,000) per neuron, this measures the noise-free activation
of the final image of each gradient-free method, relative to

- the GA MEI (gradient ascent on pixels, 1000 steps, same contrast), and
- the best natural image of the dataset at the same contrast,

at several Poisson noise levels (expected spikes for each neuron's best natural image; `none`
= no noise). With a simulated dataset the same ratios are also computed in its ground-truth
neurons. All numbers come from one run on the same neurons.

    python scripts/bench_blackbox.py --model outputs/train/<run>/model.pt --dataset sim/dataset.h5
    python scripts/bench_blackbox.py --model ground_truth --dataset sim/dataset.h5   # the simulated neurons themselves

Writes (with --out) bench_blackbox.csv (per neuron), bench_blackbox.json (the table) and
bench_blackbox.png (median best-so-far curves).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

METHODS = {
    "xdream": ("xdream", {}),
    "cmaes": ("cmaes", {}),
    "cmaes_sphere": ("cmaes", {"variant": "sphere"}),
}


def parse_noise(text: str) -> list[float | None]:
    """``none,20,5`` -> [None, 20.0, 5.0]."""
    return [None if t.strip().lower() in ("none", "0", "") else float(t) for t in text.split(",")]


def build_method(name: str, budget: int, generator: dict[str, Any], noise: float | None, reference: np.ndarray):
    from egg_cli.synthesis import CMAES, XDream

    kind, extra = METHODS[name]
    noise_options = {} if noise is None else {"max_count": noise, "reference_rates": reference.tolist()}
    cls = XDream if kind == "xdream" else CMAES
    return cls(budget=budget, generator=generator, noise=noise_options, **extra)


def ratio(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.where(reference > 0, values / np.where(reference > 0, reference, 1.0), np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        nargs="+",
        required=True,
        help="checkpoint(s) (several: an ensemble), or `ground_truth` for the dataset's simulated neurons",
    )
    parser.add_argument("--dataset", default=None, help="dataset.h5 (default: the one the model was trained on)")
    parser.add_argument("--neurons", type=int, default=16, help="the N best neurons by test correlation (else the first N)")
    parser.add_argument("--budget", type=int, default=3000, help="image evaluations per neuron")
    parser.add_argument("--noise", default="none,20,5", help="expected spikes for the best natural image; `none`: no noise")
    parser.add_argument("--methods", default="xdream,cmaes,cmaes_sphere", help=f"subset of {','.join(METHODS)}")
    parser.add_argument("--generator", default="pixel", choices=("pixel", "prior"), help="code generator")
    parser.add_argument("--grid", type=int, default=16, help="pixel generator grid rows")
    parser.add_argument("--ga-steps", type=int, default=1000)
    parser.add_argument("--ga-seeds", type=int, default=1, help="GA seeds per neuron (best kept, as in the EGG paper: 3)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for CSV, JSON and PNG")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from egg_cli.data import load_dataset
    from egg_cli.diffusion import prior_config
    from egg_cli.runtime import resolve_device, seed_everything
    from egg_cli.synthesis.adapter import contrast_norm
    from egg_cli.synthesis.ga import GradientAscent
    from egg_cli.synthesis.objectives import NeuronObjective, select_neurons
    from egg_cli.synthesis.reference import natural_reference
    from egg_cli.synthesis.runner import rescore, synthesize

    device = resolve_device(args.device)
    seed_everything(args.seed)
    truth = None
    if args.model == ["ground_truth"]:
        if args.dataset is None:
            parser.error("--model ground_truth needs --dataset (a simulated dataset.h5)")
        from egg_cli.simulation import load_ground_truth

        model = load_ground_truth(args.dataset, device)
        model_name = f"ground truth of {args.dataset}"
    else:
        from egg_cli.models import load_model

        model = load_model(args.model if len(args.model) > 1 else args.model[0], device)
        model_name = " ".join(args.model)
    dataset_path = args.dataset or getattr(model, "dataset_path", None)
    if dataset_path is None:
        parser.error("the model records no dataset: pass --dataset")
    dataset = load_dataset(dataset_path)
    if dataset.has_ground_truth and args.model != ["ground_truth"]:
        from egg_cli.simulation import load_ground_truth

        truth = load_ground_truth(dataset_path, device)
    corr = getattr(model, "test_correlation", None)
    neurons = select_neurons(f"top_{args.neurons}", model) if corr is not None else list(range(args.neurons))
    objective = NeuronObjective(model, neurons)
    norm = contrast_norm(model.input_shape, 0.25)
    images = np.asarray(dataset.images)
    if args.generator == "pixel":
        generator = {"_target_": "egg_cli.synthesis.blackbox.generators.pixel_generator", "grid": args.grid}
    else:
        generator = {"_target_": "egg_cli.synthesis.blackbox.generators.prior_generator", "prior": prior_config("default")}

    start = time.perf_counter()
    natural = natural_reference(objective, images, norm, device, top_k=1, progress=False)["score"][:, 0].astype(np.float64)
    ga = synthesize(GradientAscent(steps=args.ga_steps), objective, list(range(args.ga_seeds)), device, progress=False)
    ga_best = ga.scores["generating"].max(axis=1).astype(np.float64)
    seconds = {"ga": time.perf_counter() - start}
    print(f"done GA MEIs and natural reference: {seconds['ga']:.0f} s", file=sys.stderr, flush=True)
    truth_ref = None
    if truth is not None:
        truth_objective = objective.with_model(truth)
        truth_natural = natural_reference(truth_objective, images, norm, device, top_k=1, progress=False)["score"][:, 0]
        ga_truth = rescore(objective, truth, ga, device)[np.arange(len(neurons)), ga.scores["generating"].argmax(axis=1)]
        truth_ref = {"natural": truth_natural.astype(np.float64), "ga": ga_truth.astype(np.float64)}

    rows: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = []
    curves: dict[str, np.ndarray] = {}
    for noise in parse_noise(args.noise):
        for name in args.methods.split(","):
            method = build_method(name, args.budget, generator, noise, natural)
            t0 = time.perf_counter()
            result = synthesize(method, objective, [args.seed], device, progress=False)
            seconds[f"{name}@{noise}"] = time.perf_counter() - t0
            print(f"done {name} noise={noise}: {seconds[f'{name}@{noise}']:.0f} s", file=sys.stderr, flush=True)
            act = result.scores["generating"][:, 0].astype(np.float64)
            vs_ga, vs_nat = ratio(act, ga_best), ratio(act, natural)
            label = "none" if noise is None else f"{noise:g}"
            entry = {
                "method": name,
                "noise": label,
                "evaluations": int(result.extras["evaluations"][0, 0]),
                "median_vs_ga": float(np.nanmedian(vs_ga)),
                "median_vs_natural": float(np.nanmedian(vs_nat)),
                "fraction_above_natural": float(np.mean(act > natural)),
                "seconds": seconds[f"{name}@{noise}"],
            }
            if truth_ref is not None:
                act_truth = rescore(objective, truth, result, device)[:, 0].astype(np.float64)
                entry["truth_median_vs_ga"] = float(np.nanmedian(ratio(act_truth, truth_ref["ga"])))
                entry["truth_median_vs_natural"] = float(np.nanmedian(ratio(act_truth, truth_ref["natural"])))
            table.append(entry)
            curves[f"{name} noise {label}"] = np.nanmedian(ratio(result.trace[:, 0, :], natural[:, None]), axis=0)
            for k, neuron in enumerate(neurons):
                rows.append(
                    {
                        "method": name,
                        "noise": label,
                        "neuron_index": neuron,
                        "activation": act[k],
                        "ga_mei": ga_best[k],
                        "best_natural": natural[k],
                        "vs_ga": vs_ga[k],
                        "vs_natural": vs_nat[k],
                        "best_observed": float(result.extras["best_observed_score"][k, 0]),
                    }
                )

    print(f"model: {model_name}; dataset: {dataset_path}; {len(neurons)} neurons {neurons}")
    print(
        f"budget {args.budget} images per neuron; generator {generator}; GA {args.ga_steps} steps x {args.ga_seeds} seed(s); "
        f"contrast L2 norm {norm:g}; device {device}"
    )
    print(f"medians over neurons: GA MEI / best natural = {np.median(ratio(ga_best, natural)):.3f}")
    header = f"{'method':<13}{'noise':>6}{'act/GA':>9}{'act/nat':>9}{'>nat':>6}"
    if truth_ref is not None:
        header += f"{'GT act/GA':>11}{'GT act/nat':>12}"
    print(header + f"{'seconds':>9}")
    for e in table:
        line = f"{e['method']:<13}{e['noise']:>6}{e['median_vs_ga']:>9.3f}{e['median_vs_natural']:>9.3f}{e['fraction_above_natural']:>6.2f}"
        if truth_ref is not None:
            line += f"{e['truth_median_vs_ga']:>11.3f}{e['truth_median_vs_natural']:>12.3f}"
        print(line + f"{e['seconds']:>9.1f}")
    print(f"GA: {seconds['ga']:.1f} s (natural reference included)")
    if args.out:
        from egg_cli.io import save_figure, write_csv, write_json

        out = Path(args.out)
        write_csv(out / "bench_blackbox.csv", rows)
        write_json(
            out / "bench_blackbox.json",
            {
                "model": model_name,
                "dataset": str(dataset_path),
                "neurons": neurons,
                "budget": args.budget,
                "generator": generator,
                "ga_steps": args.ga_steps,
                "ga_vs_natural_median": float(np.median(ratio(ga_best, natural))),
                "table": table,
                "seconds": seconds,
            },
        )
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4))
        for key, curve in curves.items():
            ax.plot(np.arange(1, len(curve) + 1) / len(curve) * args.budget, curve, label=key, lw=1.2)
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xlabel("image evaluations")
        ax.set_ylabel("median best-so-far / best natural (as scored)")
        ax.legend(fontsize=7, frameon=False)
        save_figure(fig, out / "bench_blackbox.png")


if __name__ == "__main__":
    main()
