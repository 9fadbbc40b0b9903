"""``egg info <path>``: summarize a dataset (HDF5 file or Sensorium folder) or an encoding model
(a ``model.pt`` written by ``egg train``, or its run folder).

Not a Hydra app: it only reads. Bad input prints one line and exits 2 (``--debug`` or
``HYDRA_FULL_ERROR=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from egg_cli.cli.app import debug_requested, fail
from egg_cli.data import NeuralDataset, load_dataset
from egg_cli.errors import EggError
from egg_cli.metrics import oracle_correlation, repeat_groups, split_half_reliability
from egg_cli.simulation.grating_likeness import likeness_summary


def dataset_report(path: Path) -> dict[str, Any]:
    """Summary numbers of a dataset, including reliability when images were repeated."""
    ds = load_dataset(path)
    report = ds.summary()
    report["kind"] = "dataset"
    report["format"] = ds.attrs.get("format", "unknown")
    for key in ("source", "seed", "egg_version"):
        if key in ds.attrs:
            report[key] = ds.attrs[key]
    report["neuron_ids"] = [_scalar(ds.neuron_ids[0]), _scalar(ds.neuron_ids[-1])]
    report["responses"] = {
        "mean": float(ds.responses.mean()),
        "min": float(ds.responses.min()),
        "max": float(ds.responses.max()),
    }
    report["reliability"] = _reliability(ds)
    ratio = ds.neurons.get("grating_likeness")
    finite = ratio is not None and np.isfinite(np.asarray(ratio, dtype=np.float64)).any()
    report["grating_likeness"] = likeness_summary(ratio) if finite else None
    if "kind" in ds.neurons:
        kinds, counts = np.unique(np.asarray(ds.neurons["kind"]).astype(str), return_counts=True)
        report["neuron_kinds"] = {str(k): int(c) for k, c in zip(kinds, counts)}
    return report


def _reliability(ds: NeuralDataset) -> dict[str, Any] | None:
    groups = repeat_groups(ds.trial_image)
    if not groups:
        return None
    trials = np.concatenate(groups)
    responses, trial_image = ds.responses[trials], ds.trial_image[trials]
    oracle = oracle_correlation(responses, trial_image)
    split = split_half_reliability(responses, trial_image)
    return {
        "repeated_images": len(groups),
        "repeated_trials": int(len(trials)),
        "median_oracle_correlation": float(np.nanmedian(oracle)),
        "median_split_half_reliability": float(np.nanmedian(split)),
        "fraction_oracle_above_0.2": float(np.mean(oracle > 0.2)),
    }


def format_dataset(r: dict[str, Any]) -> str:
    """Human-readable lines for ``dataset_report``."""
    c, h, w = r["image_shape"]
    provenance = ", ".join(f"{k} {r[k]}" for k in ("source", "seed") if k in r)
    lines = [
        f"dataset      {r['path']} ({r['format']}{', ' + provenance if provenance else ''})",
        f"neurons      {r['neurons']} (ids {r['neuron_ids'][0]} .. {r['neuron_ids'][1]})",
        f"images       {r['images']} of {c}x{h}x{w}; train pixels mean {r['pixel_mean']:.2f}, std {r['pixel_std']:.2f}; "
        f"all pixels {r['pixel_min']:.4g} .. {r['pixel_max']:.4g}",
        f"trials       {r['trials']}; responses mean {r['responses']['mean']:.3f}, range {r['responses']['min']:.4g} .. {r['responses']['max']:.4g}",
        f"  {'tier':<12}{'images':>8}{'trials':>8}  repeats",
    ]
    for tier, t in r["tiers"].items():
        repeats = str(t["repeats_min"]) if t["repeats_min"] == t["repeats_max"] else f"{t['repeats_min']}-{t['repeats_max']}"
        lines.append(f"  {tier:<12}{t['images']:>8}{t['trials']:>8}  {repeats}")
    rel = r["reliability"]
    if rel:
        lines.append(
            f"reliability  median oracle correlation {rel['median_oracle_correlation']:.3f}, median split-half "
            f"{rel['median_split_half_reliability']:.3f} ({rel['repeated_images']} repeated images, {rel['repeated_trials']} trials)"
        )
    else:
        lines.append("reliability  no repeated images, so no oracle correlation")
    if r.get("neuron_kinds"):
        lines.append("kinds        " + ", ".join(f"{k} {c}" for k, c in r["neuron_kinds"].items()))
    likeness = r.get("grating_likeness")
    if likeness:
        lines.append(
            f"grating-like best Gabor / ground-truth optimum: median {likeness['median']:.2f}, min {likeness['min']:.2f}, "
            f"{100 * likeness['fraction_at_most_0.6']:.0f}% <= 0.6 ({likeness['neurons_measured']} neurons measured)"
        )
    lines.append(
        "ground truth stored (egg_cli.simulation.load_ground_truth rebuilds the neurons)"
        if r["ground_truth"]
        else "ground truth none"
    )
    return "\n".join(lines)


def checkpoint_report(path: Path) -> dict[str, Any]:
    """Architecture, data statistics, training and test metrics stored in a ``model.pt``."""
    from egg_cli.models.checkpoint import read_checkpoint

    payload = read_checkpoint(path)
    cfg = payload["model_config"]
    corr = payload.get("test_correlation")
    return {
        "kind": "model",
        "path": str(path),
        "format": f"{payload['format']} v{payload.get('version', '?')}",
        **{name: _component(cfg.get(name) or {}) for name in ("core", "readout", "output")},
        "input_shape": list(payload["input_shape"]),
        "neurons": len(payload["neuron_ids"]),
        "neuron_ids": [payload["neuron_ids"][0], payload["neuron_ids"][-1]],
        "parameters": int(
            sum(
                t.numel()
                for k, t in payload["state_dict"].items()
                if t.is_floating_point() and not k.endswith(("running_mean", "running_var"))
            )
        ),
        "pixel_mean": float(payload["pixel_mean"]),
        "pixel_std": float(payload["pixel_std"]),
        "dataset": payload.get("dataset"),
        "seed": payload.get("seed"),
        "training": payload.get("training"),
        "test": (payload.get("metrics") or {}).get("test"),
        "test_correlation_median": None if corr is None else float(np.nanmedian(corr)),
    }


def _component(cfg: dict[str, Any]) -> dict[str, Any]:
    """Class name and settings of one model part from its config (``_target_`` + arguments)."""
    return {
        "class": str(cfg.get("_target_", "?")).rsplit(".", 1)[-1],
        "settings": {k: v for k, v in cfg.items() if k != "_target_"},
    }


def format_checkpoint(r: dict[str, Any]) -> str:
    """Human-readable lines for ``checkpoint_report``."""

    def settings(part: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in part["settings"].items())

    c, h, w = r["input_shape"]
    lines = [
        f"model        {r['path']} ({r['format']})",
        f"core         {r['core']['class']} ({settings(r['core'])})",
        f"readout      {r['readout']['class']} ({settings(r['readout'])})",
        f"output       {r['output']['class']}",
        f"input        {c}x{h}x{w}, pixels z-scored with mean {r['pixel_mean']:.2f}, std {r['pixel_std']:.2f}",
        f"neurons      {r['neurons']} (ids {r['neuron_ids'][0]} .. {r['neuron_ids'][1]}); {r['parameters']:,} weights",
        f"dataset      {r['dataset'] or 'unknown'}" + (f"; seed {r['seed']}" if r["seed"] is not None else ""),
    ]
    t = r["training"]
    if t:
        lines.append(
            f"training     {t['epochs']} epochs (best {t['best_epoch']}), {t['train_minutes']:.1f} min; "
            f"stopped: {t['stop_reason']}"
        )
    test = r["test"]
    if test:
        line = f"test         correlation mean {test['correlation']['mean']:.3f}, median {test['correlation']['median']:.3f}"
        if test.get("fraction_of_oracle") is not None:
            line += f"; oracle {test['oracle']['mean']:.3f}, fraction of oracle {test['fraction_of_oracle']:.2f}"
        if test.get("feve", {}).get("mean") is not None:
            line += f"; FEVE {test['feve']['mean']:.3f}"
        lines.append(line)
    elif r["test_correlation_median"] is not None:
        lines.append(f"test         correlation median {r['test_correlation_median']:.3f}")
    return "\n".join(lines)


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def describe(path: str | Path) -> tuple[dict[str, Any], str]:
    """Report dict and printable text for ``path``: a model (``*.pt`` or a folder holding model.pt) or a dataset."""
    path = Path(path)
    if path.is_dir() and (path / "model.pt").is_file():
        path = path / "model.pt"
    if path.suffix in (".pt", ".pth"):
        report = checkpoint_report(path)
        return report, format_checkpoint(report)
    report = dataset_report(path)
    return report, format_dataset(report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="egg info",
        description="Summarize a dataset (egg HDF5 file or Sensorium folder) "
        "or an encoding model (model.pt or its egg train run folder).",
    )
    parser.add_argument("path", help="dataset file (.h5), Sensorium folder, model.pt, or an egg train run folder")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report, text = describe(args.path)
    except EggError as err:
        if args.debug or debug_requested():
            raise
        fail(str(err))
        return
    try:
        print(json.dumps(report, indent=2) if args.json else text, flush=True)
    except BrokenPipeError:  # e.g. ``egg info d.h5 | head -3``: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
