"""Sweeps through a real SLURM cluster (``scripts/slurm_cluster.sh up``; `.ci/run` brings one up).

Tiny ``egg simulate`` jobs as one array through egg's SLURM launcher: a failing job is recorded
FAILED by SLURM's accounting, the submitting egg waits for the array and reports the failure in
one line with its log, ``egg collect`` lists both jobs, and a request larger than any node is
refused before sbatch. Without a reachable cluster every test skips with one line saying why.
"""

import json
import os
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


def egg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_egg(*args, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    code = "import sys; from egg_cli.cli import main; main(sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
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
