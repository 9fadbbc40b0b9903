"""Shared loaders for the guided-diffusion reference fixtures (shared/fixtures)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(os.environ.get("EGG_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"))
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures")


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"fixture {path} is not available")
    return path


def small_reference() -> tuple[dict, dict[str, np.ndarray]]:
    """(json metadata, arrays) of adm_small_reference."""
    meta = json.loads(fixture_path("adm_small_reference.json").read_text())
    arrays = dict(np.load(fixture_path("adm_small_reference.npz")))
    return meta, arrays


def small_state_dict(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k[3:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("sd/")}
