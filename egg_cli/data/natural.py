"""Natural photographs without internet: the pictures installed packages ship, cut into crops.

The bundled source is the photographs in scikit-image's data folder and matplotlib's sample
data (``bundled_photograph_paths``); any folder of images works the same way
(``folder_photograph_paths``). Crops are drawn at random positions and scales, so a few
photographs give thousands of distinct natural patches with natural second-order statistics.
``natural_images`` also offers procedural dead-leaves images (:mod:`egg_cli.data.dead_leaves`)
and an even mix of both (``mixed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egg_cli.errors import EggError

# Photographs of natural and man-made scenes; drawings, text and binary images are left out.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "rocket.jpg",
)
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")


def bundled_photograph_paths() -> list[Path]:
    """Paths of the photographs shipped by scikit-image and matplotlib."""
    import matplotlib
    import skimage

    skimage_dir = Path(skimage.__file__).parent / "data"
    mpl_dir = Path(matplotlib.get_data_path()) / "sample_data"
    paths = [skimage_dir / n for n in SKIMAGE_PHOTOS] + [mpl_dir / n for n in MATPLOTLIB_PHOTOS]
    return [p for p in paths if p.exists()]


def folder_photograph_paths(folder: str | Path) -> list[Path]:
    """Image files in ``folder`` (recursively), sorted for reproducibility."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EggError(
            f"image folder {folder} does not exist; expected bundled, dead_leaves, mixed or a folder of PNG/JPEG images"
        )
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise EggError(f"image folder {folder} holds no images; expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    return paths


def load_photographs(source: str | Path | None = None, grayscale: bool = True) -> list[np.ndarray]:
    """Load photographs as float32 arrays in [0, 1], shape (H, W) if grayscale else (H, W, 3).

    ``source`` is ``None`` or ``"bundled"`` for the packaged photographs, or a folder path.
    """
    from skimage import color, io
    from skimage.util import img_as_float32

    paths = bundled_photograph_paths() if source in (None, "bundled") else folder_photograph_paths(source)
    images = []
    for path in paths:
        try:
            img = img_as_float32(io.imread(path))
        except Exception as err:  # unreadable file in a user folder
            raise EggError(f"cannot read image {path}: {err}") from err
        if img.ndim == 3 and img.shape[-1] == 4:
            img = img[..., :3]
        if img.ndim == 2 and not grayscale:
            img = np.repeat(img[..., None], 3, axis=-1)
        elif img.ndim == 3 and grayscale:
            img = color.rgb2gray(img).astype(np.float32)
        images.append(np.ascontiguousarray(img, dtype=np.float32))
    return images


def random_crops(
    photos: Sequence[np.ndarray],
    n: int,
    size: int,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.25, 1.0),
    flip: bool = True,
) -> np.ndarray:
    """Draw ``n`` square crops resized to ``size`` px: (n, C, size, size) float32 in [0, 1].

    Each crop picks a photograph uniformly, a side between ``scale_range`` times the
    photograph's shorter side (never below ``size``), a uniform position and an optional
    horizontal flip; the crop is resized with anti-aliasing (torch bilinear).
    """
    import torch
    import torch.nn.functional as F

    if not photos:
        raise EggError("no photographs to crop from; expected at least one image")
    channels = 1 if photos[0].ndim == 2 else photos[0].shape[-1]
    out = np.empty((n, channels, size, size), dtype=np.float32)
    lo, hi = scale_range
    for k in range(n):
        img = photos[rng.integers(len(photos))]
        short = min(img.shape[:2])
        side = int(round(short * rng.uniform(lo, hi)))
        side = int(np.clip(side, min(size, short), short))
        y = rng.integers(img.shape[0] - side + 1)
        x = rng.integers(img.shape[1] - side + 1)
        crop = img[y : y + side, x : x + side]
        if flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = crop.reshape(side, side, channels).transpose(2, 0, 1)
        # bilinear resize with an anti-aliasing filter when shrinking (about 10x faster than skimage)
        tensor = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))[None]
        out[k] = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=side > size, align_corners=False)[0].numpy()
    return np.clip(out, 0.0, 1.0)


IMAGE_SOURCES = ("bundled", "dead_leaves", "mixed")  # or a folder of images


def natural_images(
    source: str | Path,
    n: int,
    size: int,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.25, 1.0),
    grayscale: bool = True,
) -> np.ndarray:
    """``n`` natural images (n, C, size, size) float32 in [0, 1] from ``source``: ``bundled`` photograph
    crops, ``dead_leaves`` images, ``mixed`` (half of each, in random order) or crops of a folder's images."""
    from egg_cli.data.dead_leaves import dead_leaves

    channels = 1 if grayscale else 3
    if source == "dead_leaves":
        return dead_leaves(n, size, rng, channels)
    if source == "mixed":
        photos = random_crops(load_photographs("bundled", grayscale), n // 2, size, rng, scale_range=scale_range)
        images = np.concatenate([photos, dead_leaves(n - n // 2, size, rng, channels)])
        return images[rng.permutation(n)]
    return random_crops(load_photographs(source, grayscale), n, size, rng, scale_range=scale_range)
