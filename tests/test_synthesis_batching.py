"""Batch planning from measured memory, and the result file round trip."""

import numpy as np
import pytest
import torch
from synthesis_toys import TinyCNN

from egg_cli.errors import EggError
from egg_cli.synthesis import GradientAscent, NeuronObjective, read_synthesis, synthesize, write_synthesis
from egg_cli.synthesis.batching import bytes_per_element, choose_batch_size, plan_chunks, resolve_batch_size
from egg_cli.synthesis.runner import build_adapter

CPU = torch.device("cpu")


def test_plan_chunks_covers_every_problem_seed_once_in_order():
    chunks = plan_chunks(n_problems=5, n_seeds=3, batch_size=4)
    flat = [e for c in chunks for e in c]
    assert flat == [(p, s) for p in range(5) for s in range(3)]
    assert [len(c) for c in chunks] == [4, 4, 4, 3]


def test_plan_chunks_keeps_the_seeds_of_a_problem_together_when_they_interact():
    chunks = plan_chunks(n_problems=5, n_seeds=3, batch_size=7, whole_problems=True)
    assert [len(c) for c in chunks] == [6, 6, 3]
    assert all({p for p, _ in c} == {p for p, s in c if s == 0} for c in chunks)


def test_memory_per_image_grows_with_image_size_and_excludes_parameters():
    def probe_for(size):
        model = TinyCNN(n_neurons=4, size=size)
        method = GradientAscent(steps=1)
        objective = NeuronObjective(model, [0])
        adapter = build_adapter(model, model.input_shape, "zscored")
        return lambda b: method.probe(objective, adapter, CPU, b)

    small, large = bytes_per_element(probe_for(8)), bytes_per_element(probe_for(16))
    # activations scale with the number of pixels (4x); parameters (readout grows too) cancel out
    assert 3.0 < large / small < 5.0
    assert small < 8 * 8 * 4 * 40  # a few dozen float maps of 8x8 per image, not the weights


def test_batch_size_is_capped_by_elements_and_max_and_fails_when_nothing_fits():
    assert choose_batch_size(1024, CPU, n_elements=10, max_batch_size=256) == 10
    assert choose_batch_size(1024, CPU, n_elements=1000, max_batch_size=32) == 32
    with pytest.raises(EggError, match="MiB"):
        choose_batch_size(2**60, CPU, n_elements=1, max_batch_size=1)
    with pytest.raises(EggError, match="batch_size"):
        resolve_batch_size("many", lambda b: None, CPU, 4, 4)
    with pytest.raises(EggError, match="batch_size"):
        resolve_batch_size(0, lambda b: None, CPU, 4, 4)


def test_auto_batch_size_gives_the_results_of_one_image_per_batch(tmp_path):
    model = TinyCNN(n_neurons=5, size=12)
    objective = NeuronObjective(model, [0, 2, 4])
    auto = synthesize(GradientAscent(steps=10, jitter=1), objective, seeds=[0, 1], device=CPU, batch_size="auto", progress=False)
    single = synthesize(GradientAscent(steps=10, jitter=1), objective, seeds=[0, 1], device=CPU, batch_size=1, progress=False)
    assert auto.batch_size == 6 and auto.chunk.max() == 0
    assert single.chunk.max() == 5
    assert np.abs(auto.images - single.images).max() < 1e-4
    assert (auto.seconds_per_image > 0).all()


def test_result_file_round_trip_keeps_arrays_and_metadata(tmp_path):
    model = TinyCNN(n_neurons=5, size=12)
    result = synthesize(
        GradientAscent(steps=3), NeuronObjective(model, [4, 1]), seeds=[3, 8], device=CPU, batch_size=4, progress=False
    )
    result.scores["heldout_0"] = result.scores["generating"] * 0.5
    result.score_sources = {"generating": "a.pt", "heldout_0": "['b.pt', 'c.pt']"}
    result.attrs = {"model": ["a.pt"], "config": "seed: 0\n"}
    write_synthesis(tmp_path / "synthesis.h5", result)
    back = read_synthesis(tmp_path / "synthesis.h5")
    assert np.array_equal(back.images, result.images)
    assert np.array_equal(back.seeds, [3, 8])
    assert back.labels == ["neuron 4", "neuron 1"]
    assert np.array_equal(back.problems["neuron_index"], [4, 1])
    assert back.scores.keys() == {"generating", "heldout_0"}
    assert back.score_sources["heldout_0"] == "['b.pt', 'c.pt']"
    assert back.method_settings["steps"] == 3
    assert back.adapter["norm"] == pytest.approx(0.25 * 12)
    assert back.attrs["model"] == ["a.pt"] and back.attrs["config"] == "seed: 0\n"
    assert back.trace.shape == (2, 2, 3)
    with pytest.raises(EggError, match="does not exist"):
        read_synthesis(tmp_path / "missing.h5")
