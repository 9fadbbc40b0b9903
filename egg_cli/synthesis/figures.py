"""Pictures of a synthesis run: one grid per method (problems x seeds, then the top natural images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egg_cli.io import save_figure
from egg_cli.synthesis.results import GENERATING, SynthesisResult

MAX_ROWS = 32


def _display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) gray or (H, W, 3) colour for imshow."""
    return image[0] if image.shape[0] == 1 else np.moveaxis(image[:3], 0, -1)


def synthesis_grid(result: SynthesisResult, path: str | Path, max_rows: int = MAX_ROWS) -> None:
    """Save a PNG grid: a row per problem (the first ``max_rows``), a column per seed with its
    generating score, then the dataset's top natural images at the same contrast.

    All panels share one gray scale (the images have the same contrast, so brightness compares).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = min(result.n_problems, max_rows)
    seeds = len(result.seeds)
    natural = result.natural
    k_nat = 0 if natural is None else natural["images"].shape[1]
    cols = seeds + k_nat
    shown = [result.images[:rows]] + ([natural["images"][:rows]] if k_nat else [])
    limit = float(np.percentile(np.abs(np.concatenate([s.reshape(-1) for s in shown])), 99.5)) or 1.0
    colour = result.images.shape[2] == 3
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False, layout="constrained")
    scores = result.scores[GENERATING]
    best = result.best_seed
    for p in range(rows):
        panels = [(result.images[p, s], f"{scores[p, s]:.3g}" + (" *" if s == best[p] else "")) for s in range(seeds)]
        if k_nat:
            panels += [(natural["images"][p, k], f"nat {natural['score'][p, k]:.3g}") for k in range(k_nat)]
        for c, (image, title) in enumerate(panels):
            ax = axes[p, c]
            img = _display(image)
            if colour:
                ax.imshow(np.clip(0.5 + img / (2 * limit), 0, 1))
            else:
                ax.imshow(img, cmap="gray", vmin=-limit, vmax=limit)
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[p, 0].set_ylabel(result.labels[p], fontsize=7)
    more = f" (first {rows} of {result.n_problems})" if rows < result.n_problems else ""
    fig.suptitle(f"{result.method} / {result.objective}: seeds (score, * best) then top natural images{more}", fontsize=8)
    save_figure(fig, path)
