"""Gradient-free search through the synth runner: convergence, bookkeeping, HDF5, resume, independence."""

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from egg_cli.errors import EggError
from egg_cli.synthesis import CMAES, XDream
from egg_cli.synthesis.blackbox.generators import PixelGenerator
from egg_cli.synthesis.blackbox.scorers import ObjectiveScorer
from egg_cli.synthesis.objectives import NeuronObjective
from egg_cli.synthesis.results import read_synthesis, write_synthesis
from egg_cli.synthesis.runner import synthesize

sys.path.insert(0, str(Path(__file__).parent))
from synthesis_toys import gabor_neurons

CPU = torch.device("cpu")
PIXEL8 = {"_target_": "egg_cli.synthesis.blackbox.generators.pixel_generator", "grid": 8}


@pytest.fixture(scope="module")
def ln():
    """Four LN Gabor neurons on 24x24 images and their best score reachable with an 8x8 pixel grid.

    The generator's images span the columns of its upsampling matrix U; at L2 norm 6 the best
    image in that span is 6 P w / |P w| (P: projection onto the span), scoring softplus(6 |P w| + b).
    """
    model = gabor_neurons(4, 24)
    basis = PixelGenerator((1, 24, 24), 8)(torch.eye(64)).flatten(1).T.double()
    q, _ = torch.linalg.qr(basis)
    projected = model.weight.flatten(1).double() @ q
    optimum = F.softplus(6.0 * projected.norm(dim=1) + model.bias.double()).numpy()
    return NeuronObjective(model, [0, 1, 2, 3]), optimum


@pytest.mark.parametrize(
    "method, floor",
    [
        (lambda **kw: XDream(budget=600, generator=PIXEL8, **kw), 0.85),
        (lambda **kw: CMAES(budget=600, generator=PIXEL8, **kw), 0.9),
        (lambda **kw: CMAES(budget=600, variant="sphere", population_size=20, generator=PIXEL8, **kw), 0.95),
    ],
)
def test_gradient_free_methods_approach_the_analytic_mei(ln, method, floor, tmp_path):
    objective, optimum = ln
    m = method(work_dir=str(tmp_path))
    result = synthesize(m, objective, [0], CPU, progress=False)
    ratio = result.scores["generating"][:, 0] / optimum
    assert (ratio > floor).all() and (ratio <= 1.0 + 1e-5).all(), ratio
    start = result.trace[:, 0, 0] / optimum
    assert (start < ratio - 0.1).all()  # the search did the work, not the first generation
    # images are at the synth contrast; the trace is the best-so-far score, never decreasing
    assert np.allclose(np.linalg.norm(result.images.reshape(4, -1), axis=1), 6.0, atol=1e-4)
    assert result.trace.shape == (4, 1, m.generations) and (np.diff(result.trace, axis=2) >= 0).all()
    extras = result.extras
    assert extras["codes"].shape == (4, 1, 64) and extras["best_observed_codes"].shape == (4, 1, 64)
    assert (extras["evaluations"] == m.generations * m.population_size).all()
    assert np.allclose(extras["best_observed_score"], result.trace[:, :, -1])
    # noise-free scorer: the final image's expected score is its generating score
    assert np.allclose(extras["final_expected_score"], result.scores["generating"], atol=1e-5)
    with open(tmp_path / "best_so_far.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * m.generations and rows[-1]["evaluations"] == str(m.generations * m.population_size)
    assert (tmp_path / "best_so_far.png").stat().st_size > 1000


def test_codes_and_best_so_far_land_in_the_synthesis_hdf5(ln, tmp_path):
    objective, _ = ln
    result = synthesize(XDream(budget=60, generator=PIXEL8), objective, [0, 1], CPU, progress=False)
    write_synthesis(tmp_path / "synthesis.h5", result)
    back = read_synthesis(tmp_path / "synthesis.h5")
    assert back.method == "xdream" and back.trace.shape == (4, 2, 3)
    assert np.array_equal(back.extras["codes"], result.extras["codes"])
    assert back.method_settings["population_size"] == 20 and back.method_settings["generator"]["grid"] == [8, 8]


def test_an_element_does_not_depend_on_the_rest_of_the_batch(ln):
    objective, _ = ln
    together = synthesize(CMAES(budget=160, generator=PIXEL8), objective, [0, 4], CPU, progress=False)
    alone = synthesize(CMAES(budget=160, generator=PIXEL8), objective, [4], CPU, problems=[2], progress=False)
    assert np.array_equal(alone.extras["codes"][0, 0], together.extras["codes"][2, 1])
    assert not np.array_equal(together.extras["codes"][2, 0], together.extras["codes"][2, 1])


class Interrupt(Exception):
    pass


def _interrupt_at(monkeypatch, generation):
    original = ObjectiveScorer.score

    def score(self, images, element, gen=0):
        if gen == generation:
            raise Interrupt
        return original(self, images, element, gen)

    monkeypatch.setattr(ObjectiveScorer, "score", score)


@pytest.mark.parametrize(
    "make",
    [
        lambda d: XDream(budget=200, generator=PIXEL8, noise={"max_count": 5, "reference_rates": [1.0, 1.0]}, work_dir=d),
        lambda d: CMAES(budget=200, generator=PIXEL8, work_dir=d),
        lambda d: CMAES(budget=200, variant="sphere", generator=PIXEL8, work_dir=d),
    ],
)
def test_an_interrupted_search_resumes_to_the_same_result(ln, make, tmp_path, monkeypatch):
    objective = NeuronObjective(ln[0].model, [1, 3])
    straight = synthesize(make(str(tmp_path / "a")), objective, [0], CPU, progress=False)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 3)
        with pytest.raises(Interrupt):
            synthesize(make(str(tmp_path / "b")), objective, [0], CPU, progress=False)
    assert (tmp_path / "b" / "blackbox" / "state_chunk00.pkl").exists()
    resumed = synthesize(make(str(tmp_path / "b")), objective, [0], CPU, progress=False)
    assert np.array_equal(resumed.extras["codes"], straight.extras["codes"])
    assert np.array_equal(resumed.trace, straight.trace)


def test_resume_refuses_a_different_search_and_extends_a_budget(ln, tmp_path):
    objective = NeuronObjective(ln[0].model, [0])
    work = str(tmp_path / "run")
    synthesize(XDream(budget=100, generator=PIXEL8, work_dir=work), objective, [0], CPU, progress=False)
    with pytest.raises(EggError, match=r"different search \(differs in optimizer.mutation_rate\)"):
        synthesize(XDream(budget=100, mutation_rate=0.3, generator=PIXEL8, work_dir=work), objective, [0], CPU, progress=False)
    extended = synthesize(XDream(budget=200, generator=PIXEL8, work_dir=work), objective, [0], CPU, progress=False)
    straight = synthesize(XDream(budget=200, generator=PIXEL8), objective, [0], CPU, progress=False)
    assert np.array_equal(extended.extras["codes"], straight.extras["codes"])
    assert extended.trace.shape[2] == 10


def test_method_settings_are_checked():
    with pytest.raises(EggError, match="budget"):
        XDream(budget=0)
    with pytest.raises(
        EggError, match="method.scorer=\\{'kind': 'monkey'\\}: expected a scorer config with _target_; choose one with scorer="
    ):
        CMAES(scorer={"kind": "monkey"})
    with pytest.raises(EggError, match="variant"):
        CMAES(variant="ellipse")
    with pytest.raises(EggError, match="below one generation"):
        CMAES(budget=10).prepare(None, (1, 8, 8), CPU)
