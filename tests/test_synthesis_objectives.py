"""Objectives: per-element neuron scores, reconstruction, neuron selection."""

import numpy as np
import pytest
import torch
from synthesis_toys import TinyCNN, gabor_neurons

from egg_cli.errors import EggError
from egg_cli.synthesis.objectives import NeuronObjective, ReconstructionObjective, select_neurons


def test_neuron_objective_scores_each_element_for_its_own_neuron():
    model = TinyCNN(n_neurons=6, size=12)
    images = torch.randn(4, 1, 12, 12)
    responses = model(images)
    objective = NeuronObjective(model, neurons=[5, 1, 3])
    problem = torch.tensor([0, 2, 1, 0])
    expected = responses[torch.arange(4), torch.tensor([5, 3, 1, 5])]
    assert torch.allclose(objective(images, problem), expected)
    inhibitory = NeuronObjective(model, neurons=[5, 1, 3], inhibitory=True)
    assert torch.allclose(inhibitory(images, problem), -expected)
    assert torch.allclose(objective.score_all(images), responses[:, [5, 1, 3]])


def test_neuron_ids_out_of_range_name_the_range():
    with pytest.raises(EggError, match=r"neurons=\[6, 9\] out of range: the model has 6 neurons, expected indices 0..5"):
        NeuronObjective(TinyCNN(n_neurons=6, size=12), neurons=[0, 6, 9])
    with pytest.raises(EggError, match="twice"):
        NeuronObjective(TinyCNN(n_neurons=6, size=12), neurons=[1, 1])


def test_select_neurons_all_list_and_top_k_by_test_correlation():
    model = gabor_neurons(n=4, size=12)  # test correlation rises with the index
    assert select_neurons("all", model) == [0, 1, 2, 3]
    assert select_neurons([3, 0], model) == [3, 0]
    assert select_neurons("top_2", model) == [3, 2]
    assert select_neurons("top3", model) == [3, 2, 1]
    with pytest.raises(EggError, match="top_K"):
        select_neurons("best", model)
    model.test_correlation = None
    with pytest.raises(EggError, match="no per-neuron test correlation"):
        select_neurons("top_2", model)


def test_reconstruction_is_zero_at_the_target_image_and_negative_elsewhere():
    model = TinyCNN(n_neurons=6, size=12)
    targets = torch.randn(2, 1, 12, 12)
    objective = ReconstructionObjective(model, target_images=targets, target_index=[7, 9])
    score = objective(torch.cat([targets, targets.flip(0)]), torch.tensor([0, 1, 0, 1]))
    assert torch.allclose(score[:2], torch.zeros(2), atol=1e-6)
    assert (score[2:] < -1e-4).all()
    other = TinyCNN(n_neurons=6, size=12, seed=3)
    rescored = objective.with_model(other)(targets, torch.tensor([0, 1]))
    assert torch.allclose(rescored, torch.zeros(2), atol=1e-6)  # the other model recomputes its own targets
    assert objective.labels() == ["image 7", "image 9"]


def test_reconstruction_rejects_responses_of_the_wrong_width_or_nan():
    model = TinyCNN(n_neurons=6, size=12)
    with pytest.raises(EggError, match=r"expected \(targets, 6\)"):
        ReconstructionObjective(model, target_responses=np.zeros((2, 5), np.float32))
    with pytest.raises(EggError, match="NaN"):
        ReconstructionObjective(model, target_responses=np.full((1, 6), np.nan, np.float32))
