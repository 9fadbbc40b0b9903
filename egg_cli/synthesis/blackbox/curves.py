"""Best-so-far curves of a gradient-free search: one CSV row per element and generation, one PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egg_cli.io import save_figure, write_csv


def _value(x: float) -> float | str:
    return float(x) if math.isfinite(x) else ""


def curve_rows(
    labels: Sequence[str],
    seeds: Sequence[int],
    best_so_far: np.ndarray,
    generation_mean: np.ndarray,
    generation_max: np.ndarray,
    evaluations: np.ndarray,
) -> list[dict]:
    """Rows ``element, label, seed, generation, evaluations, best_so_far, generation_mean, generation_max``."""
    rows = []
    for b, (label, seed) in enumerate(zip(labels, seeds)):
        for g in range(best_so_far.shape[1]):
            rows.append(
                {
                    "element": b,
                    "label": label,
                    "seed": int(seed),
                    "generation": g + 1,
                    "evaluations": int(evaluations[b, g]),
                    "best_so_far": _value(best_so_far[b, g]),
                    "generation_mean": _value(generation_mean[b, g]),
                    "generation_max": _value(generation_max[b, g]),
                }
            )
    return rows


def write_curves(
    folder: Path,
    labels: Sequence[str],
    seeds: Sequence[int],
    best_so_far: np.ndarray,
    generation_mean: np.ndarray,
    generation_max: np.ndarray,
    evaluations: np.ndarray,
    stem: str = "best_so_far",
    figure: bool = True,
) -> None:
    """``<stem>.csv`` (and ``<stem>.png`` when ``figure``) in ``folder``, atomically."""
    write_csv(folder / f"{stem}.csv", curve_rows(labels, seeds, best_so_far, generation_mean, generation_max, evaluations))
    if figure:
        plot_curves(folder / f"{stem}.png", labels, seeds, best_so_far, evaluations)


def plot_curves(
    path: Path, labels: Sequence[str], seeds: Sequence[int], best_so_far: np.ndarray, evaluations: np.ndarray
) -> None:
    """Best-so-far score against image evaluations, one line per element."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    show_seed = len(set(int(s) for s in seeds)) > 1
    for b, (label, seed) in enumerate(zip(labels, seeds)):
        y = np.where(np.isfinite(best_so_far[b]), best_so_far[b], np.nan)
        ax.plot(evaluations[b], y, lw=1.2, label=f"{label} seed {seed}" if show_seed else label)
    ax.set_xlabel("image evaluations")
    ax.set_ylabel("best score so far")
    ax.grid(alpha=0.3)
    if len(labels) <= 16:
        ax.legend(fontsize=7, ncol=2, frameon=False)
    save_figure(fig, path)
