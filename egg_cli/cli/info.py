"""``egg info <path>``: summarize a dataset (HDF5 file or Sensorium folder).

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
from egg_cli.evaluation.metrics import oracle_correlation, repeat_groups, split_half_reliability


def dataset_report(path: Path) -> dict[str, Any]:
    """Summary numbers of a dataset, including reliability when images were repeated."""
    ds = load_dataset(path)
    report = ds.summary()
    report["kind"] = "dataset"
    report["format"] = ds.attrs.get("format", "unknown")
    for key in ("source", "seed", "egg_version"):
        if key in ds.attrs:
            report[key] = ds.attrs[key]
    report["neuron_ids"] = [_plain(ds.neuron_ids[0]), _plain(ds.neuron_ids[-1])]
    report["responses"] = {
        "mean": float(ds.responses.mean()),
        "min": float(ds.responses.min()),
        "max": float(ds.responses.max()),
    }
    report["reliability"] = _reliability(ds)
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
    lines.append(
        "ground truth stored (egg_cli.simulation.load_ground_truth rebuilds the neurons)" if r["ground_truth"]
        else "ground truth none"
    )
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def describe(path: str | Path) -> tuple[dict[str, Any], str]:
    """Report dict and printable text for ``path`` (a dataset; checkpoints and run folders come later)."""
    report = dataset_report(Path(path))
    return report, format_dataset(report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="egg info", description="Summarize a dataset (egg HDF5 file or Sensorium folder).")
    parser.add_argument("path", help="dataset file (.h5) or Sensorium folder")
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
