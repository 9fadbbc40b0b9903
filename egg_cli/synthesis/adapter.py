"""The explicit map from a generator's image space to a response model's input.

Generators produce images in their own space: gradient ascent optimizes z-scored pixels at the
model's size, a diffusion prior produces RGB in [-1, 1] at its own size. ``ImageAdapter`` maps
such a batch to what the model reads, in this order:

1. ``source_space="diffusion"``: [-1, 1] -> raw pixel units ``pixel_range`` (0-255);
2. resize to the model's height and width (bilinear; ``fit=center_crop`` first crops to the
   model's aspect ratio, ``fit=resize`` refuses a different aspect ratio);
3. channels: RGB -> gray by the mean of the channels, gray -> RGB by repetition;
4. z-score with the model's ``pixel_mean`` / ``pixel_std`` (diffusion space only; z-scored
   sources already are);
5. rescale every image to the fixed L2 norm (contrast) in z-scored units.

The contrast follows the V4 paper: L2 norm 25 for a 100x100 grayscale image, i.e. an RMS
contrast of 0.25 z-units per value; for other input shapes the norm is
``rms_contrast * sqrt(C * H * W)`` so the RMS contrast stays the same (an explicit ``norm``
overrides it). Every step acts on each image alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from egg_cli.errors import EggError

SOURCE_SPACES = ("zscored", "diffusion")
FITS = ("resize", "center_crop")
EPS = 1e-8


def contrast_norm(shape: Sequence[int], rms_contrast: float | None = 0.25, norm: float | None = None) -> float | None:
    """L2 norm in z-scored units for images of ``shape`` (C, H, W): ``norm`` if given, else
    ``rms_contrast * sqrt(C*H*W)`` (0.25 gives the V4 paper's 25 at 1x100x100); None: no fixed norm."""
    if norm is not None:
        if not norm > 0:
            raise EggError(f"adapter.norm={norm} must be positive (L2 norm in z-scored units)")
        return float(norm)
    if rms_contrast is None:
        return None
    if not rms_contrast > 0:
        raise EggError(f"adapter.rms_contrast={rms_contrast} must be positive (0.25 gives norm 25 at 100x100)")
    c, h, w = shape
    return float(rms_contrast) * math.sqrt(c * h * w)


def project_norm(images: torch.Tensor, norm: float) -> torch.Tensor:
    """Rescale each image of the batch to L2 norm ``norm`` (a zero image stays zero)."""
    flat = images.flatten(1)
    scale = norm / flat.norm(dim=1).clamp_min(EPS)
    return images * scale.view(-1, *([1] * (images.dim() - 1)))


def image_norms(images: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image of a batch."""
    return images.flatten(1).norm(dim=1)


class ImageAdapter(nn.Module):
    """Differentiable map from generator images (B, Cs, Hs, Ws) to model inputs (B, C, H, W)."""

    def __init__(
        self,
        source_shape: Sequence[int],
        target_shape: Sequence[int],
        pixel_mean: float,
        pixel_std: float,
        source_space: str = "zscored",
        norm: float | None = None,
        fit: str = "resize",
        pixel_range: Sequence[float] = (0.0, 255.0),
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if source_space not in SOURCE_SPACES:
            raise EggError(f"adapter source_space={source_space!r} unknown; expected one of {SOURCE_SPACES}")
        if fit not in FITS:
            raise EggError(f"adapter.fit={fit!r} unknown; expected one of {FITS}")
        self.source_shape = tuple(int(s) for s in source_shape)
        self.target_shape = tuple(int(s) for s in target_shape)
        self.source_space = source_space
        self.fit = fit
        self.norm = norm
        self.antialias = bool(antialias)
        self.pixel_mean = float(pixel_mean)
        self.pixel_std = float(pixel_std)
        self.pixel_range = (float(pixel_range[0]), float(pixel_range[1]))
        if not self.pixel_std > 0:
            raise EggError(f"model pixel_std={pixel_std} must be positive to z-score images")
        self._check_adaptable()

    def _check_adaptable(self) -> None:
        (cs, hs, ws), (ct, ht, wt) = self.source_shape, self.target_shape
        where = f"model input shape {self.target_shape} from generator images {self.source_shape}"
        if min(ht, wt, hs, ws, ct, cs) < 1:
            raise EggError(f"cannot adapt {where}: sizes must be positive")
        if not (cs == ct or cs == 1 or ct == 1):
            raise EggError(f"cannot adapt {where}: channels must match or one side must be grayscale (1 channel)")
        if self.fit == "resize" and abs(hs * wt - ht * ws) > 0.01 * ht * ws:
            raise EggError(f"cannot adapt {where}: aspect ratios differ; set adapter.fit=center_crop to crop the generator image")

    def crop_box(self) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the generator image that is resized to the model input."""
        _, hs, ws = self.source_shape
        _, ht, wt = self.target_shape
        if self.fit == "resize" or hs * wt == ht * ws:
            return 0, 0, hs, ws
        if hs * wt > ht * ws:  # source too tall
            h = max(1, round(ws * ht / wt))
            return (hs - h) // 2, 0, h, ws
        w = max(1, round(hs * wt / ht))
        return 0, (ws - w) // 2, hs, w

    @classmethod
    def for_dataset_images(cls, source_shape: Sequence[int], model: nn.Module) -> ImageAdapter:
        """Adapter from a dataset's raw images (see :meth:`from_raw`) to ``model``'s input, norm unchanged."""
        return cls(source_shape, model.input_shape, float(model.pixel_mean), float(model.pixel_std), source_space="zscored")

    def from_raw(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw pixel images z-scored with the model's statistics, then resized and converted to its input."""
        return self((raw - self.pixel_mean) / self.pixel_std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map a generator batch to z-scored model inputs at the fixed contrast."""
        if tuple(images.shape[1:]) != self.source_shape:
            raise EggError(f"adapter expected generator images of shape {self.source_shape}, got {tuple(images.shape[1:])}")
        x = images
        if self.source_space == "diffusion":
            lo, hi = self.pixel_range
            x = lo + (x + 1.0) * 0.5 * (hi - lo)
        top, left, h, w = self.crop_box()
        if (h, w) != self.source_shape[1:]:
            x = x[:, :, top : top + h, left : left + w]
        if (h, w) != self.target_shape[1:]:
            x = F.interpolate(x, size=self.target_shape[1:], mode="bilinear", align_corners=False, antialias=self.antialias)
        cs, ct = self.source_shape[0], self.target_shape[0]
        if cs != ct:
            x = x.mean(dim=1, keepdim=True) if ct == 1 else x.expand(-1, ct, -1, -1)
        if self.source_space == "diffusion":
            x = (x - self.pixel_mean) / self.pixel_std
        if self.norm is not None:
            x = project_norm(x, self.norm)
        return x

    def with_norm(self, norm: float | None) -> ImageAdapter:
        """A copy of this adapter with another fixed norm (None: no rescaling)."""
        return ImageAdapter(
            self.source_shape,
            self.target_shape,
            self.pixel_mean,
            self.pixel_std,
            self.source_space,
            norm,
            self.fit,
            self.pixel_range,
            self.antialias,
        )

    def zscore_bounds(self) -> tuple[float, float]:
        """The pixel range (0-255) in z-scored units: the bounds used for pixel clipping."""
        lo, hi = self.pixel_range
        return (lo - self.pixel_mean) / self.pixel_std, (hi - self.pixel_mean) / self.pixel_std

    def extra_repr(self) -> str:
        return (
            f"{self.source_space} {self.source_shape} -> model {self.target_shape}, fit={self.fit}, "
            f"norm={self.norm}, mean={self.pixel_mean:.2f}, std={self.pixel_std:.2f}"
        )
