"""NIfTI condition patterns and masks for searchlight RSA: loading, grid checks, NaN exclusion.

Patterns are read voxel-wise inside the mask only (``img.dataobj`` slice by slice), so a whole
brain never has to sit in memory as a dense 4D float array.
"""

from __future__ import annotations

import glob
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from egg_cli.errors import EggError, first_line
from egg_cli.runtime import optional_import

log = logging.getLogger(__name__)

AFFINE_TOLERANCE_MM = 1e-3
MIN_CONDITIONS = 3


@dataclass
class BrainPatterns:
    """Response patterns inside the analysis mask.

    ``data`` is (observations, voxels); ``conditions`` (observations,) holds indices 0..K-1 into
    the model RDMs; ``runs`` (observations,) the run of each observation, or None.
    ``mask`` is the final analysis mask (input mask minus voxels with non-finite values) and
    ``data[:, v]`` belongs to the v-th True voxel of ``mask`` in C order.
    """

    data: np.ndarray
    conditions: np.ndarray
    runs: np.ndarray | None
    mask: np.ndarray
    affine: np.ndarray
    n_excluded: int = 0

    @property
    def n_conditions(self) -> int:
        return int(self.conditions.max()) + 1

    @property
    def n_voxels(self) -> int:
        return self.data.shape[1]

    def condition_means(self) -> np.ndarray:
        """(K, voxels) mean pattern of each condition over its observations."""
        sums = np.zeros((self.n_conditions, self.n_voxels))
        np.add.at(sums, self.conditions, self.data)
        return sums / np.bincount(self.conditions, minlength=self.n_conditions)[:, None]


def nibabel() -> ModuleType:
    """nibabel, the optional dependency of NIfTI input and output (``pip install 'egg-cli[fmri]'``)."""
    return optional_import("nibabel", "fmri", "reading and writing NIfTI images")


def _load_image(path: str | Path, what: str):
    nib = nibabel()
    path = Path(path)
    if not path.is_file():
        raise EggError(f"{what}={path} does not exist; expected a NIfTI file (.nii or .nii.gz)")
    try:
        return nib.load(str(path))
    except Exception as err:
        raise EggError(f"{what}={path} cannot be read as NIfTI: {err}") from err


def check_same_grid(
    shape_a: Sequence[int], affine_a: np.ndarray, name_a: str, shape_b: Sequence[int], affine_b: np.ndarray, name_b: str
) -> None:
    """Raise if two images differ in voxel grid (shape) or in their voxel-to-mm affine."""
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        raise EggError(
            f"{name_b} has grid {tuple(shape_b[:3])} but {name_a} has {tuple(shape_a[:3])}; "
            "expected mask and data on the same voxel grid (resample one onto the other)"
        )
    if not np.allclose(affine_a, affine_b, atol=AFFINE_TOLERANCE_MM):
        diff = float(np.abs(np.asarray(affine_a) - np.asarray(affine_b)).max())
        raise EggError(
            f"{name_b} and {name_a} have different affines (largest difference {diff:.4g} mm); "
            "expected the same voxel-to-world mapping"
        )


