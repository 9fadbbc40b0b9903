"""Bookkeeping of one job of a Hydra multirun sweep: status file, skip of finished jobs, failures.

Each job folder of a sweep holds ``job.json``, written by the command wrapper
(:mod:`egg_cli.cli.app`): ``status`` (``running`` -> ``finished`` or ``failed``), the job number
and overrides, a hash of the resolved config, where it ran (host, pid, device, precision,
threads; ``slurm_restarts`` when SLURM requeued it), timings and, for a failed job, its one-line
``error`` (the full text in ``error.txt``). A job whose ``job.json`` says ``finished`` for the same
config hash is skipped when the sweep runs again; a failed job keeps its folder so ``egg collect``
can report it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from egg_cli.errors import EggError
from egg_cli.io import atomic_path, write_json

log = logging.getLogger("egg.sweep")

JOB_FILE = "job.json"
ERROR_FILE = "error.txt"
SUMMARY_FILE = "summary.json"


class JobFailed(CompactHydraException):
    """A sweep job failed; Hydra prints this one message once the other jobs have run."""


def config_hash(resolved_yaml: str) -> str:
    """SHA-256 (hex, 16 digits) of a resolved config's YAML text."""
    return hashlib.sha256(resolved_yaml.encode()).hexdigest()[:16]


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when the file is absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def error_line(err: BaseException) -> str:
    """The one line that names a job's failure (an EggError's message, else type and message)."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    text = str(err) if isinstance(err, EggError) else f"{type(err).__name__}: {err}"
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


class SweepJob:
    """The multirun job running in this process, seen from its folder ``out``."""

    def __init__(self, out: Path, num: int, overrides: list[str], sweep_dir: Path, launcher: Mapping[str, Any], job_id: str = ""):
        self.out = out
        self.num = num
        self.overrides = overrides
        self.sweep_dir = sweep_dir
        self.launcher = launcher
        self.record: dict[str, Any] = {"job": num, "overrides": overrides, "job_id": job_id}
        self._started = time.perf_counter()

    @classmethod
    def current(cls, out: Path) -> SweepJob | None:
        """The job Hydra is running now, or None outside ``-m``/``--multirun``."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return None
        launcher = hc.launcher if isinstance(hc.launcher, DictConfig) else {}
        return cls(
            out,
            int(hc.job.num),
            [str(o) for o in hc.overrides.task],
            Path(str(hc.sweep.dir)),
            launcher,
            job_id=str(hc.job.get("id", "")),
        )

    def finished_summary(self, resolved_yaml: str) -> dict[str, Any] | None:
        """The summary of an earlier finished run of this job with the same resolved config, if any.

        Finished means job.json says so for this config hash and summary.json (written last by
        every command) says ``"status": "finished"``.
        """
        digest = config_hash(resolved_yaml)
        self.record["config_hash"] = digest
        previous = read_json(self.out / JOB_FILE) or {}
        summary = read_json(self.out / SUMMARY_FILE) or {}
        if previous.get("status") != "finished" or previous.get("config_hash") != digest or summary.get("status") != "finished":
            return None
        log.info("job %d (%s) already finished with this config in %s: skipped", self.num, " ".join(self.overrides), self.out)
        return summary

    def start(self, cfg: DictConfig) -> None:
        """Fit the job to its allocation, check device and precision, and mark it running."""
        import torch

        from egg_cli.runtime import resolve_device, resolve_precision

        cpus = self.launcher.get("cpus_per_task")
        if cpus and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(int(cpus))
        self.record.update(
            status="running",
            host=socket.gethostname(),
            pid=os.getpid(),
            started=time.strftime("%Y-%m-%dT%H:%M:%S"),
            threads=torch.get_num_threads(),
        )
        if os.environ.get("SLURM_RESTART_COUNT"):  # set by SLURM in a requeued job
            self.record["slurm_restarts"] = int(os.environ["SLURM_RESTART_COUNT"])
        if "device" in cfg:
            device = resolve_device(str(cfg.device))
            self.record["device"] = str(device)
            if device.type == "cuda":
                self.record["gpu"] = torch.cuda.get_device_name(device)
            if "precision" in cfg:
                self.record["precision"] = str(resolve_precision(str(cfg.precision), device)).removeprefix("torch.")
        (self.out / ERROR_FILE).unlink(missing_ok=True)  # from an earlier failed attempt
        write_json(self.out / JOB_FILE, self.record)

    def finish(self) -> None:
        """Mark the job finished (its summary.json is already written by the command)."""
        self.record.update(status="finished", duration_s=round(time.perf_counter() - self._started, 3))
        self.record.pop("error", None)
        write_json(self.out / JOB_FILE, self.record)

    def fail(self, err: BaseException) -> JobFailed:
        """Record the failure in job.json and error.txt; return the exception that reports it to Hydra."""
        line = error_line(err)
        self.record.update(status="failed", error=line, duration_s=round(time.perf_counter() - self._started, 3))
        write_json(self.out / JOB_FILE, self.record)
        detail = line if isinstance(err, (EggError, KeyboardInterrupt)) else "".join(traceback.format_exception(err))
        with atomic_path(self.out / ERROR_FILE) as tmp:
            tmp.write_text(detail.rstrip() + "\n")
        return JobFailed(f"job {self.num} failed: {line}; the other jobs ran (every job's status: egg collect {self.sweep_dir})")
