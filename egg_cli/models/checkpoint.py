"""Checkpoints of encoding models: weights + resolved config + data statistics + test correlation.

``model=<path>`` in every command goes through :func:`load_model`. A path may be a ``model.pt``
file, a run folder holding one, a multirun folder whose job folders hold one (an ensemble), a
glob pattern, or a list of any of these (an ensemble averaging the members).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from egg_cli.errors import EggError
from egg_cli.io import atomic_path
from egg_cli.models.encoding import EncodingModel, build_model
from egg_cli.models.ensemble import Ensemble
from egg_cli.models.state import load_state_strict

FORMAT = "egg-encoding-model"
CHECKPOINT_NAME = "model.pt"


def save_checkpoint(path: str | os.PathLike, model: EncodingModel, model_cfg: Any, extra: dict | None = None) -> None:
    """Write weights, the model config, data statistics and test correlation to ``path`` atomically."""
    cfg = OmegaConf.to_container(model_cfg, resolve=True) if OmegaConf.is_config(model_cfg) else dict(model_cfg)
    corr = model.test_correlation
    payload = {
        "format": FORMAT,
        "version": 1,
        "model_config": cfg,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "input_shape": list(model.input_shape),
        "neuron_ids": np.asarray(model.neuron_ids).tolist(),
        "pixel_mean": model.pixel_mean,
        "pixel_std": model.pixel_std,
        "test_correlation": None if corr is None else np.asarray(corr, dtype=float).tolist(),
        "dataset": model.dataset_path,
        "dataset_id": getattr(model, "dataset_id", None),  # population fingerprint (egg_cli.models.population)
        **(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read and validate a checkpoint file (CPU tensors)."""
    path = Path(path)
    if not path.is_file():
        raise EggError(f"model checkpoint {path} does not exist; expected a model.pt written by egg train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise EggError(
            f"model checkpoint {path} could not be read ({type(err).__name__}); expected a model.pt written by egg train"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EggError(f"model checkpoint {path} is not an egg encoding model; expected a model.pt written by egg train")
    missing = [
        k for k in ("model_config", "state_dict", "input_shape", "neuron_ids", "pixel_mean", "pixel_std") if k not in payload
    ]
    if missing:
        raise EggError(f"model checkpoint {path} lacks {', '.join(missing)}; expected a complete model.pt written by egg train")
    return payload


def model_from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> EncodingModel:
    """Rebuild one encoding model from its checkpoint, in evaluation mode on ``device``."""
    payload = read_checkpoint(path)
    model = build_model(
        payload["model_config"], payload["input_shape"], payload["neuron_ids"], payload["pixel_mean"], payload["pixel_std"]
    )
    load_state_strict(model, payload["state_dict"], f"model checkpoint {path}")
    corr = payload.get("test_correlation")
    model.test_correlation = None if corr is None else np.asarray(corr, dtype=float)
    model.dataset_path = payload.get("dataset")
    model.dataset_id = payload.get("dataset_id")  # None in checkpoints older than population fingerprints
    return model.to(device).eval()


def resolve_checkpoints(path_or_list: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Expand a path, folder, multirun folder, glob or list into checkpoint files."""
    items = [path_or_list] if isinstance(path_or_list, (str, os.PathLike)) else list(path_or_list)
    files: list[Path] = []
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise EggError(f"model={text} matches no files; expected a glob of model.pt files")
            files.extend(resolve_checkpoints(matches))
            continue
        p = Path(text)
        if p.is_dir():
            if (p / CHECKPOINT_NAME).is_file():
                files.append(p / CHECKPOINT_NAME)
            else:
                jobs = sorted(p.glob(f"*/{CHECKPOINT_NAME}"), key=lambda q: (len(q.parent.name), q.parent.name))
                if not jobs:
                    raise EggError(
                        f"model={p} is a folder without {CHECKPOINT_NAME}; expected a train run folder or a multirun folder"
                    )
                files.extend(jobs)
        else:
            files.append(p)
    if not files:
        raise EggError("model= is empty; expected a checkpoint path or a list of them")
    return files


def load_model(path_or_list: str | os.PathLike | Sequence[str | os.PathLike], device: str | torch.device = "cpu") -> nn.Module:
    """Load an encoding model (one checkpoint) or an :class:`Ensemble` (several), ready for inference.

    Parameters are frozen (``requires_grad=False``); gradients with respect to the input still flow.
    """
    files = resolve_checkpoints(path_or_list)
    members = [model_from_checkpoint(f, device) for f in files]
    model: nn.Module = members[0] if len(members) == 1 else Ensemble(members, [str(f) for f in files])
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval()
