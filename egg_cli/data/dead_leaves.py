"""Dead-leaves images: occluding shapes with a power-law size distribution (a procedural natural-image model).

Leaves (disks, ellipses and rectangles at random orientations, each of one gray level) fall on
the image one after another, each covering what lies below. With leaf radii drawn from a density
``p(r) ~ r^-3`` between ``r_min`` and ``r_max`` (Lee, Mumford & Huang 2001) the images are
approximately scale invariant, with a power spectrum close to ``1/f^2`` and the occlusion edges,
T-junctions, corners and curved contours of natural scenes, in unlimited number.
"""

from __future__ import annotations

import math

import numpy as np

SHAPES = ("disk", "ellipse", "rectangle")


def leaf_radii(count: int, r_min: float, r_max: float, rng: np.random.Generator) -> np.ndarray:
    """Radii with density proportional to r^-3 on [r_min, r_max] (inverse-CDF sampling)."""
    a, b = r_min**-2, r_max**-2
    return (a - rng.uniform(size=count) * (a - b)) ** -0.5


def dead_leaves_image(size: int, rng: np.random.Generator, coverage: float = 3.0, blur: float = 0.6) -> np.ndarray:
    """One (size, size) float32 image in [0, 1]: leaves until their summed area is ``coverage`` times the
    image area, then a Gaussian blur of ``blur`` px (optics)."""
    from scipy.ndimage import gaussian_filter

    r_min, r_max = 1.25, size / 2
    mean_area = math.pi * 2 * math.log(r_max / r_min) / (r_min**-2 - r_max**-2)  # pi E[r^2] under r^-3
    count = int(math.ceil(coverage * size * size / mean_area))
    radii = leaf_radii(count, r_min, r_max, rng)
    image = np.full((size, size), rng.uniform(0.05, 0.95), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for radius in radii:
        cx, cy = rng.uniform(-radius, size + radius, size=2)
        shape = SHAPES[rng.integers(len(SHAPES))]
        angle = rng.uniform(0, math.pi)
        aspect = 1.0 if shape == "disk" else rng.uniform(0.3, 1.0)
        gray = rng.uniform(0.05, 0.95)
        x0, x1 = max(0, int(cx - radius) - 1), min(size, int(cx + radius) + 2)
        y0, y1 = max(0, int(cy - radius) - 1), min(size, int(cy + radius) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        dx, dy = xx[y0:y1, x0:x1] - cx, yy[y0:y1, x0:x1] - cy
        u = dx * math.cos(angle) + dy * math.sin(angle)
        v = (-dx * math.sin(angle) + dy * math.cos(angle)) / aspect
        if shape == "rectangle":
            inside = (np.abs(u) <= radius / math.sqrt(2)) & (np.abs(v) <= radius / math.sqrt(2))
        else:
            inside = u * u + v * v <= radius * radius
        image[y0:y1, x0:x1][inside] = gray
    return np.clip(gaussian_filter(image, blur), 0.0, 1.0) if blur > 0 else image


def dead_leaves(count: int, size: int, rng: np.random.Generator, channels: int = 1) -> np.ndarray:
    """``count`` dead-leaves images (count, channels, size, size) float32 in [0, 1] (gray repeated over channels)."""
    images = np.stack([dead_leaves_image(size, rng) for _ in range(count)]) if count else np.zeros((0, size, size), np.float32)
    return np.repeat(images[:, None], channels, axis=1).astype(np.float32)
