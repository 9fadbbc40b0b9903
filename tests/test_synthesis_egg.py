"""Energy-guided diffusion with the spectral prior (needs no training): guidance, independence, defaults."""

import numpy as np
import pytest
import torch
from synthesis_toys import TinyCNN
from torch import nn

from egg_cli.diffusion import prior_config
from egg_cli.errors import EggError
from egg_cli.synthesis import EnergyGuidedDiffusion, NeuronObjective, synthesize
from egg_cli.synthesis.egg import unit_per_image

CPU = torch.device("cpu")
SPECTRAL = prior_config("spectral", image_size=16, fit_crops=200)
#: configs/method/egg.yaml's objective_defaults
PAPER = {"neuron": {"steps": "100", "energy_scale": 5.0}, "meni": {"steps": "50", "energy_scale": 2.0}}


def _egg(steps="10", energy_scale=5.0):
    return EnergyGuidedDiffusion(prior=SPECTRAL, steps=steps, energy_scale=energy_scale)


class _LoudNeuron(nn.Module):
    """Wraps a model and multiplies neuron 0 by 1000: its gradients dwarf the others'."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        for key in ("input_shape", "n_neurons", "neuron_ids", "pixel_mean", "pixel_std"):
            setattr(self, key, getattr(model, key))

    def forward(self, images):
        r = self.inner(images)
        return torch.cat([r[:, :1] * 1000.0, r[:, 1:]], dim=1)


def test_unit_per_image_normalizes_each_element_alone():
    g = torch.randn(3, 1, 4, 4) * torch.tensor([1e-3, 1.0, 1e3]).view(3, 1, 1, 1)
    assert torch.allclose(unit_per_image(g).flatten(1).norm(dim=1), torch.ones(3), atol=1e-5)


def test_guidance_raises_every_neurons_activation_over_unguided_samples():
    model = TinyCNN(n_neurons=6, size=16)
    objective = NeuronObjective(model, [0, 2, 4])
    free = synthesize(_egg(energy_scale=0.0), objective, seeds=[0, 1], device=CPU, batch_size=6, progress=False)
    guided = synthesize(_egg(energy_scale=5.0), objective, seeds=[0, 1], device=CPU, batch_size=6, progress=False)
    assert (guided.scores["generating"] > 2.0 * free.scores["generating"]).all()
    assert guided.generator_images.shape == (3, 2, 1, 16, 16)
    norms = np.linalg.norm(guided.images.reshape(6, -1), axis=1)
    assert np.allclose(norms, 0.25 * 16, atol=1e-3)  # the adapter's contrast
    assert guided.trace.shape == (3, 2, 10)
    assert guided.trace[:, :, -1].mean() > guided.trace[:, :, 0].mean()


def test_a_neuron_in_a_batch_gets_the_same_egg_image_as_alone_even_next_to_a_1000x_louder_neuron():
    model = _LoudNeuron(TinyCNN(n_neurons=6, size=16))
    objective = NeuronObjective(model, [0, 3])
    method = _egg(steps="8")
    batched = synthesize(method, objective, seeds=[0, 5], device=CPU, batch_size=4, progress=False)
    for p, neuron in enumerate([0, 3]):
        for s, seed in enumerate([0, 5]):
            alone = synthesize(method, NeuronObjective(model, [neuron]), seeds=[seed], device=CPU, batch_size=1, progress=False)
            assert np.abs(alone.generator_images[0, 0] - batched.generator_images[p, s]).max() < 1e-4
            assert alone.scores["generating"][0, 0] == pytest.approx(batched.scores["generating"][p, s], rel=1e-4)


def test_few_step_ddim_egg_is_independent_per_image_and_deterministic_per_seed():
    model = _LoudNeuron(TinyCNN(n_neurons=6, size=16))
    objective = NeuronObjective(model, [0, 3])
    method = EnergyGuidedDiffusion(prior=SPECTRAL, steps="5", energy_scale=5.0, ddim=True, eta=0.0)
    batched = synthesize(method, objective, seeds=[0, 5], device=CPU, batch_size=4, progress=False)
    again = synthesize(method, objective, seeds=[0, 5], device=CPU, batch_size=4, progress=False)
    np.testing.assert_array_equal(batched.generator_images, again.generator_images)
    assert batched.trace.shape == (2, 2, 5) and method.info().settings["ddim"] is True
    assert np.abs(batched.generator_images[0, 0] - batched.generator_images[0, 1]).max() > 0.1  # seeds differ
    for p, neuron in enumerate([0, 3]):
        alone = synthesize(method, NeuronObjective(model, [neuron]), seeds=[5], device=CPU, batch_size=1, progress=False)
        assert np.abs(alone.generator_images[0, 0] - batched.generator_images[p, 1]).max() < 1e-4


def test_null_steps_and_energy_scale_take_the_objective_defaults_of_the_method():
    model = TinyCNN(n_neurons=3, size=16)
    method = EnergyGuidedDiffusion(prior=SPECTRAL, objective_defaults=PAPER)
    method.prepare(NeuronObjective(model, [0]), model.input_shape, CPU)
    assert method.info().settings["energy_scale"] == 5.0 and method.steps == 100
    meni = NeuronObjective(model, [0], name="meni", methods=["egg"])
    method.prepare(meni, model.input_shape, CPU)
    assert method.info().settings["energy_scale"] == 2.0 and method.steps == 50


def test_an_objective_without_defaults_needs_steps_and_a_prior_needs_its_config():
    model = TinyCNN(n_neurons=3, size=16)
    with pytest.raises(EggError, match="method.steps is null and method.objective_defaults has no steps for objective 'neuron'"):
        EnergyGuidedDiffusion(prior=SPECTRAL, energy_scale=1.0).prepare(NeuronObjective(model, [0]), model.input_shape, CPU)
    with pytest.raises(
        EggError, match="method.prior='spectral': expected the prior group's config; choose the prior with prior="
    ):
        EnergyGuidedDiffusion(prior="spectral", steps="5", energy_scale=1.0).prepare(
            NeuronObjective(model, [0]), model.input_shape, CPU
        )


def test_a_model_whose_aspect_ratio_differs_from_the_prior_is_refused_unless_cropped():
    class Wide(TinyCNN):
        def __init__(self):
            super().__init__(n_neurons=2, size=16)
            self.input_shape = (1, 8, 16)

        def forward(self, images):
            return super().forward(torch.cat([images, images], dim=2))

    model = Wide()
    with pytest.raises(EggError, match=r"cannot adapt model input shape \(1, 8, 16\).*aspect ratios differ"):
        synthesize(_egg(steps="2"), NeuronObjective(model, [1]), seeds=[0], device=CPU, batch_size=1, progress=False)
    result = synthesize(
        _egg(steps="2"),
        NeuronObjective(model, [1]),
        seeds=[0],
        device=CPU,
        batch_size=1,
        adapter_options={"fit": "center_crop"},
        progress=False,
    )
    assert result.images.shape == (1, 1, 1, 8, 16)
    assert result.adapter["crop_box"] == [4, 0, 8, 16]
