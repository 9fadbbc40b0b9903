"""egg's submitit launcher behaviour: every job's outcome collected, failures reported in one line.

hydra-submitit-launcher returns ``job.results()`` job by job, so the first cancelled or failed
job stops the submitting process while later jobs still run, and its error carries the job's
whole stderr. egg's launchers (``hydra_plugins/egg_launcher``, where Hydra looks for plugins)

- fail the job *inside* the job when the egg command failed, so SLURM records ``FAILED``
  (Hydra otherwise returns the failure as a value and the job exits 0: ``COMPLETED``);
- check the request against the partition with ``sinfo`` before ``sbatch`` (SLURM only), and cap
  the pre-timeout signal's delay at a quarter of the time limit;
- read job states from ``squeue`` when ``sacct`` cannot answer (SLURM without accounting);
- wait for every job of the array, then raise one :class:`SweepFailed` naming each failed job's
  first error line and its log file; an interrupted wait cancels the jobs it submitted.
"""

from __future__ import annotations

import logging
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

from egg_cli.errors import EggError
from egg_cli.sweeps.partition import check_request

log = logging.getLogger("egg.sweep")


class SweepFailed(CompactHydraException):
    """Some jobs of a sweep did not finish; Hydra prints this one message and exits non-zero."""


@dataclass(frozen=True)
class Outcome:
    """How one submitted job ended, as the submitting process sees it."""

    num: int
    result: JobReturn | None  # None when the job raised or ended without a result
    state: str  # the scheduler's state: COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    log_file: Path

    def line(self) -> str:
        """``job N <state>: <first error line> (log: <file>)`` for a job without a result."""
        return f"job {self.num} {self.verb()}: {first_error_line(self.log_file, self.state)} (log: {self.log_file})"

    def verb(self) -> str:
        state = self.state.split()[0].upper() if self.state else ""
        return {"CANCELLED": "cancelled", "TIMEOUT": "timed out", "OUT_OF_MEMORY": "ran out of memory"}.get(state, "failed")


def first_error_line(log_file: Path, state: str) -> str:
    """The text after ``error:`` on the first line of a job log that has one (egg's or slurmstepd's)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    return f"ended without a result (state {state or 'unknown'})"


def summary(outcomes: Sequence[Outcome], sweep_dir: str) -> str:
    """One line: each job without a result, how many finished, and where every job's status is."""
    failed = [o for o in outcomes if o.result is None]
    return (
        f"{'; '.join(o.line() for o in failed)}; {len(outcomes) - len(failed)} of {len(outcomes)} jobs finished"
        f" (every job's status: egg collect {sweep_dir})"
    )


class OutcomeLauncher(BaseSubmititLauncher):
    """A submitit launcher that fails jobs inside the job and reports every outcome (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Run one job inside its process; raise its error so the process exits non-zero.

        Once the command has ended, the pre-timeout signal is ignored: arriving while the process
        exits, it would requeue a finished job or kill it (SLURM then records FAILED).
        """
        import submitit

        try:
            result = super().__call__(*args, **kwargs)
        finally:
            signal.signal(getattr(signal, f"SIG{submitit.JobEnvironment.USR_SIG}"), signal.SIG_IGN)
        if result.status == JobStatus.FAILED:
            _ = result.return_value  # re-raises the job's exception (the error line is already logged)
        return result

    @staticmethod
    def gone(jobs: Sequence[Any]) -> set[str]:
        """Ids of jobs the scheduler has forgotten (none for local jobs: their processes are watched)."""
        return set()

    @staticmethod
    def watch(jobs: Sequence[Any]) -> None:
        """Choose where the states of the submitted jobs come from (local jobs: submitit's own watcher)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Submit the jobs, wait for all of them, and raise :class:`SweepFailed` if any did not finish."""
        import submitit

        jobs: list[Any] = []
        original = submitit.AutoExecutor.map_array

        def keep_jobs(executor: Any, fn: Any, *iterables: Any) -> list[Any]:
            jobs.extend(original(executor, fn, *iterables))
            return []  # the plugin then collects no results: egg waits for the jobs below

        submitit.AutoExecutor.map_array = keep_jobs
        try:
            super().launch(job_overrides, initial_job_idx)
        finally:
            submitit.AutoExecutor.map_array = original
        self.watch(jobs)
        outcomes = wait_for_all(jobs, initial_job_idx, self.gone)
        assert self.config is not None
        if any(o.result is None for o in outcomes):
            raise SweepFailed(summary(outcomes, str(self.config.hydra.sweep.dir)))
        return [o.result for o in outcomes if o.result is not None]


