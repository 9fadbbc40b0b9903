"""Figures of RSM synthesis and searchlight maps (matplotlib, saved atomically as PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egg_cli.io import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def correlation_heatmaps(
    matrices: Sequence[np.ndarray],
    titles: Sequence[str],
    labels: Sequence[str],
    path: str | Path,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "RdBu_r",
) -> None:
    """Side-by-side annotated heatmaps of (L, L) matrices."""
    plt = _plt()
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n + 1.2, 4.4), squeeze=False, constrained_layout=True)
    for index, (ax, matrix, title) in enumerate(zip(axes[0], matrices, titles)):
        im = ax.imshow(matrix, vmin=vmin, vmax=vmax, cmap=cmap)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels if index == 0 else [], fontsize=7)
        ax.set_title(title, fontsize=9)
        if len(labels) <= 12:
            for i in range(len(labels)):
                for j in range(len(labels)):
                    if np.isfinite(matrix[i, j]):
                        ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=5.5)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    save_figure(fig, path)


def rsm_grid(rsm_sets: Sequence[np.ndarray], row_titles: Sequence[str], layers: Sequence[str], path: str | Path) -> None:
    """One row per image set, one RSM (K, K) per layer."""
    plt = _plt()
    rows, cols = len(rsm_sets), len(layers)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False)
    for r, (rsms, title) in enumerate(zip(rsm_sets, row_titles)):
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            off = rsms[c][~np.eye(len(rsms[c]), dtype=bool)]
            ax.imshow(rsms[c], cmap="viridis", vmin=off.min(), vmax=off.max())
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(layer, fontsize=7)
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
    save_figure(fig, path)


def image_grid(images: np.ndarray, path: str | Path, columns: int = 8) -> None:
    """(K, H, W, 3) uint8 images in a grid."""
    plt = _plt()
    k = len(images)
    rows = int(np.ceil(k / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.3 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            ax.imshow(images[i])
            ax.set_title(str(i), fontsize=6)
    save_figure(fig, path)


def loss_curve(trace: Sequence[dict], path: str | Path) -> None:
    """Objective terms of the untransformed images over steps."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = [row["step"] for row in trace]
    for key in ("loss", "decorrelation", "contrast_penalty"):
        ax.plot(steps, [row[key] for row in trace], label=key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def label_mosaic(
    labels: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    truth: np.ndarray | None = None,
    n_slices: int = 8,
    title: str = "",
) -> None:
    """Axial slices of an integer label volume (0 = none), with ground-truth outlines if given."""
    plt = _plt()
    from matplotlib.colors import ListedColormap

    z_any = np.flatnonzero(labels.any((0, 1)) | (truth.any((0, 1)) if truth is not None else False))
    if not len(z_any):
        z_any = np.arange(labels.shape[2])
    zs = np.unique(np.linspace(z_any.min(), z_any.max(), min(n_slices, len(z_any))).round().astype(int))
    base = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    cmap = ListedColormap([(1, 1, 1, 1)] + [base(i % base.N) for i in range(len(names))])
    fig, axes = plt.subplots(1, len(zs), figsize=(1.9 * len(zs), 2.4), squeeze=False)
    for ax, z in zip(axes[0], zs):
        ax.imshow(labels[:, :, z].T, origin="lower", cmap=cmap, vmin=0, vmax=len(names), interpolation="nearest")
        if truth is not None and truth[:, :, z].any():
            ax.contour(truth[:, :, z].T, levels=np.arange(0.5, len(names) + 1), colors="k", linewidths=0.6)
        ax.set_title(f"z={z}", fontsize=7)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i + 1)) for i in range(len(names))]
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5), fontsize=6, frameon=False)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def null_histograms(null_max: np.ndarray, observed_max: np.ndarray, layers: Sequence[str], path: str | Path) -> None:
    """Max-statistic null distribution and the observed maximum per layer."""
    plt = _plt()
    cols = min(len(layers), 5)
    rows = int(np.ceil(len(layers) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(layers):
            ax.axis("off")
            continue
        ax.hist(null_max[:, i], bins=30, color="0.6")
        ax.axvline(observed_max[i], color="r")
        ax.set_title(layers[i], fontsize=7)
        ax.tick_params(labelsize=6)
    save_figure(fig, path)
