"""Best-so-far curves of a gradient-free search: one CSV row per element and generation, one PNG.

:class:`CurveWriter` is the search's generation callback: it rewrites ``best_so_far.csv`` after
every generation with the curves of all chunks so far, and the figure at the end of a chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


#: the curves of a search, (elements, generations) each, in the column order of :func:`write_curves`
CURVES = ("best_so_far", "generation_mean", "generation_max", "evaluations")


def _stack_rows(parts: list[np.ndarray]) -> np.ndarray:
    """Chunks of (elements, generations) stacked by element; shorter chunks padded with NaN."""
    width = max(p.shape[1] for p in parts)
    if any(p.shape[1] != width for p in parts):
        parts = [np.pad(p.astype(np.float64), ((0, 0), (0, width - p.shape[1])), constant_values=np.nan) for p in parts]
    return np.concatenate(parts)


class CurveWriter:
    """Curves of every chunk of one run, written to ``folder`` as the search goes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._done: dict[str, list[np.ndarray]] = {name: [] for name in CURVES}
        self._labels: list[str] = []
        self._seeds: list[int] = []

    def _write(self, labels: list[str], seeds: list[int], current: dict[str, np.ndarray] | None, figure: bool) -> None:
        parts = {name: self._done[name] + ([current[name]] if current is not None else []) for name in CURVES}
        write_curves(self.folder, labels, seeds, *(_stack_rows(parts[name]) for name in CURVES), figure=figure)

    def on_generation(self, labels: Sequence[str], seeds: Sequence[int], last: int) -> Any:
        """The callback ``(generations done, search state)`` of a chunk's search (figure at ``last``)."""
        all_labels, all_seeds = self._labels + list(labels), self._seeds + [int(s) for s in seeds]

        def write(done: int, state: Any) -> None:
            current = {name: np.stack(getattr(state, name), axis=1) for name in CURVES}
            self._write(all_labels, all_seeds, current, figure=done == last)

        return write

    def chunk_done(self, labels: Sequence[str], seeds: Sequence[int], outcome: Any) -> None:
        """Keep a finished chunk's curves and write all of them with the figure."""
        for name in CURVES:
            self._done[name].append(getattr(outcome, name))
        self._labels += list(labels)
        self._seeds += [int(s) for s in seeds]
        self._write(self._labels, self._seeds, None, figure=True)


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
