"""Group inference on per-subject searchlight maps in a common space.

For S subjects with statistics ``x_s`` (searchlight x layer; e.g. Spearman rho of brain and layer
RDMs), the group statistic is the one-sample t ``t = mean / (sd / sqrt(S))``. Under the null
hypothesis each subject's map is symmetric about 0, so flipping the sign of whole subject maps
leaves its distribution unchanged: for each sign vector ``e`` (all 2^S when that is at most
``n_permutations``, otherwise random ones) the t map of ``e_s x_s`` is computed and its maximum
over searchlights (per layer, or over layers too with ``max_over="all"``) forms the null
distribution. FWER p = share of null maxima >= the observed t (exhaustive), or
``(1 + #) / (1 + n)`` (random flips); one-sided. Flipping does not change ``sum x_s^2``, so
every permutation's t needs only ``e' X``: one matrix product per batch of flips.

TFCE (threshold-free cluster enhancement, Smith & Nichols 2009), optional: each t map is replaced by
``TFCE(v) = sum_h e(h)^E h^H dh`` over thresholds h = dh, 2 dh, ... up to t(v), with e(h) the
size of the 26-connected cluster of voxels with t >= h that contains v (E = 0.5, H = 2,
dh = max t / ``tfce_steps`` of that map); the maximum of TFCE over voxels forms the null instead.

Noise ceiling (Nili et al. 2014), per searchlight, on the subjects' brain RDM vectors ``r_s``
(ranked for Spearman, centred and unit-norm): upper bound ``mean_s corr(r_s, mean_t r_t)``
(the group mean includes the subject: no model can beat it on average), lower bound
``mean_s corr(r_s, mean_{t != s} r_t)`` (leave one subject out).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from egg_cli.errors import EggError
from egg_cli.rsm.compare import standardize

MAX_EXHAUSTIVE_SUBJECTS = 20
TFCE_E, TFCE_H = 0.5, 2.0


@dataclass
class GroupTest:
    """One-sample t (V, L), the tested statistic (t or TFCE), FWER p (V, L), null maxima (n, L), flips used."""

    t: np.ndarray
    statistic: np.ndarray
    p_fwer: np.ndarray
    null_max: np.ndarray
    n_flips: int
    exhaustive: bool


def one_sample_t(values: np.ndarray) -> np.ndarray:
    """t over the first axis (subjects); 0 where the subjects' values do not vary."""
    s = values.shape[0]
    mean = values.mean(0)
    sd = values.std(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mean / (sd / np.sqrt(s)), 0.0)


def tfce(values: np.ndarray, mask: np.ndarray, steps: int = 50) -> np.ndarray:
    """TFCE of a map given at the True voxels of ``mask`` (C order); positive part only."""
    top = float(values.max(initial=0.0))
    if top <= 0:
        return np.zeros_like(values, dtype=np.float64)
    volume = np.zeros(mask.shape)
    volume[mask] = values
    structure = np.ones((3, 3, 3), dtype=bool)
    dh = top / steps
    out = np.zeros(mask.shape)
    for h in dh * np.arange(1, steps + 1):
        labels, _ = ndimage.label(volume >= h - 1e-12 * top, structure=structure)
        sizes = np.bincount(labels.ravel()).astype(np.float64)
        sizes[0] = 0.0
        out += sizes[labels] ** TFCE_E * h**TFCE_H * dh
    return out[mask]


def sign_flip_test(
    values: np.ndarray,
    n_permutations: int = 1000,
    seed: int = 0,
    max_over: str = "voxels",
    batch_elements: int = 20_000_000,
    tfce_mask: np.ndarray | None = None,
    tfce_steps: int = 50,
    progress: bool = False,
) -> GroupTest:
    """Sign-flip permutation test with max-statistic FWER correction for (S, V, L) subject maps.

    With ``tfce_mask`` (the volume whose True voxels, in C order, are the V searchlights) the
    tested statistic is the TFCE of each t map.
    """
    if max_over not in ("voxels", "all"):
        raise EggError(f"max_over={max_over!r} is not supported; expected voxels (per layer) or all")
    s, v, n_layers = values.shape
    if s < 2:
        raise EggError(f"{s} subject; expected at least 2 for a group test")
    if n_permutations < 1:
        raise EggError(f"group n_permutations={n_permutations}; expected at least 1")
    exhaustive = s <= MAX_EXHAUSTIVE_SUBJECTS and 2**s <= n_permutations
    if exhaustive:
        flips = np.array(list(itertools.product([1.0, -1.0], repeat=s)))
    else:
        flips = np.random.default_rng(seed).choice([1.0, -1.0], size=(n_permutations, s))
    x = values.reshape(s, -1).astype(np.float64)
    sum_sq = (x**2).sum(0)
    observed = one_sample_t(values)
    enhance = (
        (lambda t: np.stack([tfce(t[:, l], tfce_mask, tfce_steps) for l in range(n_layers)], 1))
        if tfce_mask is not None
        else None
    )
    statistic = enhance(observed) if enhance else observed
    null_max = np.empty((len(flips), n_layers))
    step = max(1, batch_elements // max(x.shape[1], 1))
    if enhance:
        step = 1
    for start in tqdm(range(0, len(flips), step), desc="sign flips", disable=not progress, leave=False):
        e = flips[start : start + step]
        mean = e @ x / s
        var = (sum_sq[None, :] - s * mean**2) / (s - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(var > 1e-300, mean / np.sqrt(var / s), 0.0).reshape(len(e), v, n_layers)
        if enhance:
            t = np.stack([enhance(one) for one in t])
        null_max[start : start + len(e)] = t.max(1)
    if max_over == "all":
        null_max = np.repeat(null_max.max(1, keepdims=True), n_layers, 1)
    sorted_null = np.sort(null_max, axis=0)
    n = len(flips)
    counts = np.stack([n - np.searchsorted(sorted_null[:, l], statistic[:, l] - 1e-9, side="left") for l in range(n_layers)], 1)
    p = counts / n if exhaustive else (1 + counts) / (1 + n)
    return GroupTest(t=observed, statistic=statistic, p_fwer=p, null_max=null_max, n_flips=n, exhaustive=exhaustive)


def noise_ceiling(brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper noise-ceiling bounds (V,) from (S, V, P) prepared (ranked or raw) brain RDM vectors."""
    s = brain.shape[0]
    if s < 2:
        raise EggError(f"{s} subject; expected at least 2 for a noise ceiling")
    r = standardize(np.asarray(brain, dtype=np.float64))
    total = r.sum(0)
    upper = np.einsum("svp,vp->sv", r, standardize(total)).mean(0)
    others = standardize(total[None] - r)
    lower = np.einsum("svp,svp->sv", r, others).mean(0)
    return lower, upper
