"""RSM-orthogonalized image synthesis: K images whose layer RSMs are as uncorrelated as possible.

Objective (the seed paper's loss is not public; this is egg's choice)::

    loss = mean_{l<m} r_lm**2  +  spread_weight * mean_l relu(1 - s_l / spread_target)**2

where ``r_lm`` is the Pearson correlation between the upper triangles of layer l's and layer m's
RSM (each RSM being the Pearson correlation between the K images' feature vectors) and ``s_l``
the standard deviation of layer l's off-diagonal RSM entries.

* Squared correlation treats positive and negative dependence alike and is smooth at zero, so
  the optimum is orthogonal (not anti-correlated) RSMs, which is what makes a searchlight RDM
  that matches one layer uninformative about the others. Averaging over all pairs (rather than
  only neighbouring layers) also separates distant layers, which natural images leave correlated.
* Correlation is scale-free, so it can also be lowered by flattening a layer's RSM until its
  structure is numerically tiny (all images alike in that layer); a region tuned to that layer
  would then show no reliable dissimilarities. The hinge on ``s_l`` keeps every layer's RSM spread
  at least ``spread_target`` (natural images give about 0.1-0.2) and costs nothing above it.

Optimization: Adam on a Fourier (decorrelated colour) or pixel parametrization; each step sees
freshly jittered images (:class:`~egg_cli.rsa.transforms.Jitter`); every ``eval_every`` steps
the untransformed images are scored and the best set so far is kept.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from egg_cli.rsa.features import LayerFeatures
from egg_cli.rsa.parametrization import ImageParametrization
from egg_cli.rsa.rsm import EPS, layer_rsms, upper, vector_correlation
from egg_cli.rsa.transforms import Jitter

log = logging.getLogger(__name__)


@dataclass
class RsmObjective:
    """Mean squared cross-layer RSM correlation plus a hinge that keeps each RSM's spread."""

    spread_weight: float = 1.0
    spread_target: float = 0.1

    def __call__(self, rsms: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms for stacked (L, K, K) RSMs."""
        vectors = upper(rsms)
        corr = vector_correlation(vectors)
        rows, cols = torch.triu_indices(len(corr), len(corr), 1)
        decorrelation = corr[rows, cols].pow(2).mean()
        spread = vectors.std(dim=1)
        hinge = torch.relu(1 - spread / max(self.spread_target, EPS)).pow(2).mean()
        loss = decorrelation + self.spread_weight * hinge
        return {"loss": loss, "decorrelation": decorrelation, "spread_penalty": hinge,
                "min_spread": spread.min(), "correlation": corr}


@dataclass
class SynthesisResult:
    """Best images found and the optimization trace."""

    images: torch.Tensor  # (K, 3, H, W) in [0, 1]
    trace: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    best_loss: float = float("inf")
    seconds: float = 0.0


def evaluate(model: LayerFeatures, images: torch.Tensor, objective: RsmObjective) -> dict[str, torch.Tensor]:
    """Objective terms of untransformed images, without gradients."""
    with torch.no_grad():
        return objective(layer_rsms(model(images), model.layers))


def synthesize(
    model: LayerFeatures,
    parametrization: ImageParametrization,
    objective: RsmObjective,
    steps: int = 300,
    lr: float = 0.05,
    jitter: Jitter | None = None,
    eval_every: int = 10,
    seed: int = 0,
    progress: bool = True,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> SynthesisResult:
    """Run Adam on ``parametrization`` to minimize ``objective`` of the model's layer RSMs."""
    device = model.mean.device
    parametrization = parametrization.to(device)
    optimizer = torch.optim.Adam(parametrization.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    jitter = jitter or Jitter(0, 0, 0)
    result = SynthesisResult(images=parametrization().detach().cpu())
    start = time.perf_counter()
    bar = tqdm(range(steps + 1), desc="rsm synth", disable=not progress, leave=False)
    for step in bar:
        if step % eval_every == 0 or step == steps:
            images = parametrization().detach()
            terms = evaluate(model, images, objective)
            row = {"step": step, **{k: float(v) for k, v in terms.items() if v.ndim == 0}}
            result.trace.append(row)
            if row["loss"] < result.best_loss:
                result.best_loss, result.best_step, result.images = row["loss"], step, images.cpu().clone()
            bar.set_postfix(loss=f"{row['loss']:.4f}", r2=f"{row['decorrelation']:.4f}")
            if on_eval is not None:
                on_eval(step, row)
        if step == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        images = jitter(parametrization(), generator)
        loss = objective(layer_rsms(model(images), model.layers))["loss"]
        loss.backward()
        optimizer.step()
    result.seconds = time.perf_counter() - start
    log.info("rsm synth: best loss %.5f at step %d of %d (%.1f s)", result.best_loss, result.best_step, steps, result.seconds)
    return result


def images_to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """(K, 3, H, W) [0, 1] images as (K, H, W, 3) uint8 for PNG files."""
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return np.clip(np.round(arr.transpose(0, 2, 3, 1) * 255), 0, 255).astype(np.uint8)
