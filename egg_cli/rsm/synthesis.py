"""RSM-orthogonalized image synthesis: K images whose layer RSMs are as uncorrelated as possible.

Objective (the seed paper's loss is not public; this is egg's choice)::

    loss = (mean_{l<m} r_lm**(2p))**(1/p)  +  contrast_weight * mean_l relu(1 - c_l / contrast_target)**2

where ``r_lm`` is the Pearson correlation between the upper triangles of layer l's and layer m's
RSM (each RSM being the Pearson correlation between the K images' feature vectors) and ``c_l``
the contrast of layer l's RDM: standard deviation over mean of its correlation distances ``1 - r``.

* Squared correlation treats positive and negative dependence alike and is smooth at zero, so
  the optimum is orthogonal (not anti-correlated) RSMs, which is what makes a searchlight RDM
  that matches one layer uninformative about the others. Averaging over all pairs (rather than
  only neighbouring layers) also separates distant layers, which natural images leave correlated.
* The power mean with ``p = pair_power`` (1: the mean of r**2; large: the largest r**2) decides how
  much the worst pairs count. A region is only assigned to the right layer if *every* other
  layer's RSM differs from its own, so one pair left at r = 0.98 (adjacent blocks of a network are
  the hard case) costs a whole region; p > 1 spends the optimization on those pairs.
* Correlation is scale-free, so it can also be lowered by making the images nearly equidistant
  in a layer, leaving only tiny independent differences between pairs: a region tuned to that
  layer would then show no reliable dissimilarities (in simulated fMRI the searchlight statistic
  in planted regions falls as the contrast falls, even at fixed signal-to-noise per voxel). The
  hinge keeps every layer's RDM contrast at least ``contrast_target`` (bundled photograph crops give
  0.4-0.6 in the random GoogLeNet) and costs nothing above it.

Optimization: Adam on a Fourier (decorrelated colour) or pixel parametrization; each step sees
freshly jittered images (:class:`~egg_cli.rsm.transforms.Jitter`); every ``eval_every`` steps
the untransformed images are scored and the best set so far is kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from egg_cli.errors import EggError
from egg_cli.rsm.features import LayerFeatures
from egg_cli.rsm.matrices import EPS, layer_rsms, rdm_contrast, upper, vector_correlation
from egg_cli.rsm.parametrization import ImageParametrization
from egg_cli.rsm.transforms import Jitter

log = logging.getLogger(__name__)


@dataclass
class RsmObjective:
    """Power mean of squared cross-layer RSM correlations plus a hinge that keeps each RDM's contrast."""

    contrast_weight: float = 1.0
    contrast_target: float = 0.1
    pair_power: float = 1.0

    def __post_init__(self) -> None:
        if self.pair_power < 1:
            raise EggError(
                f"objective.pair_power={self.pair_power} is below 1; expected >= 1 (1: mean r^2, larger: the worst pairs)"
            )

    def __call__(self, rsms: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms for stacked (L, K, K) RSMs."""
        vectors = upper(rsms)
        corr = vector_correlation(vectors)
        rows, cols = torch.triu_indices(len(corr), len(corr), 1)
        decorrelation = corr[rows, cols].pow(2 * self.pair_power).mean().pow(1 / self.pair_power)
        contrast = rdm_contrast(1 - vectors)  # correlation-distance RDMs
        hinge = torch.relu(1 - contrast / max(self.contrast_target, EPS)).pow(2).mean()
        loss = decorrelation + self.contrast_weight * hinge
        return {
            "loss": loss,
            "decorrelation": decorrelation,
            "contrast_penalty": hinge,
            "min_contrast": contrast.min(),
            "correlation": corr,
        }


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
