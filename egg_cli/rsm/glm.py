"""First-level GLM per run: one response estimate (beta or t-value) per condition and voxel.

Model ``y = X b + e`` with X from :mod:`egg_cli.rsm.design` and AR(1) noise
``e_t = rho e_{t-1} + u_t``. With ``W`` the AR(1) prewhitening matrix (``(Wz)_0 = sqrt(1 - rho^2) z_0``,
``(Wz)_t = z_t - rho z_{t-1}``), generalized least squares is OLS on ``(W X, W y)``:

    b = (X' A X)^+ X' A y,   s2 = (y' A y - b' X' A y) / (N - rank X),   t_k = b_k / sqrt(s2 [(X' A X)^+]_kk)

with ``A = W'W`` tridiagonal: 1 at both ends of the diagonal, ``1 + rho^2`` inside, ``-rho`` next to
it. So every term is ``(1 + rho^2) S_0 - rho S_1 - rho^2 S_e`` of three statistics of the data
(plain, lag-1 and end-point products), computed once per voxel chunk with three matrix products;
no whitened copy of the data is ever made. ``noise_model=ols`` is ``rho = 0``; ``ar1`` takes
each voxel's rho from its OLS residuals, ``sum_t r_t r_{t-1} / sum_t r_t^2`` (from the same
statistics), rounded to ``1 / ar_bins`` so voxels sharing a value share one (P, P) inverse.
Data are centred per voxel first: the design holds a constant, so only its beta changes.

Per-trial designs: ``lsa`` puts every condition in one model; ``lss`` (Mumford et al. 2012) fits
one model per condition with that condition's trials as one regressor and all other trials as a
second one, which is less variable when responses to neighbouring trials overlap.
Voxels are processed in chunks, so memory grows with ``chunk_size``, not with the brain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from egg_cli.errors import EggError
from egg_cli.rsm.design import HRF_PARAMETERS, Design, Events, lsa_design

NOISE_MODELS = ("ols", "ar1")
METHODS = ("lsa", "lss")
OUTPUTS = ("betas", "t")
MAX_ABS_RHO = 0.99


@dataclass
class GlmConfig:
    """Settings of the first-level model (see the module docstring)."""

    hrf_model: str = "glover"
    high_pass: float = 0.01
    noise_model: str = "ar1"
    method: str = "lsa"
    output: str = "t"
    slice_time_ref: float = 0.0
    ar_bins: int = 100
    chunk_size: int = 50000

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("noise_model", self.noise_model, NOISE_MODELS),
            ("method", self.method, METHODS),
            ("output", self.output, OUTPUTS),
        ):
            if value not in allowed:
                raise EggError(f"glm.{name}={value!r} is not supported; expected one of {allowed}")
        if self.hrf_model not in HRF_PARAMETERS:
            raise EggError(f"glm.hrf_model={self.hrf_model!r} is not supported; expected one of {sorted(HRF_PARAMETERS)}")
        if not self.high_pass > 0:
            raise EggError(f"glm.high_pass={self.high_pass}; expected a positive cut-off frequency in Hz")
        if not 0 <= self.slice_time_ref <= 1:
            raise EggError(f"glm.slice_time_ref={self.slice_time_ref}; expected a fraction of the TR in [0, 1]")


@dataclass
class ArParts:
    """A quadratic form ``a' A(rho) b`` split into rho-free parts: plain, lag-1 (both ways) and end points.

    ``lag`` and ``ends`` are None when only ``rho = 0`` (OLS) is needed.
    """

    plain: np.ndarray
    lag: np.ndarray | None = None
    ends: np.ndarray | None = None

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray, lagged: bool = True) -> ArParts:
        """Parts of ``a' A b`` for (N, ·) arrays (a matrix of products)."""
        if not lagged:
            return cls(a.T @ b)
        # a[1:]' b[:-1] + a[:-1]' b[1:] = s' b with s_t = a_{t+1} + a_{t-1}: one product for plain and lag
        shifted = np.zeros_like(a)
        shifted[:-1] += a[1:]
        shifted[1:] += a[:-1]
        both = np.hstack([a, shifted]).T @ b
        return cls(both[: a.shape[1]], both[a.shape[1] :], a[[0, -1]].T @ b[[0, -1]])

    @classmethod
    def diagonal(cls, y: np.ndarray, lagged: bool = True) -> ArParts:
        """Parts of ``y_v' A y_v`` for every column v of (N, V) data."""
        plain = np.einsum("nv,nv->v", y, y)
        if not lagged:
            return cls(plain)
        return cls(plain, 2 * np.einsum("nv,nv->v", y[1:], y[:-1]), y[0] ** 2 + y[-1] ** 2)

    def at(self, rho: float, voxels: slice | None = None) -> np.ndarray:
        """``(1 + rho^2) plain - rho lag - rho^2 ends`` (only data columns ``voxels`` when given)."""
        part = slice(None) if voxels is None else voxels
        if rho == 0:
            return self.plain[..., part]
        return (1 + rho**2) * self.plain[..., part] - rho * self.lag[..., part] - rho**2 * self.ends[..., part]

    def take(self, order: np.ndarray) -> ArParts:
        """Data columns reordered by ``order``."""
        return ArParts(*(None if a is None else a[..., order] for a in (self.plain, self.lag, self.ends)))


