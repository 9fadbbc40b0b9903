"""Gradient ascent: the analytic optimum of a linear-nonlinear neuron, independence, determinism."""

import numpy as np
import pytest
import torch
from synthesis_toys import TinyCNN, gabor_neurons

from egg_cli.errors import EggError
from egg_cli.synthesis import GradientAscent, NeuronObjective, synthesize
from egg_cli.synthesis.adapter import contrast_norm

CPU = torch.device("cpu")


def _cosine_to_weights(result, model):
    w = model.weight.flatten(1).numpy()[result.problems["neuron_index"]]
    x = result.images.reshape(result.images.shape[0], result.images.shape[1], -1)
    return np.einsum("psd,pd->ps", x, w) / (np.linalg.norm(x, axis=2) * np.linalg.norm(w, axis=1)[:, None])


@pytest.mark.parametrize(
    "settings",
    [dict(), dict(optimizer="adamw", lr=0.05), dict(fourier=True, blur_sigma=0.0), dict(momentum=0.5, lr=0.5)],
    ids=["sgd-blur", "adamw-blur", "fourier", "sgd-momentum"],
)
def test_ga_finds_c_w_over_norm_w_for_a_linear_nonlinear_neuron(settings):
    model = gabor_neurons(n=4, size=24)
    result = synthesize(
        GradientAscent(steps=300, **settings),
        NeuronObjective(model, [0, 1, 2, 3]),
        seeds=[0, 1],
        device=CPU,
        batch_size=8,
        progress=False,
    )
    c = contrast_norm(model.input_shape)
    assert c == pytest.approx(6.0)
    cosine = _cosine_to_weights(result, model)
    assert cosine.min() >= 0.99, cosine
    norms = np.linalg.norm(result.images.reshape(8, -1), axis=1)
    assert np.allclose(norms, c, atol=1e-4)
    # the best achievable response is softplus(c * |w| + b); GA gets within 2% of it
    best = torch.nn.functional.softplus(c * model.weight.flatten(1).norm(dim=1) + model.bias).numpy()
    assert (result.scores["generating"] >= 0.98 * best[:, None]).all()


def test_reported_score_belongs_to_the_returned_image():
    model = TinyCNN(n_neurons=4, size=16)
    objective = NeuronObjective(model, [0, 3])
    result = synthesize(GradientAscent(steps=30, jitter=2), objective, seeds=[5], device=CPU, batch_size=2, progress=False)
    with torch.no_grad():
        rescored = objective(torch.from_numpy(result.images[:, 0]), torch.tensor([0, 1]))
    assert np.allclose(result.scores["generating"][:, 0], rescored.numpy(), atol=1e-6)
    assert result.trace.shape == (2, 1, 30)


@pytest.mark.parametrize("settings", [dict(jitter=2), dict(optimizer="adamw", lr=0.05, fourier=True, clip=True)])
def test_a_neuron_in_a_batch_gets_the_same_image_as_alone_with_the_same_seed(settings):
    model = TinyCNN(n_neurons=6, size=16)
    objective = NeuronObjective(model, [1, 4, 5])
    method = GradientAscent(steps=40, **settings)
    batched = synthesize(method, objective, seeds=[0, 7], device=CPU, batch_size=6, progress=False)
    assert batched.chunk.max() == 0  # all six images in one batch
    for p, neuron in enumerate([1, 4, 5]):
        for s, seed in enumerate([0, 7]):
            alone = synthesize(method, NeuronObjective(model, [neuron]), seeds=[seed], device=CPU, batch_size=1, progress=False)
            assert np.abs(alone.images[0, 0] - batched.images[p, s]).max() < 1e-4
            assert alone.scores["generating"][0, 0] == pytest.approx(batched.scores["generating"][p, s], rel=1e-5)


def test_same_seed_same_images_and_different_seeds_different_starts():
    model = TinyCNN(n_neurons=3, size=12)
    method = GradientAscent(steps=5, jitter=1)
    a = synthesize(method, NeuronObjective(model, [0]), seeds=[1, 2], device=CPU, batch_size=2, progress=False)
    b = synthesize(method, NeuronObjective(model, [0]), seeds=[1, 2], device=CPU, batch_size=2, progress=False)
    assert np.array_equal(a.images, b.images)
    assert np.abs(a.images[0, 0] - a.images[0, 1]).max() > 0.1


