"""Prior checkpoints: egg train-prior files and OpenAI guided-diffusion state dicts.

An ``egg train-prior`` checkpoint is a dict with ``format: "egg-prior"``, the UNet and diffusion
flags (``unet``, ``diffusion``), ``image_size``, ``channels``, the EMA weights (``ema``) and, for fixed-variance priors, the
calibration table ``x0_mse`` (one value per timestep, see calibration.py);
training checkpoints add ``model``, ``optimizer``, ``step`` and generator states for resuming.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from egg_cli.errors import EggError

FORMAT = "egg-prior"
MAX_LISTED = 4


def read_checkpoint(path: str | Path, what: str = "prior checkpoint") -> Any:
    """``torch.load`` a file memory-mapped on the CPU (a 2 GB file is not read into memory twice)."""
    path = Path(path)
    if not path.is_file():
        raise EggError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:  # old (non-zipfile) serialization cannot be memory-mapped
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise EggError(
                f"{what} {path} cannot be read as a torch checkpoint ({type(err).__name__}); "
                "expected a file written by torch.save"
            ) from err


def state_dict_differences(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between a model's state dict and a checkpoint's (empty if they fit)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} {found[k]} vs {expected[k]}" for k in expected if k in found and found[k] != expected[k]]
    out = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches (file vs flags)", shapes),
    ):
        if items:
            more = f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
            out.append(f"{len(items)} {label}: {', '.join(items[:MAX_LISTED])}{more}")
    return out


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, flags: str) -> None:
    """Load ``state`` into ``model`` strictly, assigning tensors (no copy of memory-mapped weights);
    raise EggError listing every kind of difference in one line when they do not fit."""
    diffs = state_dict_differences(model, state)
    if diffs:
        raise EggError(f"checkpoint {source} does not fit the UNet flags ({flags}): {'; '.join(diffs)}")
    model.load_state_dict(state, strict=True, assign=True)


def is_egg_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def export_prior(checkpoint: Mapping[str, Any], path: str | Path) -> None:
    """Write the EMA weights and flags of a training checkpoint as a small prior file."""
    from egg_cli.io import atomic_path

    keep = {
        k: checkpoint[k]
        for k in ("format", "unet", "diffusion", "image_size", "channels", "step", "data", "init", "x0_mse")
        if k in checkpoint and checkpoint[k] is not None
    }
    keep["ema"] = {k: v.detach().clone().contiguous() for k, v in checkpoint["ema"].items()}
    with atomic_path(path) as tmp:
        torch.save(keep, tmp)


def ema_denoiser(checkpoint: Mapping[str, Any]) -> tuple[nn.Module, Any]:
    """The EMA UNet (eval mode, CPU) and the unrespaced diffusion of an egg train-prior checkpoint dict."""
    from egg_cli.diffusion.config import DiffusionConfig, UNetConfig
    from egg_cli.diffusion.gaussian import GaussianDiffusion
    from egg_cli.diffusion.unet import UNetModel

    model = UNetModel(UNetConfig.from_flags(checkpoint["unet"]))
    model.load_state_dict(checkpoint["ema"])
    return model.eval(), GaussianDiffusion(DiffusionConfig.from_flags(checkpoint["diffusion"]), "")
