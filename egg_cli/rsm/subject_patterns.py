"""Response patterns of one subject from BIDS/fMRIPrep BOLD runs: first-level GLM per run.

Each run's BOLD series is read inside the analysis mask (the given mask, else the intersection
of the runs' ``_desc-brain_mask`` files), its events mapped to the stimulus set's image names,
its TR and confounds read (:mod:`egg_cli.rsm.bids`), and the GLM (:mod:`egg_cli.rsm.glm`) gives
one estimate per image present in the run. Observations are (run, image) pairs, so correlation
RDMs average the runs and crossnobis uses them as folds. Voxels with a non-finite estimate in any
run are dropped with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from egg_cli.errors import EggError
from egg_cli.rsm import bids
from egg_cli.rsm.design import Events
from egg_cli.rsm.glm import GlmConfig, first_level
from egg_cli.rsm.volume import BrainPatterns, check_same_grid, load_mask, nibabel

log = logging.getLogger(__name__)


@dataclass
class BidsSelection:
    """Which runs of a BIDS dataset to analyse and how to read them (config group ``bids``)."""

    root: str
    subjects: list[str] | None = None
    task: str | None = None
    space: str | None = None
    runs: list[str] | None = None
    desc: str = "preproc"
    events_root: str | None = None
    confounds: list[str] = field(default_factory=list)
    ignore_trial_types: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = str(self.root)
        self.confounds = [str(c) for c in self.confounds or []]
        self.ignore_trial_types = [str(t) for t in self.ignore_trial_types or []]

    def subject_labels(self) -> list[str]:
        """Requested subjects (``sub-`` prefix optional), or every subject of the dataset."""
        found = bids.subjects(self.root)
        if not self.subjects:
            if not found:
                raise EggError(f"bids.root={self.root} has no sub-<label> folders; expected a BIDS dataset")
            return found
        labels, missing = [], []
        for requested in self.subjects:
            text = str(requested).removeprefix("sub-")
            # a label written as a number (bids.subjects=[1]) also matches a zero-padded folder (sub-01)
            matches = [f for f in found if f == text or (f.isdigit() and text.isdigit() and int(f) == int(text))]
            (labels if len(matches) == 1 else missing).append(matches[0] if len(matches) == 1 else text)
        if missing:
            raise EggError(f"bids.subjects {missing} are not in {self.root}; expected some of {found}")
        return labels


@dataclass
class PlannedRun:
    """One run's checked inputs: its files, TR (s), events named after the images, confounds (N, C)."""

    files: bids.BidsRun
    tr: float
    events: Events
    confounds: np.ndarray


@dataclass
class SubjectRuns:
    """A subject's checked inputs: analysis mask, grid (affine) and runs."""

    subject: str
    mask: np.ndarray
    affine: np.ndarray
    runs: list[PlannedRun]


def prepare_subject(
    selection: BidsSelection, subject: str, names: Sequence[str], mask_path: str | Path | None = None
) -> SubjectRuns:
    """Find and check every input of ``subject`` (files, grids, TR, events, confounds) without fitting."""
    nib = nibabel()
    runs = bids.find_runs(
        selection.root, subject, selection.task, selection.space, selection.runs, selection.desc, selection.events_root
    )
    first = nib.load(str(runs[0].bold))
    if mask_path is not None:
        mask, mask_affine = load_mask(mask_path)
        check_same_grid(mask.shape, mask_affine, f"mask {mask_path}", first.shape, first.affine, f"data {runs[0].bold.name}")
    else:
        mask = _run_masks(runs, first)
    plans = []
    for run in runs:
        img = nib.load(str(run.bold))
        check_same_grid(first.shape, first.affine, f"data {runs[0].bold.name}", img.shape, img.affine, f"data {run.bold.name}")
        tr = bids.repetition_time(run)
        events = bids.condition_names(bids.read_events(run.events), names, run.events, selection.ignore_trial_types)
        confounds = bids.read_confounds(run, selection.confounds, img.shape[3])
        plans.append(PlannedRun(run, tr, events, confounds))
    return SubjectRuns(subject, mask, np.asarray(first.affine, dtype=np.float64), plans)


def glm_patterns(prepared: SubjectRuns, names: Sequence[str], glm: GlmConfig, confound_names: Sequence[str]) -> BrainPatterns:
    """(run x image, voxel) GLM estimates of a prepared subject, with image indices into ``names``."""
    subject, mask = prepared.subject, prepared.mask
    estimates, conditions, run_index = [], [], []
    for r, run in enumerate(tqdm(prepared.runs, desc=f"GLM sub-{subject}", leave=False)):
        data = masked_series(run.files.bold, mask)
        values, present = first_level(data, run.tr, run.events, names, glm, run.confounds, confound_names)
        estimates.append(values)
        conditions.append(present)
        run_index.append(np.full(len(present), r))
        log.info(
            "sub-%s %s: %d volumes, TR %.3g s, %d images, %d voxels",
            subject,
            run.files.name,
            len(data),
            run.tr,
            len(present),
            data.shape[1],
        )
    values = np.concatenate(estimates)
    finite = np.isfinite(values).all(0)
    n_bad = int((~finite).sum())
    if n_bad:
        log.warning("sub-%s: %d of %d mask voxels have non-finite data or estimates: excluded", subject, n_bad, finite.size)
        keep = mask.copy()
        keep[mask] = finite
        mask, values = keep, values[:, finite]
    if values.shape[1] == 0:
        raise EggError(f"sub-{subject}: no mask voxel has finite estimates; expected usable BOLD data")
    return BrainPatterns(
        data=values,
        conditions=np.concatenate(conditions),
        runs=np.concatenate(run_index),
        mask=mask,
        affine=prepared.affine,
        n_excluded=n_bad,
    )


def masked_series(path: Path, mask: np.ndarray, block: int = 32) -> np.ndarray:
    """(N, V) float32 time series at the mask voxels, read ``block`` volumes at a time.

    The file stays open between blocks, so a .nii.gz is decompressed once, front to back.
    """
    nib = nibabel()
    img = nib.load(str(path), keep_file_open=True)
    n = img.shape[3]
    out = np.empty((n, int(mask.sum())), dtype=np.float32)
    for start in range(0, n, block):
        volumes = np.asarray(img.dataobj[..., start : start + block], dtype=np.float32)
        out[start : start + volumes.shape[3]] = volumes[mask].T
    return out


def _run_masks(runs: list[bids.BidsRun], first) -> np.ndarray:
    """Intersection of the runs' brain masks (each on the BOLD grid)."""
    missing = [r.bold.name for r in runs if r.mask is None]
    if missing:
        raise EggError(f"{missing[0]}: no matching _desc-brain_mask.nii.gz; expected one per run or mask=<3D NIfTI>")
    mask = None
    for run in runs:
        m, affine = load_mask(run.mask)
        check_same_grid(first.shape, first.affine, f"data {runs[0].bold.name}", m.shape, affine, f"mask {run.mask.name}")
        mask = m if mask is None else mask & m
    if not mask.any():
        raise EggError(f"the brain masks of {runs[0].entities.get('sub')} do not overlap; expected runs in one space")
    return mask
