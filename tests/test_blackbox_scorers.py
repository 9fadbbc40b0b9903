"""Scorers: the objective in a model, and Poisson spike noise at a chosen expected maximum count."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from egg_cli.errors import EggError
from egg_cli.synthesis.blackbox.scorers import ObjectiveScorer, PoissonScorer
from egg_cli.synthesis.objectives import NeuronObjective

sys.path.insert(0, str(Path(__file__).parent))
from synthesis_toys import gabor_neurons

CPU = torch.device("cpu")


def _scorer(neurons=(0, 1), batch_size=7, inhibitory=False):
    model = gabor_neurons(4, 24)
    objective = NeuronObjective(model, list(neurons), inhibitory=inhibitory)
    return objective, ObjectiveScorer(objective, CPU, batch_size=batch_size)


def test_objective_scorer_matches_the_objective_per_element_in_batches():
    objective, scorer = _scorer()
    scorer.begin(torch.tensor([1, 0, 1]), [0, 0, 5])
    images = torch.randn(10, 1, 24, 24)
    element = np.array([0, 0, 1, 2, 2, 2, 1, 0, 1, 2])
    problem = torch.tensor([1, 0, 1])[element]
    expected = objective(images, problem).double().numpy()
    assert np.allclose(scorer.score(images, element, 0), expected, atol=1e-6)


def test_poisson_scorer_is_unbiased_with_the_variance_of_spike_counts():
    objective, rates = _scorer()
    reference = np.array([2.0, 4.0])
    noisy = PoissonScorer(rates, max_count=5.0, reference=reference)
    noisy.begin(torch.tensor([0, 1]), [0, 0])
    image = torch.randn(1, 1, 24, 24)
    images = image.repeat(4000, 1, 1, 1)
    element = np.repeat([0, 1], 2000)
    scores = noisy.score(images, element, 0)
    truth = noisy.expected(images[[0, 2000]], np.array([0, 1]))
    for b in range(2):
        s = scores[element == b]
        scale = 5.0 / reference[b]  # counts per rate unit
        assert abs(s.mean() - truth[b]) < 4 * np.sqrt(truth[b] / scale / 2000)
        assert abs(s.var() - truth[b] / scale) < 0.15 * truth[b] / scale
        assert np.allclose(s * scale, np.round(s * scale))  # whole spike counts in rate units


def test_poisson_noise_of_an_element_does_not_depend_on_the_batch():
    _, rates = _scorer()
    images = torch.randn(6, 1, 24, 24)
    together = PoissonScorer(rates, 20.0, [1.0, 1.0])
    together.begin(torch.tensor([0, 1]), [3, 3])
    both = together.score(images, np.array([0, 0, 0, 1, 1, 1]), 0)
    alone = PoissonScorer(_scorer()[1], 20.0, [1.0, 1.0])
    alone.begin(torch.tensor([1]), [3])
    assert np.array_equal(alone.score(images[3:], np.array([0, 0, 0]), 0), both[3:])


def test_poisson_scorer_state_resumes_the_noise_stream():
    _, rates = _scorer()
    a = PoissonScorer(rates, 5.0, [1.0, 1.0])
    a.begin(torch.tensor([0]), [0])
    images = torch.randn(5, 1, 24, 24)
    a.score(images, np.zeros(5, int), 0)
    saved = a.state()
    first = a.score(images, np.zeros(5, int), 1)
    b = PoissonScorer(_scorer()[1], 5.0, [1.0, 1.0])
    b.begin(torch.tensor([0]), [0])
    b.load_state(saved)
    assert np.array_equal(b.score(images, np.zeros(5, int), 1), first)


def test_poisson_scorer_needs_rates_and_positive_references():
    _, inhibitory = _scorer(inhibitory=True)
    with pytest.raises(EggError, match="firing rates"):
        PoissonScorer(inhibitory, 20.0, [1.0, 1.0])
    _, rates = _scorer()
    with pytest.raises(EggError, match="reference rates must be positive"):
        PoissonScorer(rates, 20.0, [1.0, 0.0])
    with pytest.raises(EggError, match="max_count"):
        PoissonScorer(rates, 0.0, [1.0, 1.0])
