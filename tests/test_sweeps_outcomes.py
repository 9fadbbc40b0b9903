"""The submitting process waits for every job and reports the failed ones in one short line."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.utils import JobReturn, JobStatus
from submitit.core.utils import cloudpickle_dump

from egg_cli.sweeps.launcher import Outcome, first_error_line, summary, wait_for_all


class FakeJob:
    """A submitit job seen from the submitting process: its files, its scheduler state, done()."""

    def __init__(self, folder: Path, job_id: str, state: str, result: tuple | None = None, interrupt: bool = False):
        folder.mkdir(parents=True, exist_ok=True)
        self.job_id, self.state, self.interrupt, self.cancelled = job_id, state, interrupt, False
        self.paths = SimpleNamespace(result_pickle=folder / f"{job_id}_result.pkl", stderr=folder / f"{job_id}_log.err")
        if result is not None:
            cloudpickle_dump(result, self.paths.result_pickle)

    def done(self) -> bool:
        if self.interrupt:  # Ctrl-C arrives while the submitting process polls this job
            self.interrupt = False
            raise KeyboardInterrupt
        return self.paths.result_pickle.exists() or self.state in ("CANCELLED", "FAILED", "TIMEOUT")

    def cancel(self, check: bool = True) -> None:
        self.cancelled = True


def completed() -> JobReturn:
    ret = JobReturn()
    ret.status = JobStatus.COMPLETED
    return ret


def test_the_first_error_line_of_a_job_log_is_egg_s_line_not_the_traceback_or_progress(tmp_path):
    log = tmp_path / "log.err"
    log.write_text(
        "epoch 1: 100%|####| 30/30\r" * 2000
        + "\negg: error: simulation.overdispersion=-1 is not allowed\nError executing job\nTraceback ...\nValueError: x\n"
    )
    assert first_error_line(log, "FAILED") == "simulation.overdispersion=-1 is not allowed"


def test_a_job_cancelled_by_slurm_is_named_by_slurmstepd_s_line_and_its_state(tmp_path):
    log = tmp_path / "log.err"
    log.write_text("slurmstepd: error: *** JOB 12 ON vm CANCELLED AT 2026-11-29T20:01:02 ***\n")
    outcome = Outcome(3, None, "CANCELLED by 0", log)
    assert outcome.line() == f"job 3 cancelled: *** JOB 12 ON vm CANCELLED AT 2026-11-29T20:01:02 *** (log: {log})"
    assert first_error_line(tmp_path / "absent.err", "TIMEOUT") == "ended without a result (state TIMEOUT)"
    assert Outcome(4, None, "TIMEOUT", log).verb() == "timed out"


def test_every_job_is_waited_for_and_the_summary_names_each_failed_job_once(tmp_path):
    jobs = [
        FakeJob(tmp_path / "7_0", "7_0", "COMPLETED", ("success", completed())),
        FakeJob(tmp_path / "7_1", "7_1", "CANCELLED"),
        FakeJob(tmp_path / "7_2", "7_2", "FAILED", ("error", "Traceback ... JobFailed: job 2 failed")),
        FakeJob(tmp_path / "7_3", "7_3", "COMPLETED", ("success", completed())),
    ]
    jobs[2].paths.stderr.write_text("x" * 20_000 + "\negg: error: boom\n")
    outcomes = wait_for_all(jobs, initial_job_idx=0, poll_s=0)
    assert [o.result is not None for o in outcomes] == [True, False, False, True]
    line = summary(outcomes, "sweeps/s")
    assert line.startswith("job 1 cancelled: ended without a result (state CANCELLED) (log: ")
    assert "; job 2 failed: boom (log: " in line
    assert line.endswith("; 2 of 4 jobs finished (every job's status: egg collect sweeps/s)")
    assert len(line) < 400 and "\n" not in line


def test_an_interrupted_wait_cancels_the_jobs_still_queued_or_running(tmp_path):
    jobs = [
        FakeJob(tmp_path / "8_0", "8_0", "COMPLETED", ("success", completed())),
        FakeJob(tmp_path / "8_1", "8_1", "RUNNING", interrupt=True),
        FakeJob(tmp_path / "8_2", "8_2", "PENDING"),
    ]
    with pytest.raises(KeyboardInterrupt):
        wait_for_all(jobs, initial_job_idx=0, poll_s=0)
    assert [j.cancelled for j in jobs] == [False, True, True]


def test_a_task_the_scheduler_forgot_ends_the_wait_as_cancelled_after_two_polls(tmp_path):
    jobs = [
        FakeJob(tmp_path / "9_0", "9_0", "COMPLETED", ("success", completed())),
        FakeJob(tmp_path / "9_1", "9_1", "UNKNOWN"),  # cancelled while pending: no sacct or squeue record
    ]
    asked = []

    def gone(waiting):
        asked.append([j.job_id for j in waiting])
        return {"9_1"}

    outcomes = wait_for_all(jobs, initial_job_idx=0, gone=gone, poll_s=0)
    assert asked == [["9_1"], ["9_1"]]
    assert outcomes[1].verb() == "cancelled" and outcomes[1].result is None
    assert "no record in squeue or sacct" in outcomes[1].line()
