"""Score images in an evaluator model at a fixed contrast, and the natural-image ceiling.

Images reach an evaluator through the synthesis adapter (:class:`ImageAdapter`), so evaluation
sees exactly what a generating model saw: resized to the evaluator's input, converted to its
channels, z-scored with *its* pixel statistics and rescaled to the same contrast (L2 norm in
z-scored units). Images arrive in raw pixel units (0-255): synthesized images are stored
z-scored with the generating model's statistics and are first mapped back with
:func:`zscored_to_raw`; dataset images already are raw. Raw images enter the adapter as its
``diffusion`` source space ([-1, 1] for the pixel range 0-255), which is only a linear relabelling
of the same pixels: no clipping happens anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from egg_cli.errors import EggError
from egg_cli.synthesis.adapter import ImageAdapter, contrast_norm

PIXEL_RANGE = (0.0, 255.0)


def zscored_to_raw(images_z: np.ndarray, pixel_mean: float, pixel_std: float) -> np.ndarray:
    """Undo z-scoring: z-scored images of a model -> raw pixel units (0-255 scale)."""
    return np.asarray(images_z, dtype=np.float32) * float(pixel_std) + float(pixel_mean)


def raw_to_unit_range(images_raw: np.ndarray) -> np.ndarray:
    """Raw pixel units (0-255) -> the adapter's ``diffusion`` space ([-1, 1] for 0-255, linear)."""
    lo, hi = PIXEL_RANGE
    return (np.asarray(images_raw, dtype=np.float32) - lo) / (hi - lo) * 2.0 - 1.0


def evaluator_adapter(source_shape: Sequence[int], model: nn.Module, rms_contrast: float, fit: str = "resize") -> ImageAdapter:
    """Adapter from raw images of ``source_shape`` to ``model``'s input at ``rms_contrast``."""
    target = tuple(int(s) for s in model.input_shape)
    norm = contrast_norm(target, rms_contrast=rms_contrast)
    return ImageAdapter(
        source_shape,
        target,
        float(model.pixel_mean),
        float(model.pixel_std),
        source_space="diffusion",
        norm=norm,
        fit=fit,
        pixel_range=PIXEL_RANGE,
    )


@torch.no_grad()
def score_raw_images(
    model: nn.Module,
    images_raw: np.ndarray,
    rms_contrast: float,
    columns: np.ndarray | None = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    fit: str = "resize",
) -> np.ndarray:
    """Responses of ``model`` to raw images (M, C, H, W) shown at ``rms_contrast``.

    Returns (M, len(columns)) if ``columns`` (model neuron indices) is given, else (M, n_neurons).
    """
    images_raw = np.asarray(images_raw, dtype=np.float32)
    if images_raw.ndim != 4:
        raise EggError(f"images to score have shape {images_raw.shape}; expected (M, C, H, W)")
    if not np.isfinite(images_raw).all():
        raise EggError("images to score contain NaN or inf; expected finite pixel values")
    adapter = evaluator_adapter(images_raw.shape[1:], model, rms_contrast, fit).to(device)
    cols = None if columns is None else torch.as_tensor(np.asarray(columns, dtype=np.int64), device=device)
    out = []
    unit = raw_to_unit_range(images_raw)
    for start in range(0, len(unit), batch_size):
        batch = torch.from_numpy(unit[start : start + batch_size]).to(device)
        responses = model(adapter(batch)).float()
        out.append((responses if cols is None else responses[:, cols]).cpu().numpy())
    if not out:
        n = int(model.n_neurons) if cols is None else len(cols)
        return np.zeros((0, n), dtype=np.float32)
    return np.concatenate(out).astype(np.float64)


def natural_ceiling(
    model: nn.Module,
    natural_raw: np.ndarray,
    rms_contrast: float,
    columns: np.ndarray,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    fit: str = "resize",
) -> tuple[np.ndarray, np.ndarray]:
    """Best natural-image response per neuron at ``rms_contrast``: (max response, image index)."""
    if len(natural_raw) == 0:
        raise EggError("no natural images to normalize by; expected the dataset's images")
    responses = score_raw_images(model, natural_raw, rms_contrast, columns, batch_size, device, fit)
    best = responses.argmax(0)
    return responses[best, np.arange(responses.shape[1])], best


def neuron_columns(model_ids: np.ndarray, wanted_ids: np.ndarray, evaluator: str) -> np.ndarray:
    """Indices of ``wanted_ids`` among a model's ``neuron_ids``; EggError if any is missing."""
    lookup = {_key(v): k for k, v in enumerate(np.asarray(model_ids))}
    missing = [v for v in np.asarray(wanted_ids) if _key(v) not in lookup]
    if missing:
        shown = ", ".join(str(v) for v in missing[:6])
        raise EggError(
            f"evaluator {evaluator!r} has no neuron with id {shown}"
            f"{f' (+{len(missing) - 6} more)' if len(missing) > 6 else ''}; "
            "expected evaluators of the same neurons as the synthesis runs"
        )
    return np.asarray([lookup[_key(v)] for v in np.asarray(wanted_ids)], dtype=np.int64)


def _key(value: object) -> str:
    """Neuron ids compare as text, so 7, np.int64(7) and '7' are the same neuron."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value)
