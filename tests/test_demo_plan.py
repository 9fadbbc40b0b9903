"""Fast checks of the demo's plan, neuron choice, stage overrides and the report's sentences."""

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from egg_cli.cli.demo import plan_from_config
from egg_cli.configs import CONFIG_DIR
from egg_cli.errors import EggError
from egg_cli.workflows.demo import method_available, select_neurons
from egg_cli.workflows.report import answer_lines, evaluator_role, transfer_rows
from egg_cli.workflows.stages import override_value


def demo_config(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="demo", overrides=list(overrides))


def test_an_experiment_preset_sets_the_scale_and_single_settings_override_it():
    plan = plan_from_config(demo_config("experiment=tiny"))
    assert (plan.members, plan.neurons, plan.seeds, plan.generating) == (2, 3, [0], 1)
    assert list(plan.methods)[:3] == ["ga", "egg", "egg-spectral"]
    assert "prior=default" in plan.methods["egg"] and "prior=spectral" in plan.methods["egg-spectral"]
    assert list(plan.architectures) == ["cnn_attention", "task_gaussian"]
    plan = plan_from_config(demo_config("experiment=paper", "members=6", "neurons=7"))
    assert (plan.members, plan.neurons, plan.generating, plan.seeds) == (6, 7, 3, [0, 1, 2])
    assert "method.steps=1000" in plan.methods["ga"]
    assert {"method.steps=20", "method.ddim=true", "method.energy_scale=25"} <= set(plan.methods["egg-ddim20"])
    assert "prior=mixed" in plan.methods["egg-mixed"] and "prior=default" in plan.methods["egg"]
    assert plan.menis == ["method=egg", "prior=default"] and len(plan.reconstruction_images) == 16
    assert "method.steps=1000" in plan.reconstruction_ga


def test_a_method_labelled_meni_is_refused_beside_the_meni_run():
    plan = plan_from_config(demo_config("experiment=tiny", "+methods.meni=['method=ga']"))
    with pytest.raises(EggError, match="methods.meni: the label is taken by the MENI run"):
        plan.check()


def test_plans_without_a_held_out_member_are_refused():
    with pytest.raises(EggError, match="members=1: expected at least 2"):
        plan_from_config(demo_config("experiment=tiny", "members=1")).check()


def test_missing_method_configs_are_reported_not_guessed(tmp_path):
    (tmp_path / "method").mkdir()
    (tmp_path / "method" / "ga.yaml").write_text("{}")
    assert method_available(["method=ga", "method.steps=3"], tmp_path) is None
    assert "configs/method/xdream.yaml does not exist" in method_available(["method=xdream"], tmp_path)


def test_neurons_are_the_best_predicted_on_average_over_generating_members(tmp_path):
    def ckpt(name, corr):
        path = tmp_path / f"{name}.pt"
        torch.save(
            {
                "format": "egg-encoding-model",
                "model_config": {},
                "state_dict": {},
                "input_shape": [1, 8, 8],
                "neuron_ids": [10, 11, 12, 13],
                "pixel_mean": 0.0,
                "pixel_std": 1.0,
                "test_correlation": corr,
            },
            path,
        )
        return path

    checkpoints = {
        "a": [ckpt("a0", [0.9, 0.1, 0.5, 0.2]), ckpt("a1", [0.0, 0.0, 0.0, 1.0])],
        "b": [ckpt("b0", [0.1, 0.3, 0.4, 0.2]), ckpt("b1", [0.0, 0.0, 0.0, 1.0])],
    }
    neurons, mean = select_neurons(checkpoints, n_generating=1, k=2)  # held-out members (a1, b1) are ignored
    np.testing.assert_allclose(mean, [0.5, 0.2, 0.45, 0.2])
    assert neurons == [0, 2]


