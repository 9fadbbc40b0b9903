"""Scoring at a fixed contrast and per-neuron normalization by the best natural image."""

from pathlib import Path

import numpy as np
import pytest
import torch
from synthesis_toys import LinearNonlinear, TinyCNN, gabor_neurons

from egg_cli.errors import EggError
from egg_cli.evaluation.generalization import Evaluator, SynthesisRun, evaluate_runs, select_per_neuron
from egg_cli.evaluation.scoring import natural_ceiling, neuron_columns, score_raw_images, zscored_to_raw

SIZE = 24
RMS = 0.25
NORM = RMS * SIZE  # L2 norm of a 1 x 24 x 24 image at RMS contrast 0.25


def ln_response(model: LinearNonlinear, images_z: torch.Tensor) -> np.ndarray:
    """The LN neurons' responses computed by hand (softplus of the projection)."""
    w = model.weight.flatten(1).double()
    return torch.nn.functional.softplus(images_z.flatten(1).double() @ w.T + model.bias.double()).numpy()


def natural_raw(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(n, 1, SIZE, SIZE)).astype(np.float32)


def test_score_raw_images_rescales_every_image_to_the_contrast_in_the_evaluators_units():
    model = gabor_neurons(4, SIZE)
    raw = natural_raw(5)
    scored = score_raw_images(model, raw, RMS)
    z = torch.from_numpy((raw - model.pixel_mean) / model.pixel_std)
    z = z * (NORM / z.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    np.testing.assert_allclose(scored, ln_response(model, z), rtol=1e-5)


def test_scores_do_not_depend_on_the_contrast_an_image_was_stored_at():
    model = TinyCNN(n_neurons=3, size=SIZE)
    raw = natural_raw(4, seed=1)
    low_contrast = model.pixel_mean + 0.2 * (raw - model.pixel_mean)
    np.testing.assert_allclose(score_raw_images(model, raw, RMS), score_raw_images(model, low_contrast, RMS), rtol=1e-5)


def test_zscored_images_of_another_model_are_rescored_in_the_evaluators_own_units():
    evaluator = gabor_neurons(4, SIZE)  # mean 124.3, std 70.3
    raw = natural_raw(3, seed=2)
    generator_mean, generator_std = 90.0, 30.0
    stored = (raw - generator_mean) / generator_std  # what a generating model with other statistics saw
    back = zscored_to_raw(stored, generator_mean, generator_std)
    np.testing.assert_allclose(back, raw, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(score_raw_images(evaluator, back, RMS), score_raw_images(evaluator, raw, RMS), rtol=1e-5)


def test_natural_ceiling_is_the_maximum_response_over_natural_images_per_neuron():
    model = gabor_neurons(4, SIZE)
    raw = natural_raw(30, seed=3)
    all_responses = score_raw_images(model, raw, RMS)
    best, index = natural_ceiling(model, raw, RMS, columns=np.array([2, 0]))
    np.testing.assert_allclose(best, all_responses[:, [2, 0]].max(0))
    np.testing.assert_array_equal(index, all_responses[:, [2, 0]].argmax(0))


def test_mei_of_a_linear_neuron_normalizes_to_at_least_one_and_its_own_image_to_exactly_one():
    """Under a fixed norm the LN neuron's optimum is its weight vector: no natural image beats it."""
    model = gabor_neurons(4, SIZE)
    w = model.weight.detach()
    mei_z = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * NORM  # (4, 1, 24, 24), one MEI per neuron
    mei_raw = zscored_to_raw(mei_z.numpy(), model.pixel_mean, model.pixel_std)
    run = SynthesisRun(
        path=Path("mei"),
        method="exact",
        generator="ln",
        images_raw=mei_raw,
        neuron_ids=model.neuron_ids.copy(),
        seeds=np.zeros(4, dtype=int),
        scores=np.ones(4),
        rms_contrast=RMS,
    )
    ev = Evaluator("self", model)
    natural = natural_raw(40, seed=4)
    result = evaluate_runs([run], [ev], natural)
    ids, values = result.values("ln", "exact", "self")
    assert list(ids) == [str(i) for i in model.neuron_ids]
    assert (values >= 1.0 - 1e-6).all() and values.max() > 1.2
    # the MEI itself among the natural images: then the ceiling is the MEI and every ratio is 1
    result = evaluate_runs([run], [ev], np.concatenate([natural, mei_raw]))
    np.testing.assert_allclose(result.values("ln", "exact", "self")[1], 1.0, rtol=1e-6)


def test_normalized_activation_is_response_over_that_evaluators_best_natural_response():
    gen_ids = np.array([3, 5])
    a = TinyCNN(n_neurons=6, size=SIZE, seed=1)
    b = TinyCNN(n_neurons=6, size=SIZE, seed=2)
    rng = np.random.default_rng(5)
    images = rng.normal(120, 50, size=(4, 1, SIZE, SIZE)).astype(np.float32)
    run = SynthesisRun(
        path=Path("r"),
        method="ga",
        generator="g",
        images_raw=images,
        neuron_ids=np.repeat(gen_ids, 2),
        seeds=np.tile([0, 1], 2),
        scores=np.array([1.0, 2.0, 5.0, 4.0]),
        rms_contrast=RMS,
    )
    natural = natural_raw(20, seed=6)
    result = evaluate_runs([run], [Evaluator("a", a), Evaluator("b", b)], natural)
    for model, name in ((a, "a"), (b, "b")):
        responses = score_raw_images(model, images, RMS)
        ceiling = score_raw_images(model, natural, RMS).max(0)
        # best seed by the generating score: seed 1 for neuron 3 (score 2), seed 0 for neuron 5 (score 5)
        expected = [responses[1, 3] / ceiling[3], responses[2, 5] / ceiling[5]]
        np.testing.assert_allclose(result.values("g", "ga", name)[1], expected, rtol=1e-6)
        assert result.ceilings[name]["5"] == pytest.approx(ceiling[5])


def test_evaluators_are_matched_by_neuron_id_not_by_column():
    model = gabor_neurons(4, SIZE)
    permuted = gabor_neurons(4, SIZE)
    order = np.array([2, 0, 3, 1])
    with torch.no_grad():
        permuted.weight.copy_(model.weight[order])
    permuted.neuron_ids = model.neuron_ids[order]
    raw = natural_raw(6, seed=7)
    run = SynthesisRun(
        path=Path("r"),
        method="ga",
        generator="g",
        images_raw=raw[:4],
        neuron_ids=model.neuron_ids.copy(),
        seeds=np.zeros(4, dtype=int),
        scores=np.zeros(4),
        rms_contrast=RMS,
    )
    result = evaluate_runs([run], [Evaluator("orig", model), Evaluator("perm", permuted)], raw)
    np.testing.assert_allclose(result.values("g", "ga", "orig")[1], result.values("g", "ga", "perm")[1], rtol=1e-6)


def test_missing_neuron_in_an_evaluator_is_a_one_line_error_naming_it():
    with pytest.raises(EggError, match=r"evaluator 'heldout' has no neuron with id 999"):
        neuron_columns(np.arange(4), np.array([1, 999]), "heldout")


def test_seed_selection_best_uses_the_generating_score_and_mean_averages_seeds():
    ids = np.array([7, 7, 7, 2, 2])
    seeds = np.array([0, 1, 2, 0, 1])
    scores = np.array([0.1, 0.9, 0.5, 3.0, 1.0])
    normalized = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    uid, best, used = select_per_neuron(ids, seeds, scores, normalized, "best")
    assert list(uid) == ["2", "7"]
    np.testing.assert_allclose(best, [4.0, 2.0])
    np.testing.assert_array_equal(used, [False, True, False, True, False])
    _, mean, _ = select_per_neuron(ids, seeds, scores, normalized, "mean")
    np.testing.assert_allclose(mean, [5.0, 2.0])
    with pytest.raises(EggError, match="seeds='max' unknown"):
        select_per_neuron(ids, seeds, scores, normalized, "max")


def test_runs_made_at_different_contrasts_need_an_explicit_contrast():
    model = gabor_neurons(2, SIZE)
    raw = natural_raw(2)
    runs = [
        SynthesisRun(
            path=Path(f"r{c}"),
            method=f"m{c}",
            generator="g",
            images_raw=raw,
            neuron_ids=model.neuron_ids.copy(),
            seeds=np.zeros(2, dtype=int),
            scores=np.zeros(2),
            rms_contrast=c,
        )
        for c in (0.25, 0.5)
    ]
    with pytest.raises(EggError, match="different contrasts"):
        evaluate_runs(runs, [Evaluator("e", model)], raw)
    result = evaluate_runs(runs, [Evaluator("e", model)], raw, rms_contrast=0.25)
    np.testing.assert_allclose(result.values("g", "m0.25", "e")[1], result.values("g", "m0.5", "e")[1])


def test_a_non_positive_natural_ceiling_is_refused():
    model = gabor_neurons(2, SIZE)
    with torch.no_grad():
        model.bias.fill_(-1e4)  # softplus underflows to exactly zero for every image
    raw = natural_raw(3)
    run = SynthesisRun(
        path=Path("r"),
        method="ga",
        generator="g",
        images_raw=raw[:2],
        neuron_ids=model.neuron_ids.copy(),
        seeds=np.zeros(2, dtype=int),
        scores=np.zeros(2),
        rms_contrast=RMS,
    )
    with pytest.raises(EggError, match="best natural-image response .* is not positive"):
        evaluate_runs([run], [Evaluator("dead", model)], raw)
