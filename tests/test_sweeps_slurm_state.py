"""What the submitting egg asks SLURM: states from squeue when sacct cannot answer, the signal delay."""

import logging

import pytest
from submitit.slurm.slurm import SlurmJob

from egg_cli.sweeps.slurm_state import fit_signal_delay, states_from_squeue_without_sacct

# squeue --array --states=all --format=%i|%T|%N for an array of three tasks
SQUEUE = "JOBID|STATE|NODELIST\n7_0|COMPLETED|node1\n7_1|CANCELLED|node1\n7_2|RUNNING|node2\n"


def fake_slurm(tmp_path, monkeypatch) -> None:
    """A PATH whose sacct fails as on a cluster without accounting and whose squeue prints SQUEUE."""
    (tmp_path / "squeue.out").write_text(SQUEUE)
    scripts = {
        "sacct": "#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n",
        "squeue": f"#!/bin/sh\nexec /bin/cat {tmp_path / 'squeue.out'}\n",
    }
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))


def test_without_sacct_states_come_from_squeue_and_the_failure_is_logged_once(tmp_path, monkeypatch, caplog, capfd):
    fake_slurm(tmp_path, monkeypatch)
    jobs = [SlurmJob(folder=tmp_path / "logs", job_id=f"7_{task}") for task in range(3)]
    with caplog.at_level(logging.INFO, logger="egg.sweep"):
        states_from_squeue_without_sacct(jobs)
        states = [[job.state for job in jobs] for _ in range(3)]
        done = [job.done() for job in jobs]

    assert states == [["COMPLETED", "CANCELLED", "RUNNING"]] * 3
    assert done == [True, True, False]  # a job SLURM cancelled ends the wait without a result file
    assert [r.getMessage() for r in caplog.records] == [
        "sacct cannot report job states (Slurm accounting storage is disabled): egg reads them from squeue while it waits"
    ]
    assert "accounting" not in capfd.readouterr().err  # sacct's own message was captured, not printed


def test_with_sacct_answering_submitit_keeps_its_watcher(tmp_path, monkeypatch, caplog):
    fake_slurm(tmp_path, monkeypatch)
    (tmp_path / "sacct").write_text("#!/bin/sh\necho '7_0|RUNNING|node1'\n")
    job = SlurmJob(folder=tmp_path / "logs", job_id="7_0")
    with caplog.at_level(logging.INFO, logger="egg.sweep"):
        states_from_squeue_without_sacct([job])
    assert job.watcher is SlurmJob.watcher and not caplog.records


@pytest.mark.parametrize(
    ("delay_s", "timeout_min", "used_s"),
    [(30, 1, 15), (30, 2, 30), (120, 2, 30), (30, 240, 30), (0, 1, 0)],
)
def test_the_signal_delay_is_capped_at_a_quarter_of_the_time_limit(delay_s, timeout_min, used_s):
    assert fit_signal_delay({"signal_delay_s": delay_s, "timeout_min": timeout_min}) == used_s
