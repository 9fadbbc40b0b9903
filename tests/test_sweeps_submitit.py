"""A real sweep through hydra-submitit-launcher's local executor (one subprocess per job).

Three tiny `egg simulate` jobs, one of them given an invalid value: the other two finish,
`egg collect` lists their metrics and the failure, and the second launch of the same sweep
skips the finished jobs and runs only the failed one again.
"""

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from data_assets import run_egg

TINY = [
    "simulation.n_neurons=3",
    "simulation.image_size=32",
    "simulation.n_train=30",
    "simulation.n_validation=8",
    "simulation.n_test=4",
    "simulation.test_repeats=2",
    "report.example_neurons=2",
    "progress=false",
    "simulation.neurons.orientations=4",
    "simulation.neurons.cycles_per_image=[4]",
]
# job 0: overdispersion 0.0, job 1: -1 (invalid: EggError inside the job), job 2: 0.2
SWEEP = ["simulation.overdispersion=0.0,-1,0.2"]


def egg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # no OMP_NUM_THREADS: the job's torch thread count must come from hydra.launcher.cpus_per_task
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return run_egg(*args, cwd=cwd, env=env, timeout=600)


def launch(sweep: Path) -> subprocess.CompletedProcess:
    return egg(
        "simulate",
        "-m",
        *TINY,
        *SWEEP,
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=10",
        f"hydra.sweep.dir={sweep}",
        cwd=sweep.parent,
    )


def job_json(sweep: Path, num: int) -> dict:
    return json.loads((sweep / str(num) / "job.json").read_text())


@pytest.mark.slow
def test_submitit_local_sweep_isolates_the_failed_job_collects_all_and_skips_finished_jobs_on_relaunch(tmp_path):
    sweep = tmp_path / "sweep"
    first = launch(sweep)
    # the sweep reports the failure after the other jobs ran
    assert first.returncode == 2, first.stderr[-3000:]
    assert "job 1 failed: simulation.overdispersion=-1 is not allowed" in first.stderr
    assert f"egg collect {sweep}" in first.stderr
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 3  # three submitit jobs, each its own process

    for num in (0, 2):
        record = job_json(sweep, num)
        assert record["status"] == "finished"
        assert record["device"] == "cpu" and record["precision"] == "float32"
        assert record["threads"] == 1  # from hydra.launcher.cpus_per_task=1
        assert json.loads((sweep / str(num) / "summary.json").read_text())["status"] == "finished"
    failed = job_json(sweep, 1)
    assert failed["status"] == "failed"
    assert failed["error"] == ("simulation.overdispersion=-1 is not allowed; expected a number >= 0")
    assert (sweep / "1" / "error.txt").read_text().strip() == failed["error"]
    assert (sweep / "1" / "config.yaml").exists()  # the failed job's folder is kept

    collected = egg("collect", str(sweep), cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert "3 jobs: 2 finished, 1 failed, 0 running, 0 missing" in collected.stdout
    assert "- job 1 `simulation.overdispersion=-1`: simulation.overdispersion=-1 is not allowed" in collected.stdout
    with open(sweep / "jobs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["simulation.overdispersion"], r["status"]) for r in rows] == [
        ("0", "0.0", "finished"),
        ("1", "-1", "failed"),
        ("2", "0.2", "finished"),
    ]
    for row in (rows[0], rows[2]):
        summary = json.loads((sweep / row["folder"] / "summary.json").read_text())
        assert float(row["median_oracle_correlation"]) == pytest.approx(summary["median_oracle_correlation"])
        assert float(row["mean_rate"]) == pytest.approx(summary["mean_rate"])
        assert float(row["trials"]) == 30 + 8 + 4 * 2
    assert rows[1]["median_oracle_correlation"] == "" and "overdispersion=-1 " in rows[1]["error"]
    assert (sweep / "jobs.md").read_text().count("| finished |") == 2

    before = {num: (sweep / str(num) / "summary.json").stat().st_mtime_ns for num in (0, 2)}
    second = launch(sweep)
    assert second.returncode == 2, second.stderr[-3000:]
    for num in (0, 2):
        assert (sweep / str(num) / "summary.json").stat().st_mtime_ns == before[num]  # not recomputed
        assert "already finished with this config" in (sweep / str(num) / "simulate.log").read_text()
    assert job_json(sweep, 1)["pid"] != failed["pid"]  # the failed job ran again, in a new process
    assert job_json(sweep, 1)["status"] == "failed"
