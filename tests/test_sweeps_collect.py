"""`egg collect` on hand-made sweep folders: planned vs found jobs, statuses, metrics, tables."""

import csv
import json
import socket
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from egg_cli.cli import collect as collect_cli
from egg_cli.errors import EggError
from egg_cli.sweeps.collect import collect_sweep, headline_metrics, planned_jobs
from egg_cli.sweeps.table import markdown, table_rows, write_tables

SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def write_multirun(sweep, task, params=None, sweeper=SWEEPER):
    sweep.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(
        OmegaConf.create(
            {"hydra": {"sweeper": {"_target_": sweeper, "max_batch_size": None, "params": params}, "overrides": {"task": task}}}
        ),
        sweep / "multirun.yaml",
    )


def write_job(folder, overrides, record=None, summary=None):
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    if record is not None:
        (folder / "job.json").write_text(json.dumps(record))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sweep(tmp_path):
    sweep = tmp_path / "sweep"
    write_multirun(sweep, ["a=1,2", "b=x,y", "c=5"])
    here = socket.gethostname()
    write_job(
        sweep / "0",
        ["a=1", "b=x", "c=5"],
        {"job": 0, "status": "finished", "duration_s": 2.5, "device": "cpu"},
        {"score": 0.5, "nested": {"r": 0.25, "flag": True, "curve": [1, 2]}, "name": "x", "status": "finished"},
    )
    write_job(sweep / "1", ["a=1", "b=y", "c=5"], {"job": 1, "status": "failed", "error": "b=y is not allowed"})
    write_job(sweep / "2", ["a=2", "b=x", "c=5"], {"job": 2, "status": "running", "host": here, "pid": dead_pid()})
    # job 3 (a=2 b=y) never started; a folder from an earlier sweep in the same place runs on another node
    write_job(sweep / "old", ["a=3", "b=x", "c=5"], {"job": 7, "status": "running", "host": "node-17", "pid": 1})
    return sweep


def test_planned_jobs_expand_the_sweep_like_hydras_basic_sweeper(tmp_path):
    write_multirun(tmp_path, ["a=1,2", "b=x,y", "c=5"], params={"d": "7,8"})
    jobs = planned_jobs(tmp_path)
    assert len(jobs) == 8
    assert jobs[0] == ["d=7", "a=1", "b=x", "c=5"] and jobs[1] == ["d=7", "a=1", "b=y", "c=5"]
    assert jobs[-1] == ["d=8", "a=2", "b=y", "c=5"]
    write_multirun(tmp_path, ["a=1,2"], sweeper="hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper")
    assert planned_jobs(tmp_path) == []  # other sweepers pick jobs as they go: only folders count


def test_collect_reports_finished_failed_dead_running_and_missing_jobs(sweep):
    results = collect_sweep(sweep)
    assert [(r.num, r.status) for r in results] == [(0, "finished"), (1, "failed"), (2, "failed"), (3, "missing"), (7, "running")]
    assert results[0].metrics == {"score": 0.5, "nested.r": 0.25}  # numbers only: no bool, list or string
    assert results[1].error == "b=y is not allowed"
    assert "ended without recording a result" in results[2].error  # its process is gone on this host
    assert results[3].folder is None and results[3].overrides == ["a=2", "b=y", "c=5"]
    assert results[4].folder == sweep / "old"  # another node: we cannot tell, so it counts as running


def test_headline_metrics_filter_by_glob_patterns():
    summary = {"test": {"correlation": 0.4, "oracle": 0.8}, "validation": {"correlation": 0.3}, "seed": 2}
    assert headline_metrics(summary, ["*correlation"]) == {"test.correlation": 0.4, "validation.correlation": 0.3}
    assert headline_metrics(summary, ["seed", "test.*"]) == {"test.correlation": 0.4, "test.oracle": 0.8, "seed": 2}


def test_tables_hold_every_job_with_overrides_status_metrics_and_errors(sweep, tmp_path):
    results = collect_sweep(sweep)
    rows = table_rows(results, sweep)
    assert list(rows[0]) == ["job", "a", "b", "c", "status", "score", "nested.r", "duration_s", "device", "folder", "error"]
    assert rows[0]["score"] == 0.5 and rows[1]["score"] == "" and rows[3]["folder"] == ""
    csv_path, md_path = write_tables(results, sweep, tmp_path / "out")
    with open(csv_path, newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["job"], r["a"], r["b"], r["status"]) for r in table] == [
        ("0", "1", "x", "finished"),
        ("1", "1", "y", "failed"),
        ("2", "2", "x", "failed"),
        ("3", "2", "y", "missing"),
        ("7", "3", "x", "running"),
    ]
    text = md_path.read_text()
    assert text == markdown(results, sweep)
    assert "5 jobs: 1 finished, 2 failed, 1 running, 1 missing" in text
    assert "common overrides: `c=5`" in text
    assert "| job | a | b | status | score | nested.r | duration_s | device | folder |" in text  # c is shared
    assert "| 0 | 1 | x | finished | 0.5 | 0.25 | 2.5 | cpu | 0 |" in text
    assert "- job 1 `a=1 b=y`: b=y is not allowed" in text


def test_collect_command_prints_the_table_and_writes_it_into_the_sweep(sweep, capsys):
    collect_cli.main([str(sweep), "--metrics", "score"])
    out = capsys.readouterr().out
    assert "| 0 | 1 | x | finished | 0.5 | 2.5 | cpu | 0 |" in out
    assert (sweep / "jobs.csv").exists() and (sweep / "jobs.md").read_text() in out


def test_collect_rejects_a_missing_or_non_sweep_folder_with_one_line(tmp_path, capsys):
    with pytest.raises(EggError, match="no such folder"):
        collect_sweep(tmp_path / "nope")
    with pytest.raises(EggError, match="not a sweep folder; expected multirun.yaml"):
        collect_sweep(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        collect_cli.main([str(tmp_path / "nope")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"egg: error: {tmp_path / 'nope'}: no such folder")
