"""What the submitting egg asks SLURM about its jobs: states without accounting, forgotten tasks, timing.

submitit reads job states from ``sacct``. Without accounting (``AccountingStorageType=none``)
every poll prints ``Bypassing sacct error`` and sacct's own error, and a job SLURM killed stays
``UNKNOWN`` forever, so the submitter never returns. :func:`states_from_squeue_without_sacct`
asks sacct once and, when it cannot answer, says so in one line and reads the sweep's states
from ``squeue --states=all`` instead (which lists ended jobs for ``MinJobAge``, 300 s by default).
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from submitit.slurm.slurm import SlurmInfoWatcher

log = logging.getLogger("egg.sweep")


def _query(command: list[str]) -> subprocess.CompletedProcess | None:
    """Run a SLURM client command with its output captured; None when it cannot run or hangs."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


class SqueueWatcher(SlurmInfoWatcher):
    """submitit's job-state cache filled from ``squeue --states=all`` instead of sacct."""

    def _make_command(self) -> list[str] | None:
        arrays = sorted({job_id.split("_")[0] for job_id in self._registered - self._finished})
        if not arrays:
            return None
        return ["squeue", "--array", "--states=all", "--format=%i|%T|%N", f"--jobs={','.join(arrays)}"]

    def update(self) -> None:
        """Read the states of the registered jobs from squeue; a failed call changes nothing, silently."""
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        done = _query(command)
        if done is not None and done.returncode == 0:
            lines = done.stdout.splitlines()
            self._info_dict.update(self.read_info("\n".join(["JobID|State|NodeList", *lines[1:]])))
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)


def states_from_squeue_without_sacct(jobs: Sequence[Any]) -> None:
    """Ask sacct about the sweep's jobs once; when it fails, log one line and watch them through squeue."""
    arrays = sorted({str(job.job_id).split("_")[0] for job in jobs})
    if not arrays:
        return
    done = _query(["sacct", "--noheader", "--parsable2", "--format=JobID", f"--jobs={','.join(arrays)}"])
    if done is not None and done.returncode == 0:
        return
    reason = "sacct not found or not answering" if done is None else (done.stderr.strip().splitlines() or ["no message"])[0]
    log.warning("sacct cannot report job states (%s): egg reads them from squeue while it waits", reason)
    watcher = SqueueWatcher(delay_s=60)
    for job in jobs:
        job.watcher = watcher  # submitit's Job.state reads self.watcher
        watcher.register_job(str(job.job_id))


def unknown_to_slurm(jobs: Sequence[Any]) -> set[str]:
    """Ids of array tasks that neither sacct (submitit's state UNKNOWN) nor ``squeue --states=all`` lists."""
    unknown = [j for j in jobs if j.state == "UNKNOWN"]
    if not unknown:
        return set()
    arrays = sorted({str(j.job_id).split("_")[0] for j in unknown})
    queue = _query(["squeue", "--noheader", "--array", "--states=all", "--format=%i", f"--jobs={','.join(arrays)}"])
    if queue is None or queue.returncode != 0:
        return set()  # no answer now: ask again at the next poll
    listed = set(queue.stdout.split())
    return {j.job_id for j in unknown if j.job_id not in listed}


def fit_signal_delay(params: Mapping[str, Any]) -> int:
    """``signal_delay_s`` capped at a quarter of ``timeout_min``, so a short job is not signalled at its start.

    With the plugin's 120 s, a job limited to 2 minutes got the pre-timeout signal right away
    (SLURM's time-limit checks run every 30 s, so the signal comes up to 30 s early) and was
    stopped after 14 s.
    """
    delay = int(params.get("signal_delay_s") or 0)
    quarter = 60 * int(params["timeout_min"]) // 4
    if delay > quarter:
        log.info(
            "hydra.launcher.signal_delay_s=%d is more than a quarter of the %s-minute limit: using %d s",
            delay,
            params["timeout_min"],
            quarter,
        )
        return quarter
    return delay
