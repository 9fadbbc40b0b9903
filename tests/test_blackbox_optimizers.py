"""XDream GA, CMA-ES (cma package) and the sphere variant: selection rules, sampling, convergence, state."""

import pickle

import numpy as np
import pytest

from egg_cli.errors import EggError
from egg_cli.synthesis.blackbox.cma_optimizers import CMAOptimizer, SphereCMA, exp_map
from egg_cli.synthesis.blackbox.genetic import GeneticOptimizer, xdream_fitness

DIM = 32


def cosine_task(dim: int = DIM, seed: int = 3):
    """Score = cosine between the code and a hidden direction (the optimum is the direction, score 1)."""
    w = np.random.default_rng(seed).standard_normal(dim)
    w /= np.linalg.norm(w)
    return lambda codes: codes @ w / np.maximum(np.linalg.norm(codes, axis=1), 1e-12)


def optimize(opt, score, generations):
    for _ in range(generations):
        codes = opt.ask()
        opt.tell(codes, score(codes))
    return float(score(opt.recommendation()[None])[0])


def test_xdream_fitness_clips_at_95th_percentile_and_zeroes_unscored():
    scores = np.array([0.0, 1.0, 2.0, 3.0, 100.0, np.nan])
    p = xdream_fitness(scores, selectivity=2.0, clip_percentile=95.0)
    valid = np.minimum(scores[:5], np.percentile(scores[:5], 95))
    expected = np.exp((valid - valid.max()) / (valid.std() / 2.0))
    assert p[5] == 0.0
    assert np.allclose(p[:5], expected / expected.sum())
    assert abs(p.sum() - 1) < 1e-12
    # clipping the outlier gives the ordinary scores more weight than without clipping
    assert p[3] > xdream_fitness(scores, 2.0, None)[3]


def test_xdream_fitness_higher_selectivity_concentrates_on_the_best():
    scores = np.arange(10.0)
    soft = xdream_fitness(scores, 0.5, None)
    sharp = xdream_fitness(scores, 4.0, None)
    assert sharp[-1] > soft[-1] and sharp[0] < soft[0]
    assert np.allclose(xdream_fitness(np.ones(5), 2.0, 95.0), 0.2)  # equal scores: uniform


def test_xdream_keeps_elites_and_children_inherit_parent_genes_without_mutation():
    opt = GeneticOptimizer(DIM, np.random.default_rng(0), population_size=10, n_elites=3, mutation_rate=0.0)
    codes = opt.ask()
    scores = np.arange(10.0)
    opt.tell(codes, scores)
    new = opt.ask()
    assert np.array_equal(new[:3], codes[[9, 8, 7]])
    # with no mutation every gene of a child is the same gene of some parent
    for child in new[3:]:
        assert all(np.isin(child[j], codes[:, j]) for j in range(DIM))
    assert np.array_equal(opt.recommendation(), codes[9])


def test_xdream_mutation_size_sets_the_gene_noise():
    rng = np.random.default_rng(1)
    opt = GeneticOptimizer(
        2000, rng, population_size=4, n_elites=0, mutation_rate=1.0, mutation_size=0.5, heritability=1.0, selectivity=1e9
    )
    codes = np.zeros((4, 2000))
    codes[3] = 1.0
    opt.tell(codes, np.array([0.0, 0.0, 0.0, 1.0]))  # parent 1 is (almost surely) the best code
    diff = opt.ask() - 1.0
    assert abs(diff.std() - 0.5) < 0.02


def test_xdream_rejects_bad_settings():
    with pytest.raises(EggError, match="heritability"):
        GeneticOptimizer(DIM, np.random.default_rng(0), heritability=1.5)
    with pytest.raises(EggError, match="n_elites"):
        GeneticOptimizer(DIM, np.random.default_rng(0), population_size=4, n_elites=4)


def test_xdream_unscored_generation_is_shown_again():
    opt = GeneticOptimizer(DIM, np.random.default_rng(0), population_size=6)
    codes = opt.ask()
    opt.tell(codes, np.full(6, np.nan))
    assert np.array_equal(opt.ask(), codes)


