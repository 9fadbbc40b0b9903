"""Image sets for RSA: HDF5 (``images`` (K, 3, H, W) float32 in [0, 1]) plus PNG files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from egg_cli.data.natural import load_photographs, random_crops
from egg_cli.errors import EggError
from egg_cli.io import atomic_hdf5, atomic_path


def natural_images(source: str, n: int, size: int, seed: int) -> torch.Tensor:
    """(n, 3, size, size) random RGB crops of photographs in [0, 1] (``source``: bundled or a folder)."""
    photos = load_photographs(source, grayscale=False)
    return torch.from_numpy(random_crops(photos, n, size, np.random.default_rng(seed)))


def write_images_h5(path: str | Path, datasets: dict[str, np.ndarray], attrs: dict | None = None) -> None:
    """Write named (K, 3, H, W) [0, 1] image arrays to one HDF5 file, atomically."""
    with atomic_hdf5(path) as f:
        for name, images in datasets.items():
            f.create_dataset(name, data=np.asarray(images, dtype=np.float32), compression="gzip")
        for key, value in (attrs or {}).items():
            f.attrs[key] = value


def read_images_h5(path: str | Path, dataset: str = "images") -> np.ndarray:
    """(K, 3, H, W) float32 images in [0, 1] from an HDF5 file written by ``rsm synth`` or ``rsm simulate``."""
    path = Path(path)
    if not path.is_file():
        raise EggError(f"images={path} does not exist; expected an HDF5 file with an '{dataset}' dataset")
    try:
        with h5py.File(path, "r") as f:
            if dataset not in f:
                raise EggError(f"images={path} has no '{dataset}' dataset; expected (K, 3, H, W) images in [0, 1]")
            images = np.asarray(f[dataset][()], dtype=np.float32)
    except OSError as err:
        raise EggError(f"images={path} cannot be read as HDF5: {err}") from err
    if images.ndim != 4 or images.shape[1] != 3:
        raise EggError(f"images={path}: '{dataset}' has shape {images.shape}; expected (K, 3, H, W)")
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise EggError(f"images={path}: '{dataset}' has values outside [0, 1] or NaN; expected RGB in [0, 1]")
    return images


def write_pngs(folder: str | Path, images_uint8: np.ndarray, prefix: str = "image") -> list[Path]:
    """One PNG per (H, W, 3) uint8 image, named ``<prefix>_<index>.png``."""
    from PIL import Image

    folder = Path(folder)
    paths = []
    for i, image in enumerate(images_uint8):
        path = folder / f"{prefix}_{i:02d}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(image).save(tmp, format="PNG")
        paths.append(path)
    return paths