def test_override_values_survive_hydras_parser():
    value = {"held_out": ["/tmp/a b/m'1.pt", "/x=y,z/m2.pt"], "truth": "ground_truth", "n": 3, "flag": None}
    parsed = OverridesParser.create().parse_overrides([f"evaluators={override_value(value)}"])[0].value()
    assert parsed == value
    with pytest.raises(EggError, match="must hold only letters"):
        override_value({"a b": 1})


COMPARISONS = [
    {
        "generator": "cnn",
        "evaluator": "cnn_heldout",
        "method_a": "ga",
        "method_b": "egg",
        "n": 12,
        "mean_a": 1.1,
        "mean_b": 1.0,
        "slope": 0.9,
        "slope_low": 0.8,
        "slope_high": 1.0,
        "fraction_b_better": 0.2,
        "p_value": 0.01,
        "p_holm": 0.03,
    },
    {
        "generator": "cnn",
        "evaluator": "res_heldout",
        "method_a": "ga",
        "method_b": "egg",
        "n": 12,
        "mean_a": 0.6,
        "mean_b": 0.9,
        "slope": 1.4,
        "slope_low": 1.2,
        "slope_high": 1.7,
        "fraction_b_better": 0.92,
        "p_value": 0.001,
        "p_holm": 0.004,
    },
    {
        "generator": "cnn",
        "evaluator": "ground_truth",
        "method_a": "ga",
        "method_b": "egg",
        "n": 12,
        "mean_a": 0.5,
        "mean_b": 0.55,
        "slope": 1.05,
        "slope_low": 0.9,
        "slope_high": 1.2,
        "fraction_b_better": 0.58,
        "p_value": 0.3,
        "p_holm": 0.6,
    },
]
COMPUTE = [
    {"generator": "cnn", "method": "ga", "seconds_per_image": 4.0, "steps": 1000, "budget": float("nan"), "time_vs_ga": 1.0},
    {"generator": "cnn", "method": "egg", "seconds_per_image": 1.0, "steps": 100, "budget": float("nan"), "time_vs_ga": 0.25},
]


def test_answer_states_direction_and_significance_with_the_numbers():
    lines = answer_lines(COMPARISONS, COMPUTE, "ga", "egg")
    assert len(lines) == 3  # same-architecture row left out; other architecture, ground truth, compute
    assert "scored by **res_heldout** (other architecture (held-out)): egg 0.90 vs ga 0.60" in lines[0]
    assert "slope 1.40 [1.20, 1.70]" in lines[0] and lines[0].endswith("**egg higher**.")
    assert lines[1].endswith("no significant difference.") and "Holm 0.600" in lines[1]
    assert lines[2] == ("- compute on **cnn**: egg 1 s per image (100 steps) vs ga 4 s (1000 steps): 0.25x the time of ga.")


def test_transfer_rows_put_each_evaluator_under_its_role():
    table = [
        {"generator": "cnn", "method": "ga", "evaluator": e, "neurons": 12, "mean": m, "sem": 0.05}
        for e, m in (("cnn_heldout", 1.1), ("res_heldout", 0.6), ("ground_truth", 0.5))
    ]
    assert evaluator_role("cnn", "res_heldout") == "other architecture (held-out)"
    (row,) = transfer_rows(table, COMPUTE, "ga")
    assert row["same architecture (held-out)"] == "1.10 ± 0.05"
    assert row["other architecture (held-out)"] == "0.60 ± 0.05"
    assert row["ground truth"] == "0.50 ± 0.05"
    assert row["s / image"] == 4.0 and row["time vs ga"] == 1.0


def test_a_claim_is_reproduced_reversed_or_not_by_holm_p_and_direction_and_untestable_below_six_pairs():
    from egg_cli.workflows.report import verdict

    assert verdict(0.01, 0.2, 48) == "reproduced"
    assert verdict(0.01, -0.2, 48) == "reversed"
    assert verdict(0.2, 0.5, 48).startswith("not reproduced")
    assert verdict(0.01, 0.2, 5).startswith("not testable (n=5")
