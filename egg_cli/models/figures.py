"""Figures of a training run: learning curves and per-neuron test correlation against the oracle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egg_cli.io import save_figure


def plot_training_curves(history: Sequence[dict], path: str | Path, best_epoch: int | None = None) -> None:
    """Train Poisson loss, validation correlation and learning rate per epoch, as PNG."""
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    axes[0].plot(epochs, [h["train_poisson_loss"] for h in history], marker=".")
    axes[0].set(xlabel="epoch", ylabel="Poisson loss per image", title="train loss")
    axes[1].plot(epochs, [h["validation_correlation"] for h in history], marker=".", color="C1")
    axes[1].set(xlabel="epoch", ylabel="mean correlation", title="validation correlation")
    axes[2].semilogy(epochs, [h["lr"] for h in history], marker=".", color="C2")
    axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    if best_epoch:
        for ax in axes[:2]:
            ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"best epoch {best_epoch}")
        axes[1].legend(frameon=False)
    fig.tight_layout()
    save_figure(fig, path)


def plot_oracle_scatter(correlation: np.ndarray, oracle: np.ndarray, path: str | Path) -> None:
    """Per-neuron test correlation against the oracle correlation, with the identity line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(oracle, correlation, s=10, alpha=0.7)
    finite = np.isfinite(oracle)
    hi = float(max(np.nanmax(oracle[finite]) if finite.any() else 1.0, np.nanmax(correlation), 0.1))
    ax.plot([0, hi], [0, hi], color="gray", lw=1)
    ratio = np.nanmean(correlation) / np.nanmean(oracle) if finite.any() else np.nan
    ax.set(
        xlabel="oracle correlation",
        ylabel="model test correlation",
        title=f"test tier: {ratio:.2f} of oracle" if np.isfinite(ratio) else "test tier",
    )
    fig.tight_layout()
    save_figure(fig, path)