def wait_for_all(
    jobs: Sequence[Any],
    initial_job_idx: int,
    gone: Callable[[Sequence[Any]], set[str]] = lambda jobs: set(),
    poll_s: float = 2.0,
) -> list[Outcome]:
    """Wait for every submitit job; on Ctrl-C cancel those still queued or running and re-raise.

    ``gone(jobs)`` names the jobs the scheduler no longer knows (e.g. an array task cancelled
    while pending leaves no record in sacct or squeue); one named at two polls in a row ends.
    """
    from submitit.core.utils import pickle_load

    left, strikes, vanished = list(jobs), dict.fromkeys((j.job_id for j in jobs), 0), set()
    try:
        while left:
            missing = gone([j for j in left if not j.done()])
            for job in list(left):
                strikes[job.job_id] = strikes[job.job_id] + 1 if job.job_id in missing else 0
                if strikes[job.job_id] >= 2:
                    vanished.add(job.job_id)
                if job.done() or job.job_id in vanished:
                    left.remove(job)
            if left:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        for job in jobs:
            if not job.done():
                job.cancel(check=False)
        log.warning("interrupted: cancelled the sweep's unfinished jobs (%s)", ", ".join(str(j.job_id) for j in jobs))
        raise
    outcomes = []
    for num, job in enumerate(jobs, start=initial_job_idx):
        result = None
        if job.paths.result_pickle.exists():
            kind, value = pickle_load(job.paths.result_pickle)
            result = value if kind == "success" else None
        state = "COMPLETED" if result is not None else job.state
        if job.job_id in vanished:
            state = "CANCELLED before it started (no record in squeue or sacct)"
        outcomes.append(Outcome(num, result, state, job.paths.stderr))
    return outcomes


class SlurmOutcomeLauncher(OutcomeLauncher):
    """An :class:`OutcomeLauncher` for SLURM: the request checked against the partition before sbatch,
    the signal delay fitted to the time limit, states from squeue without sacct, and array tasks
    that SLURM forgot (cancelled while pending) counted as ended."""

    @staticmethod
    def gone(jobs: Sequence[Any]) -> set[str]:
        """Array tasks that neither sacct nor squeue lists (cancelled while pending)."""
        from egg_cli.sweeps.slurm_state import unknown_to_slurm  # imports submitit: not at plugin discovery

        return unknown_to_slurm(jobs)

    @staticmethod
    def watch(jobs: Sequence[Any]) -> None:
        """Job states from sacct, or from squeue when sacct cannot answer."""
        from egg_cli.sweeps.slurm_state import states_from_squeue_without_sacct

        states_from_squeue_without_sacct(jobs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            check_request(self.params)
        except EggError as err:  # before anything is submitted: one line, exit 2 (egg_cli.cli)
            assert self.config is not None
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            if {p.name for p in sweep_dir.iterdir()} <= {"multirun.yaml"}:  # a new sweep: leave nothing behind
                shutil.rmtree(sweep_dir)
            raise CompactHydraException(str(err)) from err
        from egg_cli.sweeps.slurm_state import fit_signal_delay

        self.params["signal_delay_s"] = fit_signal_delay(self.params)
        return super().launch(job_overrides, initial_job_idx)
