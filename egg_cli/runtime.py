"""Device, precision, seeding and config values shared by every command."""

from __future__ import annotations

import importlib
import logging
import os
import random
from types import ModuleType
from typing import Any

import numpy as np
import torch

from egg_cli.errors import EggError

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N|mps`` to a torch device; ``auto`` picks CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise EggError(f"device={name!r} is not a device; expected auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EggError(f"device={name!r} was asked for but CUDA is not available; use device=auto or device=cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """Autocast dtype for ``precision=fp32|fp16|bf16``; half precision falls back to fp32 on CPU."""
    if name not in _DTYPES:
        raise EggError(f"precision={name!r} is not supported; expected one of {sorted(_DTYPES)}")
    dtype = _DTYPES[name]
    if device.type == "cpu" and dtype != torch.float32:
        log.info("precision=%s requested on CPU: running in fp32 for deterministic results", name)
        return torch.float32
    return dtype


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator seeded the same way."""
    if seed < 0:
        raise EggError(f"seed={seed}: expected a non-negative integer")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return torch.Generator().manual_seed(seed)


def plain(value: Any) -> Any:
    """An OmegaConf node as plain Python (dicts, lists, resolved interpolations); anything else unchanged."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def optional_import(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` of an optional dependency group; missing: one line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise EggError(f"{what} needs the {module} package: pip install 'egg-cli[{extra}]' (or egg-cli[all])") from err
