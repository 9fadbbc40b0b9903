"""BIDS / fMRIPrep layout: find a subject's runs, read events, repetition time and confounds; write datasets.

Files are matched by their entities (``key-value`` pairs of the name, suffix last):
``sub-<s>[_ses-<x>]_task-<t>[_run-<r>][_space-<sp>][_desc-preproc]_bold.nii.gz`` for the BOLD
series (fMRIPrep derivatives; raw ``_bold.nii.gz`` without ``desc`` when none has it), and for
the same subject/session/task/run: ``_events.tsv`` (columns onset, duration, trial_type; in the
dataset or in ``events_root``, the raw dataset), ``_desc-confounds_timeseries.tsv`` and
``[_space-<sp>]_desc-brain_mask.nii.gz``. The repetition time comes from the BOLD file's JSON
sidecar (or the task's top-level ``task-<t>_bold.json``) and the NIfTI header; when both give
one they must agree to 1 ms.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egg_cli.errors import EggError
from egg_cli.io import atomic_path, write_json
from egg_cli.rsm.design import Events
from egg_cli.rsm.volume import nibabel

RUN_KEYS = ("sub", "ses", "task", "run")
TR_TOLERANCE_S = 1e-3


def entities(path: str | Path) -> dict[str, str]:
    """Entities of a BIDS file name, plus ``suffix`` and ``extension``."""
    name = Path(path).name
    stem, dot, ext = name.partition(".")
    parts = stem.split("_")
    out = {"suffix": parts[-1], "extension": dot + ext}
    for part in parts[:-1]:
        key, _, value = part.partition("-")
        out[key] = value
    return out


@dataclass
class BidsRun:
    """Files of one BOLD run."""

    bold: Path
    events: Path
    confounds: Path | None
    mask: Path | None
    sidecar: Path | None
    entities: dict[str, str]

    @property
    def name(self) -> str:
        return "_".join(f"{k}-{self.entities[k]}" for k in RUN_KEYS if k in self.entities)


def _same_run(a: dict[str, str], b: dict[str, str]) -> bool:
    return all(a.get(k) == b.get(k) for k in RUN_KEYS)


def subjects(root: str | Path) -> list[str]:
    """Subject labels (``sub-<label>`` folders) of a dataset."""
    return sorted(p.name[4:] for p in Path(root).glob("sub-*") if p.is_dir())


def find_runs(
    root: str | Path,
    subject: str,
    task: str | None = None,
    space: str | None = None,
    runs: Sequence[str | int] | None = None,
    desc: str = "preproc",
    events_root: str | Path | None = None,
) -> list[BidsRun]:
    """The BOLD runs of ``subject`` matching the filters, with their events, confounds, mask and sidecar."""
    root = Path(root)
    if not root.is_dir():
        raise EggError(f"bids.root={root} is not a folder; expected a BIDS dataset or fMRIPrep derivatives root")
    folder = root / f"sub-{subject}"
    if not folder.is_dir():
        raise EggError(f"subject {subject!r} has no sub-{subject} folder in {root}; expected one of {subjects(root)}")
    candidates = [(p, entities(p)) for p in sorted(folder.rglob(f"sub-{subject}_*_bold.nii*"))]
    candidates = [(p, e) for p, e in candidates if e["suffix"] == "bold"]
    with_desc = [(p, e) for p, e in candidates if e.get("desc") == desc]
    candidates = with_desc or [(p, e) for p, e in candidates if "desc" not in e]
    for key, value in (("task", task), ("space", space)):
        if value is not None:
            candidates = [(p, e) for p, e in candidates if e.get(key) == str(value)]
        else:
            found = sorted({e.get(key, "") for _, e in candidates})
            if len(found) > 1:
                raise EggError(f"sub-{subject} has BOLD runs with {key} {found}; expected bids.{key}=<one of them>")
    if runs is not None:
        wanted = [_run_label(r) for r in runs]
        present = {_run_label(e.get("run", "")): (p, e) for p, e in candidates}
        missing = [r for r in wanted if r not in present]
        if missing:
            raise EggError(
                f"sub-{subject}: runs {missing} not found (task={task}, space={space}); expected some of {sorted(present)}"
            )
        candidates = [present[r] for r in wanted]
    if not candidates:
        raise EggError(
            f"sub-{subject}: no BOLD file matches task={task} space={space} desc={desc} under {folder}; "
            "expected sub-<s>_task-<t>_run-<r>[_space-<sp>]_desc-preproc_bold.nii.gz"
        )
    keys = [tuple(e.get(k) for k in RUN_KEYS) for _, e in candidates]
    doubles = [p.name for (p, _), key in zip(candidates, keys) if keys.count(key) > 1]
    if doubles:
        raise EggError(
            f"sub-{subject}: several BOLD files for one run ({', '.join(doubles[:2])}); expected filters that pick one"
        )
    event_files = [
        (p, entities(p)) for base in {root, Path(events_root or root)} for p in base.rglob(f"sub-{subject}_*_events.tsv")
    ]
    confound_files = [(p, entities(p)) for p in folder.rglob(f"sub-{subject}_*_timeseries.tsv")]
    confound_files += [(p, entities(p)) for p in folder.rglob(f"sub-{subject}_*_desc-confounds_regressors.tsv")]
    mask_files = [(p, entities(p)) for p in folder.rglob(f"sub-{subject}_*_mask.nii*")]
    out = []
    for path, ent in candidates:
        events = [p for p, e in event_files if _same_run(e, ent)]
        if not events:
            raise EggError(
                f"{path.name}: no matching _events.tsv (same sub/ses/task/run) in {root}; expected one, or set bids.events_root"
            )
        confounds = [p for p, e in confound_files if _same_run(e, ent) and e.get("desc") == "confounds"]
        masks = [
            p for p, e in mask_files if _same_run(e, ent) and e.get("desc") == "brain" and e.get("space") == ent.get("space")
        ]
        sidecar = _sidecar(path, root, ent)
        out.append(BidsRun(path, events[0], confounds[0] if confounds else None, masks[0] if masks else None, sidecar, ent))
    return out


def _run_label(run: str | int) -> str:
    text = str(run)
    return str(int(text)) if text.isdigit() else text


def _sidecar(bold: Path, root: Path, ent: dict[str, str]) -> Path | None:
    """The BOLD file's own JSON sidecar, else the task's top-level one."""
    own = bold.with_name(bold.name.split(".")[0] + ".json")
    if own.is_file():
        return own
    top = root / f"task-{ent.get('task')}_bold.json"
    return top if top.is_file() else None


def repetition_time(run: BidsRun) -> float:
    """TR (s) from the sidecar and/or the header; both present and different is an error."""
    nib = nibabel()
    header_tr = None
    img = nib.load(str(run.bold))
    if len(img.shape) != 4:
        raise EggError(f"{run.bold}: shape {img.shape}; expected a 4D BOLD series")
    zooms = img.header.get_zooms()
    if len(zooms) > 3 and zooms[3] > 0:
        unit = img.header.get_xyzt_units()[1]
        header_tr = float(zooms[3]) / (1000.0 if unit == "msec" else 1.0)
    sidecar_tr = None
    if run.sidecar is not None:
        try:
            meta = json.loads(run.sidecar.read_text())
        except json.JSONDecodeError as err:
            raise EggError(f"{run.sidecar}: not valid JSON ({err}); expected a BIDS sidecar") from err
        if "RepetitionTime" in meta:
            sidecar_tr = float(meta["RepetitionTime"])
    if sidecar_tr is not None and header_tr is not None and abs(sidecar_tr - header_tr) > TR_TOLERANCE_S:
        raise EggError(
            f"{run.bold.name}: RepetitionTime {sidecar_tr} s in {run.sidecar.name} but {header_tr} s in the NIfTI header; "
            "expected the same TR (fix the sidecar or the header)"
        )
    tr = sidecar_tr if sidecar_tr is not None else header_tr
    if tr is None or not tr > 0:
        raise EggError(f"{run.bold.name}: no RepetitionTime in a JSON sidecar or the header; expected a TR in seconds")
    return tr


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows of a tab-separated file with a header."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_events(path: Path) -> Events:
    """Events of a run (onset and duration in s, trial_type as text)."""
    rows = read_tsv(path)
    if not rows:
        raise EggError(f"{path}: no events; expected rows with onset, duration and trial_type")
    missing = [c for c in ("onset", "duration", "trial_type") if c not in rows[0]]
    if missing:
        raise EggError(f"{path}: columns {missing} are missing; expected onset, duration and trial_type")
    try:
        onset = np.array([float(r["onset"]) for r in rows])
        duration = np.array([float(r["duration"]) if r["duration"] not in ("n/a", "") else 0.0 for r in rows])
    except ValueError as err:
        raise EggError(f"{path}: {err}; expected numeric onset and duration in seconds") from err
    return Events(onset, duration, np.array([r["trial_type"] for r in rows]))


def condition_names(events: Events, names: Sequence[str], source: Path, ignore: Sequence[str] = ()) -> Events:
    """Events with trial types mapped to the stimulus set's names (a name, or its index 0..K-1).

    Trial types listed in ``ignore`` are kept under their own name (modelled as nuisance regressors).
    Any other trial type that matches no image is an error.
    """
    lookup = {name: name for name in names} | {str(i): name for i, name in enumerate(names)}
    lookup |= {name: name for name in ignore}
    unknown = sorted(set(events.trial_type.tolist()) - set(lookup))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise EggError(
            f"{source}: trial_type {shown} matches no image of the stimulus set; expected image names "
            f"({names[0]} ... {names[-1]}), indices 0..{len(names) - 1}, or list it in ignore_trial_types"
        )
    return Events(events.onset, events.duration, np.array([lookup[t] for t in events.trial_type]))


def read_confounds(run: BidsRun, columns: Sequence[str], n_scans: int) -> np.ndarray:
    """(N, C) selected confound columns; ``n/a`` (e.g. the first framewise displacement) becomes 0."""
    if not columns:
        return np.zeros((n_scans, 0))
    if run.confounds is None:
        raise EggError(f"{run.bold.name}: confounds {list(columns)} requested but no _desc-confounds_timeseries.tsv was found")
    rows = read_tsv(run.confounds)
    missing = [c for c in columns if not rows or c not in rows[0]]
    if missing:
        available = list(rows[0]) if rows else []
        raise EggError(f"{run.confounds.name}: confound columns {missing} do not exist; expected some of {available[:12]}")
    if len(rows) != n_scans:
        raise EggError(
            f"{run.confounds.name}: {len(rows)} rows but the BOLD series has {n_scans} volumes; expected one per volume"
        )
    values = np.array([[float(r[c]) if r[c] not in ("n/a", "") else np.nan for c in columns] for r in rows])
    return np.nan_to_num(values)


def write_tsv(path: Path, columns: dict[str, Sequence]) -> None:
    """Tab-separated file from equal-length columns (NaN written as n/a), atomically."""
    names = list(columns)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        f.write("\t".join(names) + "\n")
        for row in zip(*(columns[n] for n in names)):
            f.write("\t".join(_cell(v) for v in row) + "\n")


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if np.isnan(value) else f"{value:.6g}"
    return str(value)


def write_dataset_description(root: Path, name: str) -> None:
    """``dataset_description.json`` of a derivative dataset generated by egg."""
    write_json(
        root / "dataset_description.json",
        {"Name": name, "BIDSVersion": "1.9.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": "egg rsm simulate"}]},
    )


def write_bold_run(
    root: Path,
    subject: str,
    task: str,
    run: int,
    space: str,
    data: np.ndarray,
    mask: np.ndarray,
    affine: np.ndarray,
    tr: float,
    events: Events,
    confounds: dict[str, np.ndarray],
) -> Path:
    """One fMRIPrep-style run: preprocessed BOLD (+ sidecar), brain mask, events and confounds."""
    from egg_cli.rsm.volume import save_volume

    func = root / f"sub-{subject}" / "func"
    base = f"sub-{subject}_task-{task}_run-{run}"
    bold = func / f"{base}_space-{space}_desc-preproc_bold.nii.gz"
    save_volume(bold, data.T, mask, affine, tr=tr)
    write_json(
        bold.with_name(bold.name.replace(".nii.gz", ".json")), {"RepetitionTime": tr, "TaskName": task, "SkullStripped": True}
    )
    save_volume(
        func / f"{base}_space-{space}_desc-brain_mask.nii.gz", np.ones(int(mask.sum()), np.uint8), mask, affine, dtype=np.uint8
    )
    write_tsv(func / f"{base}_events.tsv", {"onset": events.onset, "duration": events.duration, "trial_type": events.trial_type})
    write_tsv(func / f"{base}_desc-confounds_timeseries.tsv", confounds)
    return bold
