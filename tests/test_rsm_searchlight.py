"""Searchlight neighbourhoods, RDMs and comparisons against rsatoolbox 0.3.2 on the same data."""

import numpy as np
import pytest

from egg_cli.rsm.compare import Comparison, pair_permutation
from egg_cli.rsm.searchlight import RdmCalculator, sphere_offsets, volume_searchlights
from egg_cli.rsm.volume import BrainPatterns

rsa_sl = pytest.importorskip("rsatoolbox.util.searchlight")


def _blob_mask(shape=(9, 10, 8), seed=0):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"), -1)
    mask = (grid**2).sum(-1) < 0.8
    mask[rng.random(shape) < 0.05] = False  # holes make spheres of different sizes
    return mask


def _patterns(mask, n_conditions=7, n_runs=3, seed=1):
    rng = np.random.default_rng(seed)
    conditions = np.tile(np.arange(n_conditions), n_runs)
    runs = np.repeat(np.arange(n_runs), n_conditions)
    data = rng.standard_normal((len(conditions), int(mask.sum())))
    return BrainPatterns(data=data, conditions=conditions, runs=runs, mask=mask, affine=np.eye(4))


def _rsatoolbox_rdms(patterns, radius, threshold, truncate, method):
    centers, neighbors = rsa_sl.get_volume_searchlight(
        patterns.mask, radius=radius, threshold=threshold, truncate_at_boundary=truncate
    )
    full = np.zeros((len(patterns.conditions), patterns.mask.size))
    full[:, np.flatnonzero(patterns.mask.ravel())] = patterns.data
    if method == "crossnobis" and truncate:
        # get_searchlight_RDMs cannot stack crossnobis RDMs of spheres with different voxel counts
        # (rsatoolbox keeps an identity noise matrix per RDM); same per-sphere call, one by one
        from rsatoolbox.data import Dataset
        from rsatoolbox.rdm import calc_rdm

        rdms = [
            calc_rdm(
                Dataset(full[:, nb], obs_descriptors={"events": patterns.conditions}), method=method, descriptor="events"
            ).dissimilarities[0]
            for nb in neighbors
        ]
        return centers, np.array(rdms)
    rdms = rsa_sl.get_searchlight_RDMs(full, centers, neighbors, patterns.conditions, method=method, verbose=False)
    return centers, rdms.dissimilarities


@pytest.mark.parametrize("radius", [2, 3])
def test_sphere_sizes_match_rsatoolbox_strict_radius(radius):
    expected = {2: 27, 3: 93}[radius]
    assert len(sphere_offsets(radius)) == expected
    # 2 mm voxels: a 6 mm radius is 3 voxels, strictly below
    assert len(sphere_offsets(6.0, np.diag([2.0, 2.0, 2.0, 1.0]))) == 93


@pytest.mark.parametrize("method", ["correlation", "euclidean", "crossnobis"])
@pytest.mark.parametrize("radius,threshold,truncate", [(2, 1.0, False), (3, 0.0, True)])
def test_searchlight_rdms_equal_rsatoolbox(method, radius, threshold, truncate):
    mask = _blob_mask()
    patterns = _patterns(mask)
    centers, expected = _rsatoolbox_rdms(patterns, radius, threshold, truncate, method)
    sl = volume_searchlights(mask, radius, threshold=threshold, min_voxels=1)
    flat_centres = np.ravel_multi_index(tuple(sl.center_coordinates.T), mask.shape)
    np.testing.assert_array_equal(flat_centres, centers)
    ours, ok = RdmCalculator(patterns, sl, method).all_rdms(chunk_size=37)
    assert ok.all()
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).max() < 1e-6


@pytest.mark.parametrize("method,rsa_method", [("pearson", "corr"), ("spearman", "spearman"), ("tau-a", "tau-a")])
def test_comparisons_equal_rsatoolbox(method, rsa_method):
    from rsatoolbox.rdm import RDMs, compare

    rng = np.random.default_rng(3)
    brain = rng.standard_normal((20, 21))
    brain[:, 5] = brain[:, 6]  # ties
    models = np.round(rng.standard_normal((4, 21)), 1)  # ties in the models too
    cmp = Comparison(method)
    ours = cmp.score(cmp.prepare_brain(brain), cmp.prepare_models(models))
    expected = compare(RDMs(brain), RDMs(models), method=rsa_method)
    assert np.abs(ours - expected).max() < 1e-6


def test_pair_permutation_relabels_conditions():
    rng = np.random.default_rng(0)
    square = rng.random((6, 6))
    square = square + square.T
    np.fill_diagonal(square, 0)
    perm = rng.permutation(6)
    rows, cols = np.triu_indices(6, 1)
    vector = square[rows, cols]
    permuted = square[perm][:, perm]
    np.testing.assert_array_equal(vector[pair_permutation(perm)], permuted[rows, cols])


def test_constant_searchlight_is_invalid_not_nan_poisoned():
    mask = np.ones((5, 5, 5), dtype=bool)
    patterns = _patterns(mask, n_conditions=4, n_runs=1)
    patterns.data[:, :] = np.random.default_rng(0).standard_normal((4, 125))
    flat_zero = np.ravel_multi_index((0, 0, 0), mask.shape)
    # make every voxel near the corner identical across conditions -> zero-variance patterns there
    near = np.argwhere(mask)
    corner = np.linalg.norm(near, axis=1) < 2.5
    patterns.data[:, corner] = 1.0
    sl = volume_searchlights(mask, 2, threshold=0.0)
    rdms, ok = RdmCalculator(patterns, sl, "correlation").all_rdms()
    centre_index = list(sl.centers).index(flat_zero)
    assert not ok[centre_index]
    assert np.isfinite(rdms[ok]).all()
    assert ok.sum() > 0.8 * len(ok)