def gls(xx: ArParts, xy: ArParts, yy: ArParts, rho: float, dof: int, columns: np.ndarray, voxels: slice):
    """Betas and t-values (C, n) of design ``columns`` at the data columns ``voxels`` for one AR(1) ``rho``."""
    inverse = np.linalg.pinv(xx.at(rho))
    rhs = xy.at(rho, voxels)
    betas = inverse @ rhs
    rss = yy.at(rho, voxels) - (betas * rhs).sum(0)
    scale = np.sqrt(np.maximum(rss, 0) / dof)[None, :] * np.sqrt(np.diag(inverse)[columns])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return betas[columns], np.nan_to_num(betas[columns] / scale)


def fit(x: np.ndarray, y: np.ndarray, columns: np.ndarray, cfg: GlmConfig) -> np.ndarray:
    """(C, V) betas or t-values of the design ``columns`` for (N, V) data, chunk by chunk over voxels."""
    dof = x.shape[0] - np.linalg.matrix_rank(x)
    if dof < 1:
        raise EggError(f"the design has {x.shape[1]} columns for {x.shape[0]} volumes; expected fewer regressors than volumes")
    lagged = cfg.noise_model == "ar1"
    xx = ArParts.of(x, x)
    out = np.empty((len(columns), y.shape[1]))
    for start in range(0, y.shape[1], cfg.chunk_size):
        part = slice(start, start + cfg.chunk_size)
        chunk = np.array(y[:, part], dtype=np.float64)  # a copy: centred in place
        chunk -= chunk.mean(0)
        xy, yy = ArParts.of(x, chunk, lagged), ArParts.diagonal(chunk, lagged)
        rho = ar1_coefficients(xx, xy, yy, cfg.ar_bins) if cfg.noise_model == "ar1" else np.zeros(chunk.shape[1])
        order = np.argsort(rho, kind="stable")  # voxels sharing a rho become one contiguous slice
        values, starts = np.unique(rho[order], return_index=True)
        xy, yy = xy.take(order), yy.take(order)
        block = np.empty((len(columns), chunk.shape[1]))
        for value, lo, hi in zip(values, starts, [*starts[1:], len(order)]):
            betas, t = gls(xx, xy, yy, float(value), dof, columns, slice(lo, hi))
            block[:, order[lo:hi]] = betas if cfg.output == "betas" else t
        out[:, part] = block
    return out


def ar1_coefficients(xx: ArParts, xy: ArParts, yy: ArParts, bins: int) -> np.ndarray:
    """Lag-1 autocorrelation of each voxel's OLS residuals, rounded to 1 / ``bins``.

    With r = y - X b: ``sum_t r_t r_{t-1} = y'L y - b'(X'L y) + b'(X'L X) b / 2`` in the lag parts.
    """
    betas = np.linalg.pinv(xx.plain) @ xy.plain
    rss = yy.plain - (betas * xy.plain).sum(0)
    lag1 = yy.lag / 2 - (betas * xy.lag).sum(0) + 0.5 * (betas * (xx.lag @ betas)).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.nan_to_num(lag1 / rss)
    return np.clip(np.round(rho * bins) / bins, -MAX_ABS_RHO, MAX_ABS_RHO)


def first_level(
    data: np.ndarray,
    tr: float,
    events: Events,
    conditions: Sequence[str],
    cfg: GlmConfig,
    confounds: np.ndarray | None = None,
    confound_names: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Estimates of one run: (C, V) betas or t-values and the indices (C,) of the conditions present.

    ``data`` is (N volumes, V voxels); ``conditions`` names the conditions in the order of the
    model RDMs; conditions without a trial in this run are left out.
    """
    present = np.array([i for i, name in enumerate(conditions) if (events.trial_type == name).any()], dtype=np.int64)
    design = lsa_design(
        data.shape[0], tr, events, conditions, confounds, confound_names, cfg.hrf_model, cfg.high_pass, cfg.slice_time_ref
    )
    if cfg.method == "lsa":
        return fit(design.matrix, data, present, cfg), present
    out = np.empty((len(present), data.shape[1]))
    for row, k in enumerate(present):
        x = lss_design(design, int(k))
        out[row] = fit(x, data, np.array([0]), cfg)[0]
    return out, present


def lss_design(design: Design, condition: int) -> np.ndarray:
    """LSS design for one condition: [its regressor, sum of all other event regressors, nuisance columns]."""
    events = design.matrix[:, : design.n_events]
    others = np.delete(events, condition, axis=1).sum(1)
    return np.column_stack([events[:, condition], others, design.matrix[:, design.n_events :]])
