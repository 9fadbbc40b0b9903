"""Read a Hydra sweep folder back: every planned job with its overrides, status and headline metrics.

Planned jobs come from the sweep's ``multirun.yaml`` (expanded the way Hydra's basic sweeper
expands it), job folders from ``<job>/.hydra/overrides.yaml``; the two are matched by their
overrides, so a custom ``hydra.sweep.subdir`` works too. A job's status is read from the
``job.json`` that egg's command wrapper keeps (see :mod:`egg_cli.sweeps.jobs`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from egg_cli.errors import require
from egg_cli.sweeps.jobs import JOB_FILE, SUMMARY_FILE, read_json

log = logging.getLogger("egg.collect")

FINISHED, FAILED, RUNNING, MISSING = "finished", "failed", "running", "missing"
STATUSES = (FINISHED, FAILED, RUNNING, MISSING)


@dataclass
class JobResult:
    """One job of a sweep as found on disk."""

    num: int | None
    overrides: list[str]
    status: str
    folder: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    record: dict[str, Any] = field(default_factory=dict)  # the job's job.json


def collect_sweep(sweep_dir: str | os.PathLike, metrics: Sequence[str] = ()) -> list[JobResult]:
    """Every job of the sweep in ``sweep_dir``, planned jobs first in job order.

    ``metrics`` are glob patterns over the dotted keys of summary.json (e.g. ``"*correlation*"``);
    empty keeps every numeric entry.
    """
    sweep_dir = Path(sweep_dir)
    require(
        sweep_dir.is_dir(), f"{sweep_dir}: no such folder; expected the sweep folder (hydra.sweep.dir) of `egg <command> -m ...`"
    )
    found = {tuple(overrides): folder for folder, overrides in job_folders(sweep_dir)}
    planned = planned_jobs(sweep_dir)
    require(
        bool(found or planned),
        f"{sweep_dir}: not a sweep folder; expected multirun.yaml or job folders "
        "holding .hydra/overrides.yaml (written by `egg <command> -m ...`)",
    )
    results = []
    for num, overrides in enumerate(planned):
        folder = found.pop(tuple(overrides), None)
        results.append(read_job(folder, overrides, num, metrics) if folder else JobResult(num, overrides, MISSING))
    extra = [read_job(folder, list(overrides), None, metrics) for overrides, folder in found.items()]
    return results + sorted(extra, key=lambda r: (r.num is None, r.num or 0, str(r.folder)))


def planned_jobs(sweep_dir: Path) -> list[list[str]]:
    """The overrides of every job the sweep launched, in job-number order ([] when unknown)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return []
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        hydra_cfg = OmegaConf.load(path).hydra
        if not str(hydra_cfg.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return []  # another sweeper (e.g. Optuna) chooses its jobs as it goes
        params = hydra_cfg.sweeper.get("params") or {}
        arguments = [f"{key}={value}" for key, value in params.items()]
        arguments += [str(o) for o in hydra_cfg.overrides.task]
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), None)
    except Exception as err:  # an override the parser cannot expand without the config (e.g. glob)
        log.warning("%s: cannot expand the sweep (%s); listing the job folders only", path, err)
        return []
    return [list(job) for batch in batches for job in batch]


def job_folders(sweep_dir: Path) -> list[tuple[Path, list[str]]]:
    """(folder, overrides) of every job folder under ``sweep_dir``."""
    jobs = []
    for path in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
        folder = path.parent.parent
        if ".submitit" in folder.relative_to(sweep_dir).parts:
            continue
        overrides = OmegaConf.to_container(OmegaConf.load(path))
        jobs.append((folder, [str(o) for o in overrides] if isinstance(overrides, list) else []))
    return jobs


def read_job(folder: Path, overrides: list[str], num: int | None, metrics: Sequence[str] = ()) -> JobResult:
    """Status, error and headline metrics of the job in ``folder``."""
    record = read_json(folder / JOB_FILE) or {}
    summary = read_json(folder / SUMMARY_FILE)
    error = str(record.get("error", ""))
    if record:
        status = str(record.get("status", RUNNING))
        if status == RUNNING and not _process_alive(record):
            status = FAILED
            error = f"the job's process (pid {record.get('pid')}) ended without recording a result (killed or timed out?)"
    else:  # started but not yet marked, or written by a command outside egg's wrapper
        status = FINISHED if summary and summary.get("status") == FINISHED else RUNNING
    if num is None:
        num = record.get("job", _hydra_job_num(folder))
    values = headline_metrics(summary, metrics) if status == FINISHED and summary else {}
    return JobResult(num, overrides, status, folder, values, error, record)


def headline_metrics(summary: Mapping[str, Any], patterns: Sequence[str] = ()) -> dict[str, float]:
    """Numeric entries of a summary, nested keys joined by dots, optionally filtered by glob patterns."""
    flat: dict[str, float] = {}

    def walk(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{key}.{k}" if key else str(k), v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = value

    walk("", summary)
    if patterns:
        flat = {k: v for k, v in flat.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}
    return flat


def _process_alive(record: Mapping[str, Any]) -> bool:
    """False only when the job ran on this host and its process is gone; elsewhere we cannot tell."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _hydra_job_num(folder: Path) -> int | None:
    try:
        return int(OmegaConf.load(folder / ".hydra" / "hydra.yaml").hydra.job.num)
    except Exception:  # an unreadable or partial hydra.yaml: the job has no number
        return None
