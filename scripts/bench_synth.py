#!/usr/bin/env python
"""Benchmark of `egg synth`: ratios measured in one run on the same model and neurons.

(a) time per MEI of EGG (50 and 100 respaced ancestral steps, and few-step deterministic DDIM,
    default 20 steps at 100/20 times the energy scale) over GA (1000 steps), with the mean
    activation each method reaches in the model (and the best natural image at the same contrast,
    if a dataset is given) and, for a simulated dataset, in the ground-truth neurons; then the
    few-step / 100-step activation ratio and the few-step against GA ground-truth rates per neuron
    (median ratio, Wilcoxon signed-rank);
(b) time of N neurons (default 32) in one batched GA call over N single-neuron calls, with the
    largest difference between the batched and the single images (independence check).

    python scripts/bench_synth.py --model outputs/train/<run>/model.pt --prior default \
        [--dataset outputs/simulate/<run>/dataset.h5] [--mei-neurons 4] [--batch-neurons 32]

Absolute times depend on the machine; the ratios are what this prints for comparison.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def timed(fn):
    """Run ``fn`` once and return (result, seconds)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True, help="checkpoint(s); several form an ensemble")
    parser.add_argument("--prior", default="default", help="diffusion prior for EGG (default, spectral, a path)")
    parser.add_argument("--dataset", default=None, help="dataset.h5 for the best-natural-image reference")
    parser.add_argument("--mei-neurons", type=int, default=4, help="neurons for (a), the best by test correlation")
    parser.add_argument("--batch-neurons", type=int, default=32, help="neurons for (b)")
    parser.add_argument("--ga-steps", type=int, default=1000)
    parser.add_argument("--batch-ga-steps", type=int, default=50, help="GA steps per call in (b)")
    parser.add_argument("--energy-scale", type=float, default=5.0)
    parser.add_argument("--few-steps", type=int, default=20, help="respaced steps of the few-step DDIM EGG run")
    parser.add_argument(
        "--few-energy-scale",
        type=float,
        default=None,
        help="its energy scale (default: --energy-scale x 100 / --few-steps, the 100-step chain's total guidance)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    from egg_cli.diffusion import prior_config
    from egg_cli.models import load_model
    from egg_cli.runtime import resolve_device, seed_everything
    from egg_cli.synthesis import EnergyGuidedDiffusion, GradientAscent, NeuronObjective, natural_reference, synthesize
    from egg_cli.synthesis.objectives import select_neurons

    device = resolve_device(args.device)
    seed_everything(args.seed)
    model = load_model(args.model if len(args.model) > 1 else args.model[0], device)
    ranked = (
        select_neurons(f"top_{model.n_neurons}", model)
        if getattr(model, "test_correlation", None) is not None
        else list(range(model.n_neurons))
    )
    mei_neurons = ranked[: args.mei_neurons]
    seeds = [args.seed]
    objective = NeuronObjective(model, mei_neurons)
    n = len(mei_neurons)
    print(
        f"model {args.model} ({model.n_neurons} neurons, input {model.input_shape}), device {device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"(a) {n} neurons {mei_neurons}, seed {args.seed}, one batch per method")

    runs = {}
    ga = GradientAscent(steps=args.ga_steps)
    runs["ga"], _ = timed(lambda: synthesize(ga, objective, seeds, device, batch_size=n, progress=False))
    few = f"egg{args.few_steps}_ddim"
    few_scale = args.energy_scale * 100 / args.few_steps if args.few_energy_scale is None else args.few_energy_scale
    for name, steps, scale, ddim in (
        ("egg50", 50, args.energy_scale, False),
        ("egg100", 100, args.energy_scale, False),
        (few, args.few_steps, few_scale, True),
    ):
        egg = EnergyGuidedDiffusion(prior=prior_config(args.prior), steps=steps, energy_scale=scale, ddim=ddim)
        egg.prepare(objective, model.input_shape, device)  # load the prior outside the timing
        runs[name], _ = timed(lambda: synthesize(egg, objective, seeds, device, batch_size=n, progress=False))  # noqa: B023 (called at once)
    natural = None
    if args.dataset:
        from egg_cli.data import load_dataset

        data = load_dataset(args.dataset)
        natural = natural_reference(
            objective, np.asarray(data.images), runs["ga"].adapter["norm"], device, top_k=1, progress=False
        )["score"][:, 0]
    truth = _ground_truth_rates(args.dataset, model, mei_neurons, runs) if args.dataset else None
    report = {"device": str(device), "neurons": mei_neurons, "per_mei": {}}
    for name, result in runs.items():
        per_mei = float(result.seconds_per_image.mean())
        act = result.scores["generating"][:, 0]
        entry = {
            "seconds_per_mei": per_mei,
            "steps": int(result.trace.shape[2]),
            "activation_mean": float(act.mean()),
            "activations": act.tolist(),
        }
        if truth is not None:
            entry.update(ground_truth_mean=float(truth[name].mean()), ground_truth=truth[name].tolist())
        if natural is not None:
            ratios = act / natural
            entry.update(
                ratio_to_best_natural_mean=float(np.mean(ratios)),
                ratio_to_best_natural_min=float(np.min(ratios)),
                n_above_best_natural=int(np.sum(ratios > 1)),
                ratios_to_best_natural=ratios.tolist(),
            )
        report["per_mei"][name] = entry
    base = report["per_mei"]["ga"]["seconds_per_mei"]
    for name, entry in report["per_mei"].items():
        ratio = entry["seconds_per_mei"] / base
        extra = (
            f", activation/best natural mean {entry['ratio_to_best_natural_mean']:.2f} "
            f"min {entry['ratio_to_best_natural_min']:.2f} ({entry['n_above_best_natural']}/{n} above 1)"
            if natural is not None
            else ""
        )
        if truth is not None:
            extra += f", ground-truth rate {entry['ground_truth_mean']:.3f}"
        print(
            f"  {name:12s} {entry['steps']:5d} steps: {entry['seconds_per_mei']:8.3f} s/MEI, "
            f"time / GA = {ratio:.3f}, mean activation {entry['activation_mean']:.3f}{extra}"
        )
        entry["time_over_ga"] = ratio
    per_mei = report["per_mei"]
    few_ratio = float(np.mean(np.asarray(per_mei[few]["activations"]) / np.asarray(per_mei["egg100"]["activations"])))
    report["few_step"] = {
        "name": few,
        "activation_over_egg100": few_ratio,
        "time_over_egg100": per_mei[few]["seconds_per_mei"] / per_mei["egg100"]["seconds_per_mei"],
        "ga_time_over_few": base / per_mei[few]["seconds_per_mei"],
    }
    line = (
        f"  few-step: {few} / egg100 activation (mean of per-neuron ratios) {few_ratio:.3f}; "
        f"GA time / {few} time = {report['few_step']['ga_time_over_few']:.1f}x"
    )
    if truth is not None:
        report["few_step"]["ground_truth_over_egg100"] = (
            per_mei[few]["ground_truth_mean"] / per_mei["egg100"]["ground_truth_mean"]
        )
        report["few_step"]["ground_truth_over_ga"] = per_mei[few]["ground_truth_mean"] / per_mei["ga"]["ground_truth_mean"]
        line += f"; ground-truth rate {few} / egg100 {report['few_step']['ground_truth_over_egg100']:.3f}, "
        line += f"{few} / GA {report['few_step']['ground_truth_over_ga']:.3f}"
        for other in ("egg100", "ga"):
            paired = paired_ground_truth(truth[few], truth[other])
            report["few_step"][f"ground_truth_vs_{other}"] = paired
            line += (
                f"\n  ground truth per neuron, {few} vs {other}: median ratio {paired['median_ratio']:.3f}, "
                f"{few} higher for {paired['higher']}/{n}, Wilcoxon p {paired['wilcoxon_p']:.2g}"
            )
    print(line)
    if natural is not None:
        print(f"  best natural image at the same contrast: mean activation {float(natural.mean()):.3f}")
        report["natural_best_mean"] = float(natural.mean())

    k = min(args.batch_neurons, model.n_neurons)
    neurons = ranked[:k]
    method = GradientAscent(steps=args.batch_ga_steps)
    print(f"(b) {k} neurons, GA {args.batch_ga_steps} steps: one batched call vs {k} single-neuron calls")
    batched, t_batched = timed(
        lambda: synthesize(method, NeuronObjective(model, neurons), seeds, device, batch_size=k, progress=False)
    )
    singles, t_singles = timed(
        lambda: [synthesize(method, NeuronObjective(model, [u]), seeds, device, batch_size=1, progress=False) for u in neurons]
    )
    diff = max(float(np.abs(s.images[0, 0] - batched.images[p, 0]).max()) for p, s in enumerate(singles))
    print(
        f"  batched {t_batched:.2f} s, singles {t_singles:.2f} s: batched / singles = {t_batched / t_singles:.3f} "
        f"(speed-up {t_singles / t_batched:.1f}x); max |image difference| {diff:.2e}"
    )
    report["batching"] = {
        "neurons": k,
        "steps": args.batch_ga_steps,
        "batched_seconds": t_batched,
        "singles_seconds": t_singles,
        "batched_over_singles": t_batched / t_singles,
        "max_abs_image_difference": diff,
    }
    if args.json:
        from egg_cli.io import write_json

        write_json(args.json, report)


def paired_ground_truth(rates: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Per-neuron comparison of two methods' ground-truth rates: the median ratio (a rate of 0 in
    the reference gives no ratio), how many neurons the first drives more, two-sided Wilcoxon p."""
    from scipy.stats import wilcoxon

    ok = reference > 0
    diff = rates - reference
    p = float(wilcoxon(rates, reference).pvalue) if np.any(diff != 0) else 1.0
    return {
        "median_ratio": float(np.median(rates[ok] / reference[ok])) if ok.any() else float("nan"),
        "higher": int(np.sum(diff > 0)),
        "wilcoxon_p": p,
    }


def _ground_truth_rates(dataset: str, model, neurons: list[int], runs: dict) -> dict[str, np.ndarray] | None:
    """Each run's images scored by the simulated neurons of ``dataset`` (None without a ground truth):
    per MEI, the rate of the ground-truth neuron with the model neuron's id."""
    import h5py

    from egg_cli.data.schema import GROUND_TRUTH_GROUP
    from egg_cli.simulation import load_ground_truth

    with h5py.File(dataset, "r") as f:
        if GROUND_TRUTH_GROUP not in f:
            return None
    truth = load_ground_truth(dataset)
    index = {int(i): k for k, i in enumerate(np.asarray(truth.neuron_ids))}
    columns = [index[int(np.asarray(model.neuron_ids)[u])] for u in neurons]
    rates = {}
    with torch.no_grad():
        for name, result in runs.items():
            images = torch.as_tensor(np.asarray(result.images[:, 0]), dtype=torch.float32)  # (neurons, C, H, W), seed 0
            rates[name] = truth(images).numpy()[np.arange(len(neurons)), columns]
    return rates


if __name__ == "__main__":
    main()
