"""Sweep job bookkeeping: job.json states, skip of finished jobs, failure records, thread and device setup."""

import json
import os

import pytest
import torch
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf

from egg_cli.errors import EggError
from egg_cli.sweeps.jobs import ERROR_FILE, JOB_FILE, SweepJob, config_hash


def make_job(tmp_path, num=0, launcher=None) -> SweepJob:
    out = tmp_path / "sweep" / str(num)
    out.mkdir(parents=True, exist_ok=True)
    return SweepJob(out, num, [f"lr={num}"], tmp_path / "sweep", launcher or {}, job_id=f"id{num}")


CFG = OmegaConf.create({"device": "cpu", "precision": "bf16", "lr": 0.1})


def test_config_hash_changes_with_any_resolved_value():
    assert config_hash("lr: 0.1\n") == config_hash("lr: 0.1\n")
    assert config_hash("lr: 0.1\n") != config_hash("lr: 0.2\n")
    assert len(config_hash("x: 1\n")) == 16


def test_a_finished_job_is_skipped_only_for_the_same_resolved_config(tmp_path):
    job = make_job(tmp_path)
    assert job.finished_summary("lr: 0.1\n") is None  # nothing ran yet
    job.start(CFG)
    record = json.loads((job.out / JOB_FILE).read_text())
    assert record["status"] == "running" and record["pid"] == os.getpid() and record["job_id"] == "id0"
    (job.out / "summary.json").write_text(json.dumps({"score": 0.75, "status": "finished"}))
    assert make_job(tmp_path).finished_summary("lr: 0.1\n") is None  # still running: not finished
    job.finish()
    again = make_job(tmp_path)
    assert again.finished_summary("lr: 0.1\n") == {"score": 0.75, "status": "finished"}
    assert again.finished_summary("lr: 0.2\n") is None  # another config in the same folder runs again
    (job.out / "summary.json").unlink()
    assert make_job(tmp_path).finished_summary("lr: 0.1\n") is None  # results removed: the job runs again
    finished = json.loads((job.out / JOB_FILE).read_text())
    assert finished["status"] == "finished" and finished["config_hash"] == config_hash("lr: 0.1\n")
    assert finished["duration_s"] >= 0


def test_start_records_device_and_cpu_precision_fallback(tmp_path):
    job = make_job(tmp_path)
    job.finished_summary("lr: 0.1\n")
    job.start(CFG)
    record = json.loads((job.out / JOB_FILE).read_text())
    assert record["device"] == "cpu"
    assert record["precision"] == "float32"  # bf16 asked for, fp32 on CPU (deterministic)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_start_fails_with_one_line_on_a_device_the_job_does_not_have(tmp_path):
    with pytest.raises(EggError, match="device='cuda' was asked for but CUDA is not available"):
        make_job(tmp_path).start(OmegaConf.create({"device": "cuda"}))


def test_start_takes_torch_threads_from_the_launcher_cpus_per_task_unless_omp_is_set(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        make_job(tmp_path, 0, {"cpus_per_task": 1}).start(CFG)
        assert torch.get_num_threads() == 3  # the user's OMP_NUM_THREADS wins
        monkeypatch.delenv("OMP_NUM_THREADS")
        job = make_job(tmp_path, 1, {"cpus_per_task": 1})
        job.start(CFG)
        assert torch.get_num_threads() == 1
        assert json.loads((job.out / JOB_FILE).read_text())["threads"] == 1
    finally:
        torch.set_num_threads(threads)


def test_fail_records_the_error_line_and_traceback_and_returns_one_hydra_message(tmp_path):
    job = make_job(tmp_path, 3)
    job.start(CFG)
    try:
        raise ValueError("boom\nsecond line")
    except ValueError as err:
        failure = job.fail(err)
    record = json.loads((job.out / JOB_FILE).read_text())
    assert record["status"] == "failed" and record["error"] == "ValueError: boom"
    text = (job.out / ERROR_FILE).read_text()
    assert text.startswith("Traceback") and "second line" in text
    assert isinstance(failure, CompactHydraException)  # Hydra prints it without a traceback
    assert (
        str(failure)
        == f"job 3 failed: ValueError: boom; the other jobs ran (every job's status: egg collect {tmp_path / 'sweep'})"
    )


def test_a_bad_input_failure_keeps_its_message_and_a_rerun_clears_the_old_error(tmp_path):
    job = make_job(tmp_path)
    job.start(CFG)
    job.fail(EggError("simulation.n_neurons=0 is not allowed; expected a positive integer"))
    assert (job.out / ERROR_FILE).read_text() == "simulation.n_neurons=0 is not allowed; expected a positive integer\n"
    rerun = make_job(tmp_path)
    assert rerun.finished_summary("lr: 0.1\n") is None  # a failed job is never skipped
    rerun.start(CFG)
    assert not (job.out / ERROR_FILE).exists()
    rerun.finish()
    assert "error" not in json.loads((job.out / JOB_FILE).read_text())
