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


# Tolerances (relative to max(1, |reference|)) for p_mean_variance against the guided-diffusion reference.
# pred_xstart = sqrt(1/abar) x_t - sqrt(1/abar - 1) eps: at the last respaced step the coefficients reach ~150,
# so fp32 rounding of the UNet output differs by ~1e-5 between CPUs (1.05e-5 measured on one machine).
PMV_TOLERANCES = {"mean": 1e-5, "variance": 1e-6, "log_variance": 1e-5, "pred_xstart": 3e-5}
