"""`egg demo experiment=tiny` end to end: every stage's run folder, the evaluation and a report with its numbers."""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from egg_cli.diffusion import DEFAULT_WEIGHTS
from egg_cli.models import read_checkpoint

# The demo's EGG uses the learned default prior; its weights are trained separately and committed
# to egg_cli/diffusion/weights/default.pt. Without them `egg demo` stops with one line (exit 2).
pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason=f"default prior weights {DEFAULT_WEIGHTS} not present yet")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from egg_cli.cli import main; main(sys.argv[1:])",
            "demo",
            "experiment=tiny",
            "progress=false",
            f"hydra.run.dir={out}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_demo_runs_every_stage_into_its_own_run_folder(demo):
    summary = json.loads((demo / "summary.json").read_text())
    assert summary["status"] == "finished"
    folders = [s["folder"] for s in summary["stages"]]
    assert folders[0] == "simulate" and folders[-1] == "evaluate"
    for arch in ("cnn_attention", "task_gaussian"):
        for k in (0, 1):
            assert f"train/{arch}/member_{k}" in folders
        for method in ("ga", "egg", "egg-spectral"):
            assert f"synth/{arch}/{method}" in folders
    for folder in folders:
        assert (demo / folder / "config.yaml").is_file(), folder
        assert json.loads((demo / folder / "summary.json").read_text())["status"] == "finished", folder
    assert (demo / "simulate" / "dataset.h5").is_file()


@pytest.mark.slow
def test_demo_synthesizes_for_the_neurons_the_generating_members_predict_best(demo):
    summary = json.loads((demo / "summary.json").read_text())
    corr = np.mean(
        [
            read_checkpoint(demo / "train" / arch / "member_0" / "model.pt")["test_correlation"]
            for arch in ("cnn_attention", "task_gaussian")
        ],
        axis=0,
    )
    expected = sorted(np.argsort(-corr, kind="stable")[:3].tolist())
    assert summary["neurons"] == expected
    per_neuron = read(demo / "evaluate" / "per_neuron.csv")
    ids = np.asarray(read_checkpoint(demo / "train" / "cnn_attention" / "member_0" / "model.pt")["neuron_ids"])
    assert {r["neuron_id"] for r in per_neuron} == {str(i) for i in ids[expected]}


@pytest.mark.slow
def test_demo_evaluates_every_method_in_held_out_ensembles_and_the_ground_truth(demo):
    table = read(demo / "evaluate" / "table.csv")
    assert {r["evaluator"] for r in table} == {"cnn_attention_heldout", "task_gaussian_heldout", "ground_truth"}
    assert {r["generator"] for r in table} == {"cnn_attention", "task_gaussian"}
    methods = {r["method"] for r in table}
    assert {"ga", "egg", "egg-spectral"} <= methods
    assert len(table) == 2 * 3 * len(methods)
    assert all(int(r["neurons"]) == 3 and np.isfinite(float(r["mean"])) and float(r["mean"]) >= 0 for r in table)
    config = (demo / "evaluate" / "config.yaml").read_text()
    assert "member_1/model.pt" in config and "member_0/model.pt" not in config  # only held-out members evaluate


@pytest.mark.slow
def test_demo_report_quotes_the_evaluation_numbers(demo):
    report = (demo / "report.md").read_text()
    comparisons = read(demo / "evaluate" / "comparisons.csv")
    egg_vs_ga = [c for c in comparisons if c["method_a"] == "ga" and c["method_b"] == "egg"]
    assert len(egg_vs_ga) == 2 * 3
    for c in egg_vs_ga:
        if c["evaluator"] == f"{c['generator']}_heldout":
            continue  # the answer quotes the other architecture and the ground truth
        line = next(l for l in report.splitlines() if f"generated on **{c['generator']}**, scored by **{c['evaluator']}**" in l)
        assert f"egg {float(c['mean_b']):.2f} vs ga {float(c['mean_a']):.2f}" in line
        assert f"slope {float(c['slope']):.2f}" in line
    compute = {(r["generator"], r["method"]): float(r["seconds_per_image"]) for r in read(demo / "evaluate" / "compute.csv")}
    ratio = compute[("cnn_attention", "egg")] / compute[("cnn_attention", "ga")]
    assert re.search(rf"compute on \*\*cnn_attention\*\*: .* {ratio:.2f}x the time of ga", report)
    for figure in ("evaluate/heatmap.png", "evaluate/scatter_ga_vs_egg.png", "evaluate/images_cnn_attention.png"):
        assert f"]({figure})" in report and (demo / figure).stat().st_size > 0
    assert "## Stages and their time" in report


@pytest.mark.slow
def test_demo_reconstructs_with_ga_stopped_at_eggs_fit_and_scores_menis_against_natural_images(demo):
    from egg_cli.synthesis.results import read_synthesis

    for arch in ("cnn_attention", "task_gaussian"):
        egg = read_synthesis(demo / "reconstruct" / arch / "egg" / "synthesis.h5")
        ga = read_synthesis(demo / "reconstruct" / arch / "ga" / "synthesis.h5")
        assert set(ga.scores) == set(egg.scores) == {"generating", "heldout_0", "heldout_1", "ground_truth"}
        stop = ga.extras["stop_step"]
        reached = stop < 20
        # an image that stopped fits the generating ensemble at least as well as EGG's image of the same target and seed
        assert (ga.scores["generating"][reached] >= egg.scores["generating"][reached] - 1e-5).all()
        assert (ga.scores["generating"][~reached] < egg.scores["generating"][~reached]).all()
    rows = read(demo / "reconstruction.csv")
    assert {(r["generator"], r["role"]) for r in rows} == {
        (g, role)
        for g in ("cnn_attention", "task_gaussian")
        for role in ("generating ensemble", "same architecture (held-out)", "other architecture (held-out)", "ground truth")
    }
    assert all(int(r["images"]) == 2 and float(r["mse_egg"]) > 0 and float(r["mse_ga"]) > 0 for r in rows)
    report = (demo / "report.md").read_text()
    assert "## Population reconstructions at equal fit" in report and "## Most exciting natural images (MENIs)" in report
    menis = [r for r in read(demo / "evaluate" / "per_neuron.csv") if r["method"] == "meni"]
    assert len(menis) == 2 * 3 * 3  # generators x evaluators x neurons
    assert "EGG MENIs are on par with the most exciting natural images" in report


@pytest.mark.slow
def test_rerunning_the_demo_into_its_folder_runs_only_unfinished_stages(demo):
    def rerun():
        env = {**os.environ, "OMP_NUM_THREADS": "2", "MPLBACKEND": "Agg"}
        cmd = "import sys; from egg_cli.cli import main; main(sys.argv[1:])"
        args = ["demo", "experiment=tiny", "progress=false", f"hydra.run.dir={demo}"]
        proc = subprocess.run([sys.executable, "-c", cmd, *args], env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return {s["folder"]: s["resumed"] for s in json.loads((demo / "summary.json").read_text())["stages"]}

    first = json.loads((demo / "summary.json").read_text())["stages"]
    resumed = rerun()
    assert list(resumed) == [s["folder"] for s in first] and all(resumed.values())
    (demo / "synth" / "cnn_attention" / "ga" / "stage.json").unlink()  # as if killed during that stage
    resumed = rerun()
    ran = {folder for folder, was_resumed in resumed.items() if not was_resumed}
    # that GA run reruns, and the evaluation that reads it; every other stage had finished
    assert ran == {"synth/cnn_attention/ga", "evaluate"}
    n = len(resumed)
    assert f"{n - 2} of {n} stages had finished in an earlier run" in (demo / "report.md").read_text()
