"""Read `egg synth` results (``synthesis.h5``, docs/synthesis.md) as :class:`SynthesisRun` objects."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from egg_cli.errors import EggError
from egg_cli.evaluation.generalization import SynthesisRun
from egg_cli.evaluation.scoring import zscored_to_raw
from egg_cli.synthesis.results import result_path


def method_label(method: str, settings: Mapping[str, Any]) -> str:
    """Table label of a method: its name, plus the prior when it is not the default (``egg-spectral``)."""
    prior = settings.get("prior")
    if prior not in (None, "", "default"):
        return f"{method}-{Path(str(prior)).stem}"
    return method


def generator_label(model: Any, attrs: Mapping[str, Any] | None = None) -> str:
    """Name of the generating model: ``attrs['generator']`` if recorded, else the folder its checkpoints share.

    ``model`` is what `egg synth` records as its ``model`` (a path, a glob or a list of them).
    """
    if attrs and attrs.get("generator"):
        return str(attrs["generator"])
    if isinstance(model, str):
        try:
            model = json.loads(model)
        except ValueError:
            pass
    paths = [str(p) for p in (model if isinstance(model, (list, tuple)) else [model]) if p]
    if not paths:
        return "generator"
    if len(paths) == 1:
        p = Path(paths[0])
        return (p.parent.name if p.suffix else p.name) or "generator"
    common = os.path.commonpath([str(Path(p).absolute()) for p in paths])
    return Path(common).name or "generator"


def load_synthesis_run(path: str | os.PathLike, method: str | None = None, generator: str | None = None) -> SynthesisRun:
    """One synthesis run of a neuron objective; ``method``/``generator`` override the labels."""
    from egg_cli.synthesis.results import GENERATING, read_synthesis

    file = result_path(path)
    result = read_synthesis(file)
    if "neuron_id" not in result.problems:
        raise EggError(
            f"{file}: objective {result.objective!r} has no neurons (problems/neuron_id missing); "
            "expected an MEI run (objective=neuron) to evaluate"
        )
    adapter = result.adapter
    for key in ("pixel_mean", "pixel_std", "target_shape"):
        if key not in adapter:
            raise EggError(f"{file}: adapter record lacks {key!r}; expected the adapter written by `egg synth`")
    images = np.asarray(result.images, dtype=np.float32)
    if images.ndim != 5:
        raise EggError(f"{file}: images have shape {images.shape}; expected (problems, seeds, C, H, W)")
    if not np.isfinite(images).all():
        raise EggError(f"{file}: images contain NaN or inf; expected finite synthesized images")
    P, S = images.shape[:2]
    shape = images.shape[2:]
    norm = adapter.get("norm")
    if norm is None:  # no fixed contrast in synthesis: take the images' own median contrast
        norm = float(np.median(np.linalg.norm(images.reshape(P * S, -1), axis=1)))
    seconds = np.asarray(result.seconds_per_image, dtype=np.float64)
    steps = result.method_settings.get("steps")
    budget = result.method_settings.get("evaluations", result.method_settings.get("budget"))
    return SynthesisRun(
        path=file,
        method=method or method_label(result.method, result.method_settings),
        generator=generator or generator_label(result.attrs.get("model"), result.attrs),
        images_raw=zscored_to_raw(images.reshape(P * S, *shape), adapter["pixel_mean"], adapter["pixel_std"]),
        neuron_ids=np.repeat(np.asarray(result.problems["neuron_id"]), S),
        seeds=np.tile(np.asarray(result.seeds), P),
        scores=np.asarray(result.scores[GENERATING], dtype=np.float64).reshape(P * S),
        rms_contrast=float(norm) / math.sqrt(int(np.prod(shape))),
        seconds_per_image=float(seconds.mean()) if seconds.size else None,
        steps=int(steps) if isinstance(steps, (int, float)) else None,
        budget=int(budget) if isinstance(budget, (int, float)) else None,
        dataset=_recorded_dataset(result),
        dataset_id=str(result.attrs.get("dataset_id") or "") or None,
    )


def _recorded_dataset(result: Any) -> str | None:
    """The dataset a synthesis run recorded (its natural-image reference), if any."""
    if result.attrs.get("dataset"):
        return str(result.attrs["dataset"])
    if result.natural is not None and result.natural.get("dataset"):
        return str(result.natural["dataset"])
    return None
