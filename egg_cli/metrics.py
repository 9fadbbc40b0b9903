"""Neural prediction metrics (neuralpredictors / Sensorium conventions), in plain numpy.

Responses are trials x neurons with ``trial_image`` giving each trial's image index, so repeated
presentations of an image are the trials that share an index.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation per column of two (samples x neurons) arrays; 0 where a column is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xm = x - x.mean(0)
    ym = y - y.mean(0)
    den = np.sqrt((xm**2).sum(0) * (ym**2).sum(0))
    return np.where(den > EPS, (xm * ym).sum(0) / np.maximum(den, EPS), 0.0)


def repeat_groups(trial_image: np.ndarray) -> list[np.ndarray]:
    """Trial indices per image that was shown at least twice."""
    trial_image = np.asarray(trial_image)
    order = np.argsort(trial_image, kind="stable")
    ids, starts, counts = np.unique(trial_image[order], return_index=True, return_counts=True)
    return [order[s : s + c] for s, c in zip(starts, counts) if c >= 2]


def oracle_correlation(responses: np.ndarray, trial_image: np.ndarray) -> np.ndarray:
    """Leave-one-out oracle: each trial against the mean of the other repeats of its image."""
    groups = repeat_groups(trial_image)
    if not groups:
        return np.full(responses.shape[1], np.nan)
    trials, oracles = [], []
    for idx in groups:
        r = responses[idx]
        trials.append(r)
        oracles.append((r.sum(0, keepdims=True) - r) / (len(idx) - 1))
    return correlation(np.concatenate(oracles), np.concatenate(trials))


def split_half_reliability(
    responses: np.ndarray, trial_image: np.ndarray, seed: int = 0, spearman_brown: bool = True
) -> np.ndarray:
    """Correlation between the image means of two random halves of the repeats, per neuron.

    With ``spearman_brown`` the value is corrected to the reliability of the full set of repeats.
    """
    rng = np.random.default_rng(seed)
    groups = repeat_groups(trial_image)
    if not groups:
        return np.full(responses.shape[1], np.nan)
    half_a, half_b = [], []
    for idx in groups:
        idx = rng.permutation(idx)
        k = len(idx) // 2
        half_a.append(responses[idx[:k]].mean(0))
        half_b.append(responses[idx[k : 2 * k]].mean(0))
    r = correlation(np.stack(half_a), np.stack(half_b))
    return 2 * r / (1 + r) if spearman_brown else r


def _noise_and_total_variance(responses: np.ndarray, trial_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    groups = repeat_groups(trial_image)
    noise = np.mean([responses[idx].var(0, ddof=1) for idx in groups], axis=0)
    total = np.concatenate([responses[idx] for idx in groups]).var(0, ddof=1)
    return noise, total


def explainable_variance_fraction(responses: np.ndarray, trial_image: np.ndarray) -> np.ndarray:
    """Fraction of explainable variance (FEV): 1 - noise variance / total variance, per neuron."""
    if not repeat_groups(trial_image):
        return np.full(responses.shape[1], np.nan)
    noise, total = _noise_and_total_variance(responses, trial_image)
    return 1.0 - noise / np.maximum(total, EPS)


def feve(predictions: np.ndarray, responses: np.ndarray, trial_image: np.ndarray) -> np.ndarray:
    """Fraction of explainable variance explained, per neuron, over the repeated trials.

    ``predictions`` are per trial (trials x neurons), aligned with ``responses``.
    """
    groups = repeat_groups(trial_image)
    if not groups:
        return np.full(responses.shape[1], np.nan)
    idx = np.concatenate(groups)
    noise, total = _noise_and_total_variance(responses, trial_image)
    mse = ((predictions[idx] - responses[idx]) ** 2).mean(0)
    return 1.0 - (mse - noise) / np.maximum(total - noise, EPS)


def correlation_to_average(predictions: np.ndarray, responses: np.ndarray, trial_image: np.ndarray) -> np.ndarray:
    """Correlation of the prediction with the mean response over repeats of each image."""
    groups = repeat_groups(trial_image)
    if not groups:
        return np.full(responses.shape[1], np.nan)
    mean_resp = np.stack([responses[idx].mean(0) for idx in groups])
    mean_pred = np.stack([predictions[idx].mean(0) for idx in groups])
    return correlation(mean_pred, mean_resp)
