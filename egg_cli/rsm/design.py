"""First-level design matrices: canonical HRFs, event regressors, cosine drift.

Conventions (those of nilearn's ``make_first_level_design_matrix``, so designs agree with it):

* frame times ``t_n = (slice_time_ref + n) * TR``, n = 0..N-1;
* HRF: difference of two gamma densities sampled on ``linspace(0, 32 s, round(32 / dt))`` with
  ``dt = TR / oversampling`` and a one-sample lag (``loc = dt``), normalized to unit sum:
  ``h(t) = Gamma(t; a1 = delay / disp, scale = disp) - ratio * Gamma(t; a2 = under / u_disp, scale = u_disp)``,
  Glover (1999) as in nilearn >= 0.10: delay 6 s, undershoot 12 s, dispersions 0.9, ratio 0.48; SPM: 6 s, 16 s, 1, 1, 1/6;
* an event (onset, duration, amplitude) is a boxcar on a grid of step ``dt`` from
  ``t_0 - 24 s`` to ``t_{N-1} N / (N - 1)`` (``t_{N-1} + TR`` when t_0 = 0; it starts at the first grid point at or after the onset and
  lasts at least one grid step), convolved with the HRF and linearly interpolated at the frame times;
* cosine drift: DCT-II basis ``sqrt(2 / N) cos(pi k (n + 1/2) / N)`` for k = 1..floor(2 N f_hp TR)
  (periods longer than ``1 / f_hp``), plus a constant column last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from egg_cli.errors import EggError

HRF_PARAMETERS = {
    "glover": {"delay": 6.0, "undershoot": 12.0, "dispersion": 0.9, "u_dispersion": 0.9, "ratio": 0.48},
    "spm": {"delay": 6.0, "undershoot": 16.0, "dispersion": 1.0, "u_dispersion": 1.0, "ratio": 0.167},
}
HRF_LENGTH_S = 32.0
MIN_ONSET_S = -24.0


@dataclass
class Events:
    """Trials of one run: onset and duration in seconds, and a trial type (condition name) each."""

    onset: np.ndarray
    duration: np.ndarray
    trial_type: np.ndarray

    def __len__(self) -> int:
        return len(self.onset)


def frame_times(n_scans: int, tr: float, slice_time_ref: float = 0.0) -> np.ndarray:
    """Acquisition time (s) of each volume."""
    return (slice_time_ref + np.arange(n_scans)) * tr


def hrf(model: str, tr: float, oversampling: int = 50) -> np.ndarray:
    """Canonical double-gamma HRF sampled every ``tr / oversampling`` seconds, unit sum."""
    if model not in HRF_PARAMETERS:
        raise EggError(f"hrf={model!r} is not supported; expected one of {sorted(HRF_PARAMETERS)}")
    p = HRF_PARAMETERS[model]
    dt = tr / oversampling
    t = np.linspace(0.0, HRF_LENGTH_S, int(np.rint(HRF_LENGTH_S / dt)))
    peak = stats.gamma.pdf(t, p["delay"] / p["dispersion"], loc=dt, scale=p["dispersion"])
    under = stats.gamma.pdf(t, p["undershoot"] / p["u_dispersion"], loc=dt, scale=p["u_dispersion"])
    kernel = peak - p["ratio"] * under
    return kernel / kernel.sum()


def event_regressors(
    times: np.ndarray, groups: Sequence[Events], hrf_model: str = "glover", oversampling: int = 50
) -> np.ndarray:
    """(N, G) HRF-convolved regressors, one per group of events (all events of a group summed)."""
    n = len(times)
    tr = (times[-1] - times[0]) / (n - 1)
    end = times[-1] * n / (n - 1)  # t_{N-1} + TR when t_0 = 0
    n_fine = int(np.rint((end - times[0] - MIN_ONSET_S) / tr * oversampling + 1))
    fine = np.linspace(times[0] + MIN_ONSET_S, end, n_fine)
    kernel = hrf(hrf_model, tr, oversampling)
    out = np.zeros((n, len(groups)))
    for g, events in enumerate(groups):
        boxcar = np.zeros(n_fine)
        start = np.minimum(np.searchsorted(fine, events.onset), n_fine - 1)
        stop = np.minimum(np.searchsorted(fine, events.onset + events.duration), n_fine - 1)
        stop = np.where((stop == start) & (stop < n_fine - 1), stop + 1, stop)
        np.add.at(boxcar, start, 1.0)
        np.add.at(boxcar, stop, -1.0)
        response = np.convolve(np.cumsum(boxcar), kernel)[:n_fine]
        out[:, g] = np.interp(times, fine, response)
    return out


def cosine_drift(times: np.ndarray, high_pass: float) -> np.ndarray:
    """(N, order + 1) DCT-II high-pass basis with periods above 1 / ``high_pass`` s, constant last."""
    n = len(times)
    tr = (times[-1] - times[0]) / (n - 1)
    order = min(n - 1, int(np.floor(2 * n * high_pass * tr)))
    k = np.arange(1, order + 1)
    basis = np.sqrt(2.0 / n) * np.cos(np.pi / n * (np.arange(n)[:, None] + 0.5) * k[None, :])
    return np.hstack([basis, np.ones((n, 1))])


@dataclass
class Design:
    """Design matrix (N, P) with named columns: ``n_events`` event regressors (the conditions first), then nuisance."""

    matrix: np.ndarray
    columns: list[str]
    n_events: int


def lsa_design(
    n_scans: int,
    tr: float,
    events: Events,
    conditions: Sequence[str],
    confounds: np.ndarray | None = None,
    confound_names: Sequence[str] = (),
    hrf_model: str = "glover",
    high_pass: float = 0.01,
    slice_time_ref: float = 0.0,
) -> Design:
    """Least-squares-all design: one regressor per condition (its trials summed), confounds, drift, constant.

    Event trial types outside ``conditions`` are modelled as one regressor each after the conditions,
    so their responses do not leak into the estimates.
    """
    times = frame_times(n_scans, tr, slice_time_ref)
    extra = sorted(set(events.trial_type.tolist()) - set(conditions))
    names = list(conditions) + extra
    groups = [_select(events, events.trial_type == name) for name in names]
    parts = [event_regressors(times, groups, hrf_model)]
    columns = list(names)
    if confounds is not None and confounds.shape[1]:
        parts.append(confounds)
        columns += list(confound_names)
    drift = cosine_drift(times, high_pass)
    parts.append(drift)
    columns += [f"drift_{i + 1}" for i in range(drift.shape[1] - 1)] + ["constant"]
    return Design(np.hstack(parts), columns, len(names))


def _select(events: Events, keep: np.ndarray) -> Events:
    return Events(events.onset[keep], events.duration[keep], events.trial_type[keep])
