"""Predict a dataset tier with a response model and score it with egg_cli.metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from egg_cli import metrics

FEV_THRESHOLD = 0.15  # FEVE is summarized over neurons with at least this explainable variance


@torch.no_grad()
def predict_images(
    model: nn.Module, images_z: np.ndarray | torch.Tensor, batch_size: int = 256, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Rates ``(N, n_neurons)`` for z-scored images ``(N, C, H, W)`` in evaluation mode."""
    was_training = model.training
    model.eval()
    images = torch.as_tensor(images_z, dtype=torch.float32)
    out = [model(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, getattr(model, "n_neurons", 0)), np.float32)


def tier_predictions(
    model: nn.Module, dataset: Any, tier: str, batch_size: int = 256, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-trial predictions, responses and image indices of one tier (each image predicted once)."""
    trials = np.asarray(dataset.trials(tier))
    image_of_trial = np.asarray(dataset.trial_image)[trials]
    images, inverse = np.unique(image_of_trial, return_inverse=True)
    rates = predict_images(model, dataset.zscore(dataset.images[images]), batch_size, device)
    return rates[inverse], np.asarray(dataset.responses)[trials], image_of_trial


def mean_correlation(
    model: nn.Module, dataset: Any, tier: str, batch_size: int = 256, device: str | torch.device = "cpu"
) -> float:
    """Mean over neurons of the single-trial correlation on ``tier`` (the early-stopping score)."""
    pred, resp, _ = tier_predictions(model, dataset, tier, batch_size, device)
    return float(np.mean(metrics.correlation(pred, resp)))


def score_tier(
    model: nn.Module, dataset: Any, tier: str, batch_size: int = 256, device: str | torch.device = "cpu"
) -> dict[str, np.ndarray]:
    """Per-neuron metrics on ``tier``: correlation, correlation_to_average, feve, fev, oracle."""
    pred, resp, image = tier_predictions(model, dataset, tier, batch_size, device)
    return {
        "correlation": metrics.correlation(pred, resp),
        "correlation_to_average": metrics.correlation_to_average(pred, resp, image),
        "feve": metrics.feve(pred, resp, image),
        "fev": metrics.explainable_variance_fraction(resp, image),
        "oracle": metrics.oracle_correlation(resp, image),
    }


def _stats(values: np.ndarray) -> dict[str, float | None]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"mean": None, "median": None}
    return {"mean": float(values.mean()), "median": float(np.median(values))}


def summarize_tier(per_neuron: dict[str, np.ndarray]) -> dict[str, Any]:
    """Mean and median of each metric; FEVE over neurons with FEV >= 0.15; fraction of oracle."""
    reliable = np.asarray(per_neuron["fev"]) >= FEV_THRESHOLD
    out: dict[str, Any] = {
        "correlation": _stats(per_neuron["correlation"]),
        "correlation_to_average": _stats(per_neuron["correlation_to_average"]),
        "feve": {
            **_stats(np.asarray(per_neuron["feve"])[reliable]),
            "n_neurons": int(reliable.sum()),
            "fev_threshold": FEV_THRESHOLD,
        },
        "oracle": _stats(per_neuron["oracle"]),
    }
    corr, oracle = out["correlation"]["mean"], out["oracle"]["mean"]
    out["fraction_of_oracle"] = None if corr is None or not oracle else corr / oracle
    return out