def load_mask(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Binary 3D mask (nonzero, finite voxels) and its affine."""
    img = _load_image(path, "mask")
    data = np.asarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise EggError(f"mask={path} has {data.ndim} dimensions; expected a 3D volume")
    mask = np.isfinite(data) & (data != 0)
    if not mask.any():
        raise EggError(f"mask={path} has no nonzero voxels; expected a brain or region mask")
    return mask, np.asarray(img.affine, dtype=np.float64)


def expand_data_paths(data: str | Sequence[str]) -> list[Path]:
    """One 4D path, a glob pattern, or a list of 3D paths (one per condition/observation)."""
    if isinstance(data, (str, Path)):
        text = str(data)
        if any(ch in text for ch in "*?["):
            paths = sorted(Path(p) for p in glob.glob(text))
            if not paths:
                raise EggError(f"data={text} matches no files; expected NIfTI files")
            return paths
        return [Path(text)]
    paths = [Path(p) for p in data]
    if not paths:
        raise EggError("data is an empty list; expected a 4D NIfTI file or one file per condition")
    return paths


def read_events(path: str | Path | None, n_observations: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Condition index (and run, if the file has a ``run`` column) of every observation.

    Without an events file each observation is its own condition. The file is CSV or TSV with a
    header holding ``condition`` (integers 0..K-1, the order of the model RDMs) and optionally ``run``.
    """
    if path is None:
        return np.arange(n_observations), None
    import csv

    path = Path(path)
    if not path.is_file():
        raise EggError(f"events={path} does not exist; expected a CSV/TSV file with a condition column")
    with open(path, newline="") as f:
        text = f.read()
    delimiter = "\t" if "\t" in text.splitlines()[0] else ","
    rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    if not rows or "condition" not in rows[0]:
        raise EggError(f"events={path} has no 'condition' column; expected a header with condition (and run)")
    if len(rows) != n_observations:
        raise EggError(
            f"events={path} has {len(rows)} rows but the data have {n_observations} volumes; expected one row per volume"
        )
    try:
        conditions = np.array([int(r["condition"]) for r in rows])
        runs = np.array([int(r["run"]) for r in rows]) if "run" in rows[0] else None
        volumes = np.array([int(r["volume"]) for r in rows]) if "volume" in rows[0] else None
    except ValueError as err:
        raise EggError(f"events={path}: {err}; expected integer condition (and run, volume) values") from err
    if volumes is not None:  # rows may come in any order; each volume of the data exactly once
        if not np.array_equal(np.sort(volumes), np.arange(n_observations)):
            bad = next((int(v) for v in volumes if not 0 <= v < n_observations), None)
            problem = f"volume {bad} points past the data" if bad is not None else "a volume occurs twice"
            raise EggError(
                f"events={path}: {problem} ({n_observations} volumes); expected each volume index 0..{n_observations - 1} once"
            )
        order = np.argsort(volumes)
        conditions, runs = conditions[order], None if runs is None else runs[order]
    present = np.unique(conditions)
    if present[0] != 0 or len(present) != present[-1] + 1:
        raise EggError(f"events={path}: conditions are {present.tolist()[:10]}...; expected every integer 0..K-1 to occur")
    return conditions, runs


def load_patterns(
    data: str | Sequence[str],
    mask_path: str | Path | None,
    events: str | Path | None = None,
    min_conditions: int = MIN_CONDITIONS,
) -> BrainPatterns:
    """Read condition patterns (a 4D NIfTI or one 3D file each) inside a mask.

    Voxels with a non-finite value in any observation are dropped from the mask with a warning.
    Without a mask, every voxel that is finite and nonzero in some observation is analysed.
    """
    paths = expand_data_paths(data)
    images = [_load_image(p, "data") for p in paths]
    first = images[0]
    for path, img in zip(paths[1:], images[1:]):
        check_same_grid(first.shape, first.affine, f"data file {paths[0]}", img.shape, img.affine, f"data file {path}")
    volumes = [(img, t) for img in images for t in range(img.shape[3] if len(img.shape) == 4 else 1)]
    for path, img in zip(paths, images):
        if len(img.shape) not in (3, 4):
            raise EggError(f"data file {path} has {len(img.shape)} dimensions; expected 3D or 4D NIfTI")
    if mask_path is not None:
        mask, mask_affine = load_mask(mask_path)
        check_same_grid(mask.shape, mask_affine, f"mask {mask_path}", first.shape, first.affine, f"data {paths[0]}")
    else:
        mask = None
    conditions, runs = read_events(events, len(volumes))
    n_conditions = int(conditions.max()) + 1
    if n_conditions < min_conditions:
        raise EggError(
            f"data {paths[0]} give {n_conditions} conditions; expected at least {min_conditions} for an RDM comparison"
        )

    def volume(img, t):
        try:
            return np.asarray(img.dataobj[..., t] if len(img.shape) == 4 else img.dataobj, dtype=np.float64)
        except (EOFError, OSError, ValueError, zlib.error) as err:  # a truncated or corrupt .nii.gz
            raise EggError(
                f"data file {img.get_filename()} cannot be read (truncated or corrupt: {first_line(str(err))}); "
                "expected a complete NIfTI file"
            ) from err

    if mask is None:
        nonzero = np.zeros(first.shape[:3], dtype=bool)
        for img, t in volumes:
            v = volume(img, t)
            nonzero |= np.isfinite(v) & (v != 0)
        mask = nonzero
        log.info("no mask given: analysing the %d voxels that are nonzero in some volume", int(mask.sum()))
    values = np.stack([volume(img, t)[mask] for img, t in volumes])
    finite = np.isfinite(values).all(axis=0)
    n_bad = int((~finite).sum())
    if n_bad:
        log.warning(
            "%d of %d mask voxels have NaN or infinite values in some volume of %s: excluded from the analysis",
            n_bad,
            finite.size,
            paths[0],
        )
        keep = mask.copy()
        keep[mask] = finite
        mask, values = keep, values[:, finite]
    if values.shape[1] == 0:
        raise EggError(f"data {paths[0]}: no voxel inside the mask has finite values; expected usable data")
    if not np.any(values.std(axis=0) > 0):
        raise EggError(
            f"data {paths[0]}: every voxel has the same value in all {len(values)} volumes (constant BOLD); "
            "expected patterns that vary across conditions"
        )
    return BrainPatterns(
        data=values,
        conditions=conditions,
        runs=runs,
        mask=mask,
        affine=np.asarray(first.affine, dtype=np.float64),
        n_excluded=n_bad,
    )


def save_volume(
    path: str | Path,
    values: np.ndarray,
    mask: np.ndarray,
    affine: np.ndarray,
    fill: float = 0.0,
    dtype: type = np.float32,
    tr: float | None = None,
) -> None:
    """Write per-voxel ``values`` ((V,) or (V, T)) at the True voxels of ``mask`` as NIfTI, atomically.

    ``tr`` (s) goes into the header's fourth zoom of a 4D image.
    """
    nib = nibabel()
    from egg_cli.io import atomic_path

    values = np.asarray(values)
    shape = mask.shape + values.shape[1:]
    volume = np.full(shape, fill, dtype=dtype)
    volume[mask] = values
    img = nib.Nifti1Image(volume, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if tr is not None:
        img.header.set_zooms(img.header.get_zooms()[:3] + (tr,))
        img.header.set_xyzt_units("mm", "sec")
    path = Path(path)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + suffix)
        nib.save(img, str(target))
        target.replace(tmp)
