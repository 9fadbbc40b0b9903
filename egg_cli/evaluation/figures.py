"""Figures of an evaluation: activation heatmap, method-vs-method scatter plots, image grids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from egg_cli.evaluation.generalization import Evaluation, SynthesisRun, paired_values, select_per_neuron


def heatmap_figure(evaluation: Evaluation, rows: Sequence[dict]):
    """One panel per generator: methods x evaluators, colour and text = mean normalized activation."""
    import matplotlib.pyplot as plt

    gens, methods, evals = evaluation.generators, evaluation.methods, evaluation.evaluators
    lookup = {(r["generator"], r["method"], r["evaluator"]): r for r in rows}
    values = np.array([[[lookup.get((g, m, e), {}).get("mean", np.nan) for e in evals] for m in methods] for g in gens])
    finite = values[np.isfinite(values)]
    vmax = max(1.0, float(finite.max())) if finite.size else 1.0
    fig, axes = plt.subplots(1, len(gens), figsize=(1.1 * len(evals) * len(gens) + 2.5, 0.55 * len(methods) + 1.8), squeeze=False)
    for ax, g, panel in zip(axes[0], gens, values):
        image = ax.imshow(panel, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        for i, m in enumerate(methods):
            for j, e in enumerate(evals):
                row = lookup.get((g, m, e))
                if row is None:
                    continue
                sem = row["sem"]
                text = f"{row['mean']:.2f}" + (f"\n±{sem:.2f}" if np.isfinite(sem) else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if row["mean"] < 0.6 * vmax else "black")
        ax.set_xticks(range(len(evals)), evals, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.set_title(f"generated on {g}", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label="activation / best natural image", shrink=0.8)
    return fig


def scatter_figure(evaluation: Evaluation, a: str, b: str, comparisons: Sequence[dict]):
    """Per neuron, method ``b`` against method ``a``: rows generators, columns evaluators."""
    import matplotlib.pyplot as plt

    gens, evals = evaluation.generators, evaluation.evaluators
    lookup = {(r["generator"], r["evaluator"]): r for r in comparisons if r["method_a"] == a and r["method_b"] == b}
    fig, axes = plt.subplots(len(gens), len(evals), figsize=(2.6 * len(evals), 2.6 * len(gens)), squeeze=False)
    for i, g in enumerate(gens):
        for j, e in enumerate(evals):
            ax = axes[i, j]
            have = (g, a, e) in evaluation.per_neuron and (g, b, e) in evaluation.per_neuron
            xa, yb = paired_values(evaluation, g, e, a, b) if have else (np.empty(0), np.empty(0))
            if not len(xa):
                ax.set_axis_off()
                continue
            top = 1.05 * max(1.0, float(np.max(xa)), float(np.max(yb)))
            low = min(0.0, float(np.min(xa)), float(np.min(yb)))
            ax.plot([low, top], [low, top], color="0.6", lw=0.8, ls="--")
            ax.scatter(xa, yb, s=12, alpha=0.8)
            comp = lookup.get((g, e))
            title = e
            if comp is not None and np.isfinite(comp["slope"]):
                ax.plot([0, top], [0, comp["slope"] * top], color="C3", lw=1.2)
                title += (
                    f"\nslope {comp['slope']:.2f}, p={comp['p_value']:.2g}"
                    if np.isfinite(comp["p_value"])
                    else f"\nslope {comp['slope']:.2f}"
                )
            ax.set_xlim(low, top)
            ax.set_ylim(low, top)
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(gens) - 1:
                ax.set_xlabel(f"{a} (norm. activation)", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"gen. {g}\n{b}", fontsize=8)
    fig.tight_layout()
    return fig


def image_grid_figure(
    runs_by_method: dict[str, list[SynthesisRun]],
    max_neurons: int = 8,
    title: str = "",
    reference: tuple[str, dict[str, np.ndarray]] | None = None,
):
    """Best-seed image per neuron (columns) for each method (rows), in raw pixel units, each image scaled alone;
    ``reference`` (label, neuron id -> image) adds a first row, e.g. the ground truth's own optimum."""
    import matplotlib.pyplot as plt

    chosen: dict[str, dict[str, np.ndarray]] = {}
    if reference is not None:
        chosen[reference[0]] = reference[1]
    for method, members in runs_by_method.items():
        ids = np.concatenate([r.neuron_ids for r in members])
        seeds = np.concatenate([r.seeds for r in members])
        scores = np.concatenate([r.scores for r in members])
        images = np.concatenate([r.images_raw for r in members])
        uid, _, used = select_per_neuron(ids, seeds, scores, scores, "best")
        keys = np.asarray([str(v) for v in ids])
        chosen[method] = {u: images[np.flatnonzero(used & (keys == u))[0]] for u in uid}
    methods = list(chosen)
    shared = [u for u in chosen[methods[-1]] if all(u in c for c in chosen.values())][:max_neurons]
    fig, axes = plt.subplots(
        len(methods), max(1, len(shared)), figsize=(1.2 * max(1, len(shared)) + 0.6, 1.25 * len(methods) + 0.4), squeeze=False
    )
    for i, method in enumerate(methods):
        for j in range(axes.shape[1]):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(shared):
                ax.set_axis_off()
                continue
            img = chosen[method][shared[j]]
            img = img.transpose(1, 2, 0)
            img = (img - img.min()) / max(float(img.max() - img.min()), 1e-8)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            if i == 0:
                ax.set_title(f"neuron {shared[j]}", fontsize=7)
            if j == 0:
                ax.set_ylabel(method, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
