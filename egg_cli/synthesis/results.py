"""Synthesis results in memory and on disk (``synthesis.h5``; layout in docs/synthesis.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egg_cli.errors import EggError
from egg_cli.io import atomic_hdf5

FORMAT = "egg-synthesis"
FORMAT_VERSION = 1
GENERATING = "generating"


@dataclass
class SynthesisResult:
    """Images and scores of one synthesis run; arrays are problem x seed first."""

    method: str
    objective: str
    method_settings: dict[str, Any]
    adapter: dict[str, Any]
    seeds: np.ndarray  # (S,)
    problems: dict[str, np.ndarray]  # per-problem arrays, first axis P
    labels: list[str]  # (P,)
    images: np.ndarray  # (P, S, C, H, W) model input: z-scored, fixed contrast
    scores: dict[str, np.ndarray]  # model name -> (P, S); "generating" always present
    trace: np.ndarray  # (P, S, steps) objective during the optimization (generating model)
    seconds_per_image: np.ndarray  # (P, S)
    chunk: np.ndarray  # (P, S) which batch produced each image
    batch_size: int
    device: str
    generator_images: np.ndarray | None = None  # (P, S, Cg, Hg, Wg), e.g. EGG's RGB sample in [-1, 1]
    score_sources: dict[str, str] = field(default_factory=dict)  # model name -> checkpoint(s)
    natural: dict[str, Any] | None = None  # top natural images per problem (see natural_reference)
    attrs: dict[str, Any] = field(default_factory=dict)  # free metadata (config, model paths)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # method-specific (P, S, ...) arrays, e.g. codes

    @property
    def n_problems(self) -> int:
        return int(self.images.shape[0])

    @property
    def best_seed(self) -> np.ndarray:
        """Index into ``seeds`` of the best image per problem, by its generating-model score."""
        return np.argmax(self.scores[GENERATING], axis=1)


def _json(value: Any) -> str:
    from egg_cli.io import _json_default

    return json.dumps(value, default=_json_default)


def write_synthesis(path: str | Path, result: SynthesisResult) -> None:
    """Write ``result`` to an HDF5 file atomically."""
    import h5py

    with atomic_hdf5(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["method"] = result.method
        f.attrs["objective"] = result.objective
        f.attrs["method_settings"] = _json(result.method_settings)
        f.attrs["adapter"] = _json(result.adapter)
        f.attrs["batch_size"] = int(result.batch_size)
        f.attrs["device"] = result.device
        for key, value in result.attrs.items():
            f.attrs[key] = value if isinstance(value, (str, int, float, bool)) else _json(value)
        f.create_dataset("seeds", data=np.asarray(result.seeds, dtype=np.int64))
        group = f.create_group("problems")
        for key, value in result.problems.items():
            group.create_dataset(key, data=np.asarray(value))
        group.create_dataset("label", data=np.asarray(result.labels, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("images", data=result.images.astype(np.float32), compression="gzip", chunks=True)
        if result.generator_images is not None:
            f.create_dataset("generator_images", data=result.generator_images.astype(np.float32), compression="gzip", chunks=True)
        scores = f.create_group("scores")
        for name, value in result.scores.items():
            ds = scores.create_dataset(name, data=np.asarray(value, dtype=np.float32))
            ds.attrs["source"] = result.score_sources.get(name, "")
        f.create_dataset("trace", data=result.trace.astype(np.float32))
        if result.extras:
            extras = f.create_group("extras")
            for key, value in result.extras.items():
                extras.create_dataset(key, data=np.asarray(value))
        timing = f.create_group("timing")
        timing.create_dataset("seconds_per_image", data=np.asarray(result.seconds_per_image, dtype=np.float64))
        timing.create_dataset("chunk", data=np.asarray(result.chunk, dtype=np.int32))
        f.create_dataset("best_seed", data=result.best_seed.astype(np.int64))
        if result.natural is not None:
            natural = f.create_group("natural")
            for key, value in result.natural.items():
                if isinstance(value, np.ndarray):
                    natural.create_dataset(key, data=value)
                else:
                    natural.attrs[key] = value if isinstance(value, (str, int, float, bool)) else _json(value)


RESULT_NAME = "synthesis.h5"


def result_path(path: str | Path, key: str | None = None) -> Path:
    """A run folder or a result file -> the ``synthesis.h5`` path (EggError if absent; ``key``: the
    setting that named it, for the error line)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_NAME
    if not path.is_file():
        named = f"{key}={path}" if key else f"synthesis run {path}"
        raise EggError(f"{named} does not exist; expected an `egg synth` run folder or its {RESULT_NAME}")
    return path


def read_synthesis(path: str | Path) -> SynthesisResult:
    """Read a ``synthesis.h5`` file written by :func:`write_synthesis`."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise EggError(f"synthesis result {path} does not exist; expected a synthesis.h5 from `egg synth`")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise EggError(f"synthesis result {path} is not a readable HDF5 file: {err}") from err
    with f:
        if f.attrs.get("format") != FORMAT:
            raise EggError(
                f"{path} is not an egg synthesis result (attribute format={f.attrs.get('format')!r}, expected {FORMAT!r})"
            )
        known = {"format", "format_version", "method", "objective", "method_settings", "adapter", "batch_size", "device"}
        problems = {k: f["problems"][k][()] for k in f["problems"] if k != "label"}
        labels = [s.decode() if isinstance(s, bytes) else str(s) for s in f["problems/label"][()]]
        natural = None
        if "natural" in f:
            natural = {k: f["natural"][k][()] for k in f["natural"]}
            natural.update({k: _maybe_json(v) for k, v in f["natural"].attrs.items()})
        return SynthesisResult(
            method=str(f.attrs["method"]),
            objective=str(f.attrs["objective"]),
            method_settings=json.loads(f.attrs["method_settings"]),
            adapter=json.loads(f.attrs["adapter"]),
            seeds=f["seeds"][()],
            problems=problems,
            labels=labels,
            images=f["images"][()],
            scores={k: f["scores"][k][()] for k in f["scores"]},
            trace=f["trace"][()],
            seconds_per_image=f["timing/seconds_per_image"][()],
            chunk=f["timing/chunk"][()],
            batch_size=int(f.attrs["batch_size"]),
            device=str(f.attrs["device"]),
            generator_images=f["generator_images"][()] if "generator_images" in f else None,
            score_sources={k: str(f["scores"][k].attrs.get("source", "")) for k in f["scores"]},
            natural=natural,
            attrs={k: _maybe_json(v) for k, v in f.attrs.items() if k not in known},
            extras={k: f["extras"][k][()] for k in f["extras"]} if "extras" in f else {},
        )


def _maybe_json(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.item() if isinstance(value, np.generic) else value