def test_diversity_term_makes_seeds_of_a_neuron_less_alike():
    model = gabor_neurons(n=2, size=16)

    def mean_cosine(result):
        x = result.images[0].reshape(3, -1)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = x @ x.T
        return sim[np.triu_indices(3, 1)].mean()

    plain = synthesize(
        GradientAscent(steps=100), NeuronObjective(model, [0]), seeds=[0, 1, 2], device=CPU, batch_size=3, progress=False
    )
    diverse = synthesize(
        GradientAscent(steps=100, diversity=2.0),
        NeuronObjective(model, [0]),
        seeds=[0, 1, 2],
        device=CPU,
        batch_size=3,
        progress=False,
    )
    assert mean_cosine(plain) > 0.99
    assert mean_cosine(diverse) < mean_cosine(plain) - 0.05


def test_clipping_keeps_pixels_inside_the_0_255_range():
    model = gabor_neurons(n=1, size=16)
    method = GradientAscent(steps=30, clip=True)
    result = synthesize(
        method, NeuronObjective(model, [0]), seeds=[0], device=CPU, batch_size=1, adapter_options={"norm": 40.0}, progress=False
    )
    lo, hi = (0 - model.pixel_mean) / model.pixel_std, (255 - model.pixel_mean) / model.pixel_std
    assert result.images.min() >= lo - 1e-5 and result.images.max() <= hi + 1e-5
    assert result.images.min() == pytest.approx(lo, abs=1e-4)  # the bound is active at this contrast


class _NaNModel(TinyCNN):
    def forward(self, images):
        return super().forward(images) * torch.nan


def test_nan_scores_raise_one_line_naming_neuron_and_seed():
    model = _NaNModel(n_neurons=3, size=12)
    with pytest.raises(EggError, match=r"score of neuron 2 seed 4 is nan in the generating model"):
        synthesize(GradientAscent(steps=2), NeuronObjective(model, [2]), seeds=[4], device=CPU, batch_size=1, progress=False)


def test_bad_method_settings_raise():
    with pytest.raises(EggError, match="optimizer"):
        GradientAscent(optimizer="lbfgs")
    with pytest.raises(EggError, match="steps"):
        GradientAscent(steps=0)


def test_match_stops_each_image_at_the_score_of_the_same_problem_and_seed_in_another_run(tmp_path):
    from egg_cli.synthesis.objectives import ReconstructionObjective
    from egg_cli.synthesis.results import write_synthesis

    model = TinyCNN(n_neurons=6, size=16)
    targets = torch.rand(3, 6, generator=torch.Generator().manual_seed(0)) * 2
    objective = ReconstructionObjective(model, target_responses=targets)
    short = synthesize(GradientAscent(steps=25), objective, seeds=[0, 4], device=CPU, batch_size=6, progress=False)
    write_synthesis(tmp_path / "synthesis.h5", short)
    matched = synthesize(
        GradientAscent(steps=400, match=str(tmp_path)), objective, seeds=[0, 4], device=CPU, batch_size=6, progress=False
    )
    stop = matched.extras["stop_step"]
    # the same trajectory as the 25-step run, so each image reaches that run's score by step 25 and stays there
    assert stop.shape == (3, 2) and stop.max() <= 25
    assert (matched.scores["generating"] >= short.scores["generating"] - 1e-5).all()
    for p in range(3):  # a stopped image is kept: its score does not change after its stop step
        for s in range(2):
            after = matched.trace[p, s, int(stop[p, s]) :]
            assert np.allclose(after, matched.scores["generating"][p, s], atol=1e-5)
    with pytest.raises(EggError, match="no image for problem 0 and seed 9"):
        synthesize(GradientAscent(steps=5, match=str(tmp_path)), objective, seeds=[9], device=CPU, progress=False)