def test_xdream_climbs_a_cosine_objective():
    score = cosine_task()
    opt = GeneticOptimizer(DIM, np.random.default_rng(0))
    start = score(opt.ask()).max()
    final = optimize(opt, score, 150)
    assert start < 0.6 and final > 0.9


def test_cmaes_starts_at_code_zero_with_step_sigma0():
    opt = CMAOptimizer(500, np.random.default_rng(0), population_size=40, sigma0=2.5)
    codes = opt.ask()
    assert codes.shape == (40, 500)
    assert abs(codes.mean()) < 0.05
    assert abs(codes.std() - 2.5) < 0.05
    assert np.array_equal(opt.ask(), codes)  # asking twice before tell returns the same generation


def test_cmaes_draws_from_its_own_generator_not_numpy_global_state():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = CMAOptimizer(DIM, np.random.default_rng(7)).ask()
    b = CMAOptimizer(DIM, np.random.default_rng(7)).ask()
    c = CMAOptimizer(DIM, np.random.default_rng(8)).ask()
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert np.array_equal(np.random.get_state()[1], before)


def test_cmaes_covariance_auto_switches_to_diagonal_above_the_threshold():
    assert CMAOptimizer(64, np.random.default_rng(0), full_covariance_max_dim=100).covariance == "full"
    assert CMAOptimizer(200, np.random.default_rng(0), full_covariance_max_dim=100).covariance == "diagonal"
    with pytest.raises(EggError, match="covariance"):
        CMAOptimizer(8, np.random.default_rng(0), covariance="block")


def test_cmaes_climbs_a_cosine_objective_and_ranks_unscored_last():
    score = cosine_task()
    opt = CMAOptimizer(DIM, np.random.default_rng(0), population_size=20)

    def noisy_rig(codes):
        s = score(codes)
        s[::5] = np.nan  # a fifth of the images unscored
        return s

    for _ in range(60):
        codes = opt.ask()
        opt.tell(codes, noisy_rig(codes))
    assert score(opt.recommendation()[None])[0] > 0.95


def test_sphere_candidates_lie_on_the_sphere_at_the_scheduled_angle():
    opt = SphereCMA(
        DIM, np.random.default_rng(0), generations=10, population_size=8, sphere_radius=300.0, angle_start=50.0, angle_end=7.3
    )
    codes = opt.ask()
    assert np.allclose(np.linalg.norm(codes, axis=1), 300.0)
    mean = opt.recommendation() / 300.0
    angles = np.degrees(np.arccos(np.clip(codes @ mean / 300.0, -1, 1)))
    assert np.allclose(angles, 50.0)
    for _ in range(9):
        opt.tell(opt.ask(), np.zeros(8))
    assert abs(np.degrees(opt.angle()) - 7.3) < 1e-9


def test_exp_map_moves_along_the_great_circle():
    mean = np.array([1.0, 0.0, 0.0])
    out = exp_map(mean, np.array([[0.0, np.pi / 2, 0.0]]))
    assert np.allclose(out, [[0.0, 1.0, 0.0]])


def test_sphere_variant_climbs_a_cosine_objective():
    score = cosine_task()
    opt = SphereCMA(DIM, np.random.default_rng(0), generations=40, population_size=20, sphere_radius=5.0)
    assert optimize(opt, score, 40) > 0.95


@pytest.mark.parametrize(
    "make",
    [
        lambda: GeneticOptimizer(DIM, np.random.default_rng(0)),
        lambda: CMAOptimizer(DIM, np.random.default_rng(0)),
        lambda: SphereCMA(DIM, np.random.default_rng(0), generations=20),
    ],
)
def test_pickled_optimizer_continues_exactly(make):
    score = cosine_task()
    opt = make()
    for _ in range(3):
        codes = opt.ask()
        opt.tell(codes, score(codes))
    copy = pickle.loads(pickle.dumps(opt))
    for _ in range(3):
        a, b = opt.ask(), copy.ask()
        assert np.array_equal(a, b)
        opt.tell(a, score(a))
        copy.tell(b, score(b))
    assert np.array_equal(opt.recommendation(), copy.recommendation())
