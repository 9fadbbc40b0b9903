"""Sweeps through a real SLURM cluster (``scripts/slurm_cluster.sh up``; `.ci/run` brings one up).

Tiny ``egg simulate`` and ``egg train`` jobs as one array through egg's SLURM launcher: a failing
job is recorded FAILED by SLURM's accounting (and mailed with ``mail-type=FAIL``), the submitting
egg waits for the array and reports the failure in one line with its log, ``egg collect`` lists
both jobs, and a request larger than any node is refused before sbatch. A training job that hits
its time limit is requeued and resumes from its checkpoint; one cancelled while running resumes
when the sweep runs again; without accounting egg says so once and still returns. Without a
reachable cluster every test skips with one line saying why. The test cluster's short requeue and
kill waits (see scripts/slurm_cluster.sh) keep these tests at about 4 minutes.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from data_assets import run_egg


def cluster_missing() -> str | None:
    """Why no SLURM cluster can take jobs here, or None when one answers."""
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "no SLURM cluster: sinfo/sacct not found (scripts/slurm_cluster.sh up starts one as root)"
    try:
        done = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "no SLURM cluster: sinfo did not answer within 10 s"
    if done.returncode != 0:
        return f"no SLURM cluster: sinfo failed ({(done.stderr.strip().splitlines() or ['no message'])[0]})"
    if not any(state.rstrip("*") in ("idle", "mix", "alloc") for state in done.stdout.split()):
        return f"no SLURM cluster: no node is up (sinfo states: {' '.join(done.stdout.split()) or 'none'})"
    return None


MISSING = cluster_missing()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]

TINY = ["simulation=v4_sim_tiny", "report.optimum.enabled=false", "progress=false"]
SMALL_JOBS = [
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=5",
]


TRAIN_JOBS = ["progress=false", "hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
MAIL_LOG = Path("/var/log/slurm/mail.log")  # where scripts/slurm_cluster.sh's MailProg records mails


def egg(*args: str, cwd: Path, env: dict[str, str] = ENV) -> subprocess.CompletedProcess:
    return run_egg(*args, cwd=cwd, env=env)


def start_egg(*args: str, cwd: Path, env: dict[str, str] = ENV) -> subprocess.Popen:
    """``egg <args>`` running in the background, its stdout (log lines) and stderr captured."""
    code = "import sys; from egg_cli.cli import main; main(sys.argv[1:])"
    pipe = subprocess.PIPE
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env, stdout=pipe, stderr=pipe, text=True)


def wait_for(condition, what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.2)


def squeue_ids() -> list[str]:
    """Every job and array task SLURM lists as pending, running or completing."""
    out = subprocess.run(["squeue", "--noheader", "--array", "--format=%i"], capture_output=True, text=True).stdout
    return out.split()


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """A dataset.h5 of the tiny simulated V4 world (8 neurons, 32x32 images; about 1 s per training epoch)."""
    folder = tmp_path_factory.mktemp("simulate")
    run = egg("simulate", *TINY, f"hydra.run.dir={folder}", cwd=folder)
    assert run.returncode == 0, run.stderr[-3000:]
    return folder / "dataset.h5"


def sacct_states(job_ids: list[str], timeout_s: float = 60) -> dict[str, str]:
    """SLURM's accounting state of each array task (``<array>_<task>``), once all have one."""
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(
            [
                "sacct",
                "--noheader",
                "--parsable2",
                "--allocations",
                "--format=JobID,State,ExitCode",
                f"--jobs={','.join(job_ids)}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        states = {job: f"{state} {code}" for job, state, code in (line.split("|") for line in out.splitlines() if line)}
        if all(states.get(j, "").split(" ")[0] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") for j in job_ids):
            return states
        time.sleep(2)
    raise AssertionError(f"sacct did not record final states for {job_ids} within {timeout_s} s: {states}")


def sacct_attempts(job_id: str, timeout_s: float = 60) -> list[str]:
    """SLURM's accounting state of every run of a job (``--duplicates``: requeued runs too), once the last has ended."""
    attempts: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        command = ["sacct", "--noheader", "--parsable2", "--duplicates", "--allocations", "--format=State", f"--jobs={job_id}"]
        attempts = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.split()
        if attempts and attempts[-1] not in ("PENDING", "RUNNING", "REQUEUED"):  # the result file can come first
            return attempts
        time.sleep(1)
    raise AssertionError(f"sacct did not record the end of job {job_id} within {timeout_s} s: {attempts}")


def test_a_failing_job_is_failed_in_sacct_reported_in_one_line_and_collected(tmp_path):
    sweep = tmp_path / "sweep"
    run = egg("simulate", "-m", *TINY, "simulation.overdispersion=0.0,-1", *SMALL_JOBS, f"hydra.sweep.dir={sweep}", cwd=tmp_path)

    assert run.returncode == 2, run.stderr[-3000:]
    (line,) = [ln for ln in run.stderr.splitlines() if ln.startswith("egg: error:")]
    assert line.startswith("egg: error: job 1 failed: simulation.overdispersion=-1 is not allowed; expected a number >= 0 (log: ")
    assert line.endswith(f"1 of 2 jobs finished (every job's status: egg collect {sweep})")
    records = [json.loads((sweep / str(num) / "job.json").read_text()) for num in (0, 1)]
    assert [r["status"] for r in records] == ["finished", "failed"]
    array = records[0]["job_id"].split("_")[0]
    assert [r["job_id"] for r in records] == [f"{array}_0", f"{array}_1"]  # one array job
    assert f"/.submitit/{array}_1/{array}_1_0_log.err)" in line

    states = sacct_states([r["job_id"] for r in records])
    assert states == {f"{array}_0": "COMPLETED 0:0", f"{array}_1": "FAILED 1:0"}

    collected = egg("collect", str(sweep), cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert "2 jobs: 1 finished, 1 failed, 0 running, 0 missing" in collected.stdout
    assert "- job 1 `simulation.overdispersion=-1`: simulation.overdispersion=-1 is not allowed" in collected.stdout


def test_a_request_larger_than_any_node_is_refused_before_sbatch(tmp_path):
    sweep = tmp_path / "sweep"
    run = egg(
        "simulate",
        "-m",
        *TINY,
        "seed=0,1",
        *SMALL_JOBS,
        "hydra.launcher.cpus_per_task=100000",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "egg: error: the sweep's jobs cannot run on partition" in run.stderr
    assert "hydra.launcher.cpus_per_task=100000 >" in run.stderr
    assert not sweep.exists()  # nothing submitted, nothing left behind


def test_a_cancelled_job_does_not_stop_the_wait_for_the_rest_of_the_array(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["simulate", "-m", *TINY, "seed=0,1,2", *SMALL_JOBS, "hydra.launcher.array_parallelism=1", f"hydra.sweep.dir={sweep}"]
    proc = start_egg(*args, cwd=tmp_path)
    deadline = time.monotonic() + 60
    pending = ""
    while not pending and time.monotonic() < deadline:  # one task at a time: job 1 waits behind job 0
        queue = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T %j"], capture_output=True, text=True).stdout
        pending = next((f.split()[0] for f in queue.splitlines() if f.split()[0].endswith("_1") and " PENDING " in f), "")
        time.sleep(0.2)
    assert pending, f"job 1 was never seen pending: {queue}"
    subprocess.run(["scancel", pending], check=True)
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()

    assert proc.returncode == 2, stderr[-3000:]
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("egg: error:")]
    assert "job 1 cancelled: ended without a result (state CANCELLED" in line
    assert line.endswith(f"2 of 3 jobs finished (every job's status: egg collect {sweep})")
    array = pending.split("_")[0]
    # SLURM keeps no record of an array task cancelled while pending: egg ends its wait through squeue
    assert sacct_states([f"{array}_0", f"{array}_2"]) == {f"{array}_0": "COMPLETED 0:0", f"{array}_2": "COMPLETED 0:0"}
    assert "no record in squeue or sacct" in line
    collected = egg("collect", str(sweep), cwd=tmp_path)
    assert "3 jobs: 2 finished, 0 failed, 0 running, 1 missing" in collected.stdout


def test_a_failed_job_sends_the_mail_that_mail_type_fail_asks_for(tmp_path):
    mail_prog = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    if not re.search(r"^MailProg\s*=\s*\S*record_mail\.sh$", mail_prog, re.MULTILINE):
        pytest.skip("the cluster's MailProg is not the recorder of scripts/slurm_cluster.sh")
    user = f"egg-test-{os.getpid()}-{time.time_ns()}@example.org"
    sweep = tmp_path / "sweep"
    mail = ["+hydra.launcher.additional_parameters.mail_type=FAIL", f"+hydra.launcher.additional_parameters.mail_user={user}"]
    run = egg(
        "simulate", "-m", *TINY, "simulation.overdispersion=0.0,-1", *SMALL_JOBS, *mail, f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )

    assert run.returncode == 2, run.stderr[-3000:]
    array = json.loads((sweep / "1" / "job.json").read_text())["job_id"].split("_")[0]

    def mails() -> list[str]:
        return [ln for ln in (MAIL_LOG.read_text().splitlines() if MAIL_LOG.exists() else []) if ln.endswith(user)]

    wait_for(mails, "a mail to the job's user", timeout_s=30)
    (line,) = mails()  # one mail for the array (mail_type=FAIL,ARRAY_TASKS would send one per failed task)
    assert f"Slurm Array Summary Job_id={array}_* ({array}) Name=simulate Failed, Mixed, ExitCode [0-1] {user}" in line


def test_a_training_job_at_its_time_limit_is_requeued_and_resumes_from_its_checkpoint(tmp_path, tiny_dataset):
    sweep = tmp_path / "sweep"
    # 87 s of training cannot fit in a 2-minute job signalled 60-90 s after its start (signal_delay_s
    # 30; SLURM checks time limits every 30 s), and what is left fits in the second run
    run = egg(
        "train",
        "-m",
        f"dataset_path={tiny_dataset}",
        "seed=1",
        "trainer.max_epochs=1000",
        "trainer.max_minutes=1.45",
        "trainer.patience=1000",  # no plateau stop: the time budget ends the training
        *TRAIN_JOBS,
        "hydra.launcher.timeout_min=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads((sweep / "0" / "job.json").read_text())
    job_id = record["job_id"]
    assert record["status"] == "finished" and record["slurm_restarts"] == 1
    assert sacct_attempts(job_id) == ["REQUEUED", "COMPLETED"]
    log = (sweep / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()
    assert f"Requeued job {job_id} (2 remaining timeouts)" in log
    training = json.loads((sweep / "0" / "summary.json").read_text())["training"]
    assert training["stop_reason"] == "reached trainer.max_minutes=1.45"
    assert training["sessions"] == 2 and training["resumed_after_epochs"][0] >= 1  # continued, not restarted
    history = json.loads((sweep / "0" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, training["epochs"] + 1))

    collected = egg("collect", str(sweep), "--metrics", "training.sessions", cwd=tmp_path)
    assert "1 jobs: 1 finished, 0 failed, 0 running, 0 missing" in collected.stdout, collected.stderr
    assert f"| finished | {training['sessions']} |" in collected.stdout  # the training.sessions column


def test_a_training_job_cancelled_while_running_resumes_when_the_sweep_runs_again(tmp_path, tiny_dataset):
    sweep = tmp_path / "sweep"
    args = ["train", "-m", f"dataset_path={tiny_dataset}", "trainer.max_epochs=2,15", *TRAIN_JOBS, f"hydra.sweep.dir={sweep}"]
    proc = start_egg(*args, cwd=tmp_path)
    try:
        wait_for((sweep / "1" / "training_state.pt").exists, "job 1's first epoch")
        job_id = json.loads((sweep / "1" / "job.json").read_text())["job_id"]
        subprocess.run(["scancel", job_id], check=True)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()

    assert proc.returncode == 2, stderr[-3000:]
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("egg: error:")]
    # slurmstepd's line for the batch script (JOB <id>) or the job's step (STEP <id>.0), whichever came first
    assert re.match(r"egg: error: job 1 cancelled: \*\*\* (JOB \d+|STEP \d+\.0) ON \S+ CANCELLED AT \S+ \*\*\* \(log: ", line), (
        line
    )
    assert line.endswith(f"1 of 2 jobs finished (every job's status: egg collect {sweep})")
    finished = json.loads((sweep / "0" / "job.json").read_text())["job_id"]
    states = sacct_states([finished, job_id])
    assert states[finished] == "COMPLETED 0:0" and states[job_id].startswith("CANCELLED"), states
    wait_for(lambda: job_id not in squeue_ids(), "the end of the cancelled job's processes", timeout_s=60)
    model_0 = (sweep / "0" / "model.pt").stat().st_mtime_ns

    again = egg(*args, cwd=tmp_path)

    assert again.returncode == 0, again.stderr[-3000:]
    assert "already finished with this config" in (sweep / "0" / "train.log").read_text()
    assert (sweep / "0" / "model.pt").stat().st_mtime_ns == model_0  # skipped, not retrained
    training = json.loads((sweep / "1" / "summary.json").read_text())["training"]
    assert training["epochs"] == 15 and training["sessions"] == 2 and training["resumed_after_epochs"][0] >= 1
    collected = egg("collect", str(sweep), cwd=tmp_path)
    assert "2 jobs: 2 finished, 0 failed, 0 running, 0 missing" in collected.stdout, collected.stderr


def test_without_accounting_egg_says_so_once_and_returns_when_slurm_kills_a_job(tmp_path, tiny_dataset):
    # what the submitter sees on a cluster with AccountingStorageType=accounting_storage/none
    # (seen on the test cluster: sacct prints this line and exits 1)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    (bin_dir / "sacct").chmod(0o755)
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}"}
    sweep = tmp_path / "sweep"
    args = ["train", "-m", f"dataset_path={tiny_dataset}", "trainer.max_epochs=1,200", *TRAIN_JOBS, f"hydra.sweep.dir={sweep}"]
    proc = start_egg(*args, cwd=tmp_path, env=env)
    try:
        wait_for(lambda: (sweep / "1" / "job.json").exists(), "job 1's start")
        subprocess.run(["scancel", json.loads((sweep / "1" / "job.json").read_text())["job_id"]], check=True)
        cancelled = time.monotonic()
        stdout, stderr = proc.communicate(timeout=120)
        waited = time.monotonic() - cancelled
    finally:
        proc.kill()

    assert proc.returncode == 2, stderr[-3000:]
    about_sacct = [ln for ln in (stdout + stderr).splitlines() if "sacct" in ln]
    assert len(about_sacct) == 1 and about_sacct[0].endswith(
        "sacct cannot report job states (Slurm accounting storage is disabled): egg reads them from squeue while it waits"
    ), about_sacct
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("egg: error:")]
    assert "job 1 cancelled: " in line and "1 of 2 jobs finished" in line
    assert waited < 60, f"egg took {waited:.0f} s to notice the cancelled job"
