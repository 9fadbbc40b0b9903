"""Layout of the generator x evaluator x method table, comparisons, compute and the written files."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from synthesis_toys import TinyCNN

from egg_cli.errors import EggError
from egg_cli.evaluation.generalization import (
    Evaluator,
    SynthesisRun,
    activation_table,
    compute_table,
    default_pairs,
    evaluate_runs,
    method_comparisons,
)
from egg_cli.evaluation.pipeline import EvaluationSettings, evaluate
from egg_cli.evaluation.tables import wide_activation_rows
from egg_cli.markdown import markdown_table

SIZE = 16
METHODS = {"ga": 2.0, "egg": 0.5, "cmaes": 4.0}  # seconds per image


def make_runs(neurons=(0, 1, 2, 3)) -> list[SynthesisRun]:
    rng = np.random.default_rng(0)
    runs = []
    for generator in ("cnn", "resnet"):
        for method, seconds in METHODS.items():
            n = len(neurons) * 2
            runs.append(
                SynthesisRun(
                    path=Path(f"{generator}_{method}"),
                    method=method,
                    generator=generator,
                    images_raw=rng.normal(120, 60, size=(n, 1, SIZE, SIZE)).astype(np.float32),
                    neuron_ids=np.repeat(np.asarray(neurons), 2),
                    seeds=np.tile([0, 1], len(neurons)),
                    scores=rng.normal(size=n),
                    rms_contrast=0.25,
                    seconds_per_image=seconds,
                    steps=10,
                )
            )
    return runs


@pytest.fixture(scope="module")
def evaluators():
    return [Evaluator("held_out", TinyCNN(6, SIZE, seed=1)), Evaluator("other_arch", TinyCNN(6, SIZE, seed=2))]


@pytest.fixture(scope="module")
def natural():
    return np.random.default_rng(1).uniform(0, 255, size=(25, 1, SIZE, SIZE)).astype(np.float32)


def test_table_has_one_row_per_generator_evaluator_and_method(evaluators, natural):
    evaluation = evaluate_runs(make_runs(), evaluators, natural)
    rows = activation_table(evaluation)
    assert len(rows) == 2 * 2 * 3
    assert list(rows[0]) == ["generator", "evaluator", "method", "neurons", "mean", "sem", "median", "fraction_above_natural"]
    assert [(r["generator"], r["evaluator"], r["method"]) for r in rows[:4]] == [
        ("cnn", "held_out", "ga"),
        ("cnn", "held_out", "egg"),
        ("cnn", "held_out", "cmaes"),
        ("cnn", "other_arch", "ga"),
    ]
    for r in rows:
        _, values = evaluation.values(r["generator"], r["method"], r["evaluator"])
        assert r["neurons"] == 4
        assert r["mean"] == pytest.approx(values.mean())
        assert r["sem"] == pytest.approx(values.std(ddof=1) / 2.0)
        assert r["fraction_above_natural"] == pytest.approx(np.mean(values > 1))


def test_wide_markdown_has_one_column_per_evaluator(evaluators, natural):
    evaluation = evaluate_runs(make_runs(), evaluators, natural)
    rows = activation_table(evaluation)
    text = markdown_table(wide_activation_rows(rows, evaluation.evaluators))
    lines = text.strip().splitlines()
    assert lines[0] == "| generator | method | neurons | held_out | other_arch |"
    assert len(lines) == 2 + 2 * 3
    first = rows[0]
    assert lines[2].startswith(f"| cnn | ga | 4 | {first['mean']:.2f} ± {first['sem']:.2f} |")


def test_comparisons_pair_every_method_with_the_reference(evaluators, natural):
    evaluation = evaluate_runs(make_runs(), evaluators, natural)
    assert default_pairs(evaluation.methods, "ga") == [("ga", "egg"), ("ga", "cmaes")]
    assert default_pairs(["egg", "cmaes", "x"], "ga") == [("egg", "cmaes"), ("egg", "x"), ("cmaes", "x")]
    rows = method_comparisons(evaluation, default_pairs(evaluation.methods), n_boot=50)
    assert len(rows) == 2 * 2 * 2
    assert all(r["n"] == 4 and r["p_holm"] >= r["p_value"] for r in rows)
    with pytest.raises(EggError, match="no run has method 'xdream'"):
        method_comparisons(evaluation, [("ga", "xdream")])


def test_compute_table_reads_the_runs_timing_and_divides_by_the_reference(evaluators, natural):
    evaluation = evaluate_runs(make_runs(), evaluators, natural)
    rows = {(r["generator"], r["method"]): r for r in compute_table(evaluation, "ga")}
    assert rows[("cnn", "egg")]["seconds_per_image"] == 0.5
    assert rows[("cnn", "egg")]["time_vs_ga"] == pytest.approx(0.25)
    assert rows[("resnet", "cmaes")]["time_vs_ga"] == pytest.approx(2.0)
    assert rows[("cnn", "ga")]["images"] == 8


def test_methods_are_compared_on_the_neurons_they_share(evaluators, natural):
    runs = make_runs()
    runs[0] = make_runs(neurons=(0, 1, 2, 5))[0]  # cnn / ga made neuron 5 instead of 3
    evaluation = evaluate_runs(runs, evaluators, natural)
    assert list(evaluation.values("cnn", "ga", "held_out")[0]) == ["0", "1", "2"]
    assert list(evaluation.values("resnet", "ga", "held_out")[0]) == ["0", "1", "2", "3"]
    evaluation = evaluate_runs(runs, evaluators, natural, neurons="all")
    assert list(evaluation.values("cnn", "ga", "held_out")[0]) == ["0", "1", "2", "5"]


def test_two_runs_with_the_same_labels_and_images_are_refused(evaluators, natural):
    runs = make_runs()
    dup = SynthesisRun(**{**runs[0].__dict__, "path": Path("other")})
    with pytest.raises(EggError, match="both hold neuron 0 seed 0"):
        evaluate_runs([*runs, dup], evaluators, natural)


def test_evaluate_writes_tables_figures_and_a_finished_summary(tmp_path, evaluators, natural):
    summary = evaluate(make_runs(), evaluators, natural, tmp_path, EvaluationSettings(bootstrap=50))
    for name in (
        "table.csv",
        "table.md",
        "comparisons.csv",
        "compute.csv",
        "activations.csv",
        "per_neuron.csv",
        "best_natural.csv",
        "heatmap.png",
        "scatter_ga_vs_egg.png",
        "scatter_ga_vs_cmaes.png",
        "images_cnn.png",
        "images_resnet.png",
        "summary.json",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    with open(tmp_path / "table.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 12 and table[0]["generator"] == "cnn"
    with open(tmp_path / "activations.csv") as f:
        records = list(csv.DictReader(f))
    assert len(records) == 2 * 3 * 8 * 2  # generators x methods x images x evaluators
    assert sum(r["selected"] == "True" for r in records) == 2 * 3 * 4 * 2  # one seed per neuron
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["status"] == "finished" and list(saved)[-1] == "status"
    assert saved["mean_normalized_activation"]["cnn | held_out | ga"] == pytest.approx(float(table[0]["mean"]))
    assert summary["seconds_per_image"]["resnet | egg"] == 0.5


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seeds": "max"}, "seeds='max' unknown"),
        ({"neurons": "some"}, "neurons='some' unknown"),
        ({"natural_tier": "holdout"}, "natural.tier='holdout' unknown"),
        ({"rms_contrast": 0.0}, "contrast.rms=0.0 must be positive"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_loaded(change, message):
    with pytest.raises(EggError, match=message):
        EvaluationSettings(**change).check()
