"""Vectorized, chunked volume searchlights and their RDMs.

A searchlight is every analysis voxel whose distance to the centre is *strictly below* the
radius (rsatoolbox's convention: 27/93/251 voxels at radius 2/3/4 voxels), measured in mm
through the affine or in voxels. Spheres are truncated at the mask, and a mask voxel becomes a
centre when at least ``threshold`` of its sphere's in-volume voxels lie in the mask (and at least
``min_voxels`` of them). Neighbourhoods are built per chunk of centres from a fixed offset list
and an index volume, so memory grows with the chunk, not with the brain.

RDMs (upper triangles, row-major, conditions in index order) follow rsatoolbox's definitions:
``correlation`` 1 - Pearson r between condition means across voxels; ``euclidean`` squared
distance between condition means divided by the number of voxels; ``crossnobis`` leave-one-run-out
cross-validated squared distance (train = mean of the other runs' observations, test = this
run's, identity noise precision) divided by the number of voxels, averaged over folds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from egg_cli.errors import EggError
from egg_cli.rsm.volume import BrainPatterns

DISTANCES = ("correlation", "euclidean", "crossnobis")


def sphere_offsets(radius: float, affine: np.ndarray | None = None) -> np.ndarray:
    """Integer voxel offsets (n, 3) closer than ``radius`` to the centre.

    With ``affine`` the radius is in mm (distances through the affine's 3x3 part), otherwise in voxels.
    """
    if not radius > 0:
        raise EggError(f"radius={radius} must be positive")
    scale = np.eye(3) if affine is None else np.asarray(affine, dtype=np.float64)[:3, :3]
    smallest = np.linalg.svd(scale, compute_uv=False).min()
    reach = int(np.ceil(radius / smallest))
    grid = np.arange(-reach, reach + 1)
    offsets = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    distance = np.linalg.norm(offsets @ scale.T, axis=1)
    offsets = offsets[distance < radius]
    order = np.lexsort((offsets[:, 2], offsets[:, 1], offsets[:, 0], distance[distance < radius]))
    return offsets[order]


@dataclass
class Searchlights:
    """Centres (as indices into the mask's voxels) and the sphere used to gather their neighbours."""

    mask: np.ndarray
    offsets: np.ndarray
    centers: np.ndarray  # (n_centers,) indices into the True voxels of mask (C order)
    counts: np.ndarray  # (n_centers,) number of mask voxels in each sphere

    def __post_init__(self) -> None:
        self._coordinates = np.argwhere(self.mask)
        self._index = _index_volume(self.mask)

    @property
    def n_centers(self) -> int:
        return len(self.centers)

    @property
    def center_coordinates(self) -> np.ndarray:
        return self._coordinates[self.centers]

    def center_mask(self) -> np.ndarray:
        """Boolean volume of the searchlight centres."""
        out = np.zeros(self.mask.shape, dtype=bool)
        coords = self.center_coordinates
        out[tuple(coords.T)] = True
        return out

    def neighbours(self, centers: np.ndarray) -> np.ndarray:
        """(n, n_offsets) mask-voxel indices of the spheres around ``centers``; -1 outside the mask."""
        index = self._index
        coords = self._coordinates[centers][:, None, :] + self.offsets[None, :, :]
        inside = np.all((coords >= 0) & (coords < np.array(self.mask.shape)), axis=-1)
        coords = np.where(inside[..., None], coords, 0)
        found = index[coords[..., 0], coords[..., 1], coords[..., 2]]
        return np.where(inside, found, -1)


def _index_volume(mask: np.ndarray) -> np.ndarray:
    index = np.full(mask.shape, -1, dtype=np.int64)
    index[mask] = np.arange(int(mask.sum()))
    return index


def volume_searchlights(
    mask: np.ndarray, radius: float, affine: np.ndarray | None = None, threshold: float = 1.0, min_voxels: int = 2
) -> Searchlights:
    """Searchlight centres of ``mask``: sphere fraction in the mask >= ``threshold`` and >= ``min_voxels`` voxels."""
    if not 0 <= threshold <= 1:
        raise EggError(f"threshold={threshold} must lie in [0, 1]; it is the fraction of each sphere inside the mask")
    offsets = sphere_offsets(radius, affine)
    reach = np.abs(offsets).max(axis=0)
    kernel = np.zeros(tuple(2 * reach + 1), dtype=np.int32)
    kernel[tuple((offsets + reach).T)] = 1
    in_mask = ndimage.convolve(mask.astype(np.int32), kernel, mode="constant", cval=0)
    in_volume = ndimage.convolve(np.ones(mask.shape, dtype=np.int32), kernel, mode="constant", cval=0)
    counts, totals = in_mask[mask], in_volume[mask]
    good = (counts >= threshold * totals - 1e-9) & (counts >= min_voxels)
    if not good.any():
        raise EggError(
            f"no searchlight centre has >= {threshold:.0%} of its sphere (radius {radius}) in the mask and "
            f">= {min_voxels} voxels; expected a larger mask, a smaller radius or a lower threshold"
        )
    return Searchlights(mask=mask, offsets=offsets, centers=np.flatnonzero(good), counts=counts[good])


class RdmCalculator:
    """Searchlight RDMs for one set of brain patterns; ``rdms(centers)`` works on any chunk of centres."""

    def __init__(self, patterns: BrainPatterns, searchlights: Searchlights, distance: str = "correlation") -> None:
        if distance not in DISTANCES:
            raise EggError(f"distance={distance!r} is not supported; expected one of {DISTANCES}")
        if patterns.mask.shape != searchlights.mask.shape or not np.array_equal(patterns.mask, searchlights.mask):
            raise ValueError("searchlights were built on a different mask than the patterns")
        self.distance = distance
        self.searchlights = searchlights
        self.k = patterns.n_conditions
        self.rows, self.cols = np.triu_indices(self.k, 1)
        pad = np.zeros((1, self.k))
        if distance == "crossnobis":
            if patterns.runs is None or len(np.unique(patterns.runs)) < 2:
                raise EggError("distance=crossnobis needs observations from at least two runs; give events with a run column")
            self.train, self.test = _crossnobis_folds(patterns)
            self.train = [np.vstack([t.T, pad]) for t in self.train]
            self.test = [np.vstack([t.T, pad]) for t in self.test]
        else:
            self.means = np.vstack([patterns.condition_means().T, pad])  # (V + 1, K), last row = padding

    def rdms(self, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, K(K-1)/2) RDM vectors of ``centers`` (indices into searchlights.centers) and a validity flag.

        A searchlight is invalid when a distance is undefined (a condition pattern without variance
        across the sphere's voxels for correlation distance); its row is NaN.
        """
        idx = self.searchlights.neighbours(self.searchlights.centers[centers])
        valid_voxels = idx >= 0
        idx = np.where(valid_voxels, idx, -1)  # -1 selects the zero padding row
        count = valid_voxels.sum(1).astype(np.float64)
        if self.distance == "crossnobis":
            total = 0.0
            for train, test in zip(self.train, self.test):
                a, b = train[idx], test[idx]  # (n, m, K)
                kernel = np.matmul(a.transpose(0, 2, 1), b)
                diag = np.einsum("nkk->nk", kernel)
                total = total + (
                    diag[:, self.rows] + diag[:, self.cols] - kernel[:, self.rows, self.cols] - kernel[:, self.cols, self.rows]
                )
            out = total / len(self.train) / count[:, None]
            return out, np.isfinite(out).all(1)
        x = self.means[idx]  # (n, m, K)
        if self.distance == "correlation":
            mean = x.sum(1, keepdims=True) / count[:, None, None]
            x = (x - mean) * valid_voxels[..., None]
            gram = np.matmul(x.transpose(0, 2, 1), x)
            norm = np.sqrt(np.einsum("nkk->nk", gram))
            with np.errstate(invalid="ignore", divide="ignore"):
                out = 1.0 - gram[:, self.rows, self.cols] / (norm[:, self.rows] * norm[:, self.cols])
            ok = (norm > 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))).all(1)
            out[~ok] = np.nan
            return out, ok
        gram = np.matmul(x.transpose(0, 2, 1), x)
        diag = np.einsum("nkk->nk", gram)
        out = (diag[:, self.rows] + diag[:, self.cols] - 2 * gram[:, self.rows, self.cols]) / count[:, None]
        return out, np.isfinite(out).all(1)

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        """Consecutive index arrays over all centres."""
        n = self.searchlights.n_centers
        for start in range(0, n, chunk_size):
            yield np.arange(start, min(start + chunk_size, n))

    def all_rdms(self, chunk_size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """RDM vectors of every centre, computed chunk by chunk."""
        parts = [self.rdms(c) for c in self.chunks(chunk_size)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _crossnobis_folds(patterns: BrainPatterns) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per run: (K, V) mean of the other runs' observations per condition, and this run's mean."""
    k, v = patterns.n_conditions, patterns.n_voxels
    trains, tests = [], []
    for run in np.unique(patterns.runs):
        in_run = patterns.runs == run
        sets = []
        for select in (~in_run, in_run):
            cond = patterns.conditions[select]
            counts = np.bincount(cond, minlength=k)
            if (counts == 0).any():
                missing = np.flatnonzero(counts == 0)[:5].tolist()
                raise EggError(
                    f"run {run}: conditions {missing} are missing from a crossnobis fold; expected every condition in every run"
                )
            sums = np.zeros((k, v))
            np.add.at(sums, cond, patterns.data[select])
            sets.append(sums / counts[:, None])
        trains.append(sets[0])
        tests.append(sets[1])
    return trains, tests
