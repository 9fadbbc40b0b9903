"""Pictures and tables of a simulated population: receptive fields, tuning, reliability."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from egg_cli.simulation.neurons import CELL_TYPES, ENERGY, V4Population, gaussian_maps
from egg_cli.simulation.simulate import Simulation


def subunit_sketch(population: V4Population, neuron: int) -> np.ndarray:
    """An (H, W) picture of a neuron's excitatory subunits: each subunit's carrier grating
    (orientation, wavelength, phase) under its pooling window, weighted by its weight."""
    spec = population.spec()
    size = population.input_shape[2]
    coords = (2 * np.arange(size) + 1) / size - 1
    n_ori = int(spec["orientations"])
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    sketch = np.zeros((size, size))
    members = np.flatnonzero((spec["subunit_neuron"] == neuron) & (spec["subunit_weight"] > 0))
    for s in members:
        channel = int(spec["subunit_channel"][s])
        freq, rest = divmod(channel, len(CELL_TYPES) * n_ori)
        cell, ori = divmod(rest, n_ori)
        angle = ori * math.pi / n_ori
        across = -x * math.sin(angle) + y * math.cos(angle)
        phase = 0.0 if cell in (0, 1, ENERGY) else math.pi / 2
        sign = -1.0 if cell in (1, 3) else 1.0
        cx, cy = spec["subunit_center"][s]
        carrier = sign * np.cos(2 * math.pi * (across - _across(cx, cy, angle, size)) / spec["wavelengths"][freq] - phase)
        window = gaussian_maps(np.array([[cx, cy]]), np.array([spec["subunit_sigma"][s]]), coords)[0]
        sketch += spec["subunit_weight"][s] * carrier * window / window.max()
    return sketch


def _across(cx: float, cy: float, angle: float, size: int) -> float:
    px, py = (cx + 1) * size / 2 - 0.5, (cy + 1) * size / 2 - 0.5
    return -px * math.sin(angle) + py * math.cos(angle)


OPTIMUM_COLUMNS = ("optimum_rate", "best_gabor_rate", "grating_likeness")


def neuron_rows(sim: Simulation) -> list[dict[str, Any]]:
    """One row per neuron for neurons.csv."""
    m = sim.neurons
    rows = []
    for i, nid in enumerate(sim.population.neuron_ids):
        rows.append(
            {
                "neuron_id": nid,
                "kind": m["kind"][i],
                "rf_x": round(float(m["rf_center"][i, 0]), 4),
                "rf_y": round(float(m["rf_center"][i, 1]), 4),
                "rf_sigma": round(float(m["rf_sigma"][i]), 4),
                "n_excitatory": int(m["n_excitatory"][i]),
                "n_inhibitory": int(m["n_inhibitory"][i]),
                "mean_rate": round(float(m["mean_rate"][i]), 4),
                "split_half_reliability": round(float(m["split_half_reliability"][i]), 4),
                "oracle_correlation": round(float(m["oracle_correlation"][i]), 4),
                "ground_truth_correlation": round(float(m["ground_truth_correlation"][i]), 4),
                "pref_orientation": float(m["pref_orientation"][i]),
                "pref_wavelength": float(m["pref_wavelength"][i]),
                "orientation_selectivity": round(float(m["orientation_selectivity"][i]), 4),
                **{key: round(float(m[key][i]), 4) if np.isfinite(m[key][i]) else "" for key in OPTIMUM_COLUMNS if key in m},
            }
        )
    return rows


def overview_figure(sim: Simulation, n_examples: int = 8, seed: int = 0):
    """Example images, receptive-field sketches and tuning curves of example neurons, and the
    population histograms (reliability, oracle correlation, mean rate, preferred orientation)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    rng = np.random.default_rng(seed)
    n_neurons = sim.population.n_neurons
    k = min(n_examples, n_neurons)
    neurons = np.sort(rng.choice(n_neurons, size=k, replace=False))
    train = np.flatnonzero(sim.tiers == "train")
    examples = rng.choice(train, size=min(k, len(train)), replace=False)
    cols = max(k, 4)
    fig = plt.figure(figsize=(1.6 * cols, 8.4))
    grid = fig.add_gridspec(4, cols * 2, hspace=0.55, wspace=0.6)
    size = sim.population.input_shape[2]
    for j, idx in enumerate(examples):
        ax = fig.add_subplot(grid[0, 2 * j : 2 * j + 2])
        ax.imshow(sim.images[idx].mean(0), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"image {idx}", fontsize=7)
        ax.axis("off")
    m = sim.neurons
    for j, n in enumerate(neurons):
        ax = fig.add_subplot(grid[1, 2 * j : 2 * j + 2])
        sketch = subunit_sketch(sim.population, int(n))
        lim = max(np.abs(sketch).max(), 1e-9)
        ax.imshow(sketch, cmap="gray", vmin=-lim, vmax=lim)
        cx, cy = (m["rf_center"][n] + 1) * size / 2 - 0.5
        ax.add_patch(Circle((cx, cy), 2 * m["rf_sigma"][n] * size / 2, fill=False, color="tab:red", lw=0.8))
        ax.set_title(f"#{n} {m['kind'][n]}", fontsize=7)
        ax.axis("off")
        ax = fig.add_subplot(grid[2, 2 * j : 2 * j + 2])
        ax.plot(sim.tuning_orientations, sim.tuning_curves[n], color="k", lw=1)
        ax.set_xticks([0, 90, 180] if sim.tuning_orientations.max() > 90 else [0, 90])
        ax.tick_params(labelsize=6)
        ax.set_title(f"OSI {m['orientation_selectivity'][n]:.2f}", fontsize=7)
        if j == 0:
            ax.set_ylabel("rate (gratings)", fontsize=7)
    hists = [
        ("split_half_reliability", "split-half reliability", None),
        ("oracle_correlation", "oracle correlation", None),
        ("mean_rate", "mean spikes / trial", None),
        ("pref_orientation", "preferred orientation (deg)", (0, 180)),
    ]
    span = cols * 2 // 4
    for j, (key, label, bounds) in enumerate(hists):
        ax = fig.add_subplot(grid[3, j * span : (j + 1) * span])
        values = np.asarray(m[key], dtype=float)
        ax.hist(values[np.isfinite(values)], bins=8 if bounds else 20, range=bounds, color="0.4")
        ax.set_xlabel(label, fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(
        f"{n_neurons} simulated V4-like neurons: mean rate {sim.responses.mean():.2f} spikes/trial, "
        f"median split-half {np.median(m['split_half_reliability']):.2f}, median oracle {np.median(m['oracle_correlation']):.2f}",
        fontsize=9,
    )
    return fig


def optimum_figure(sim: Simulation, max_neurons: int = 24):
    """Each neuron's ground-truth optimum above its best Gabor patch, titled with their rate ratio
    (grating-likeness), neurons ordered from least to most grating-like."""
    import matplotlib.pyplot as plt
    import torch

    from egg_cli.simulation.grating_likeness import gabor_images

    result = sim.optimum
    order = np.argsort(result.ratio, kind="stable")
    shown = order[np.linspace(0, len(order) - 1, min(max_neurons, len(order))).round().astype(int)]
    size = sim.population.input_shape[2]
    gabors = gabor_images(torch.as_tensor(result.gabor_params[shown], dtype=torch.float32), size, result.norm).numpy()
    cols = min(12, len(shown))
    rows = 2 * int(np.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.35 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, n in enumerate(shown):
        r, c = 2 * (j // cols), j % cols
        for ax, image in ((axes[r, c], result.mei[n].mean(0)), (axes[r + 1, c], gabors[j, 0])):
            lim = max(np.abs(image).max(), 1e-9)
            ax.imshow(image, cmap="gray", vmin=-lim, vmax=lim)
        neuron = int(result.neurons[n])
        axes[r, c].set_title(f"#{neuron} {sim.neurons['kind'][neuron]}", fontsize=6)
        axes[r + 1, c].set_title(f"Gabor {result.ratio[n]:.2f}", fontsize=6)
    summary = result.summary()
    fig.suptitle(
        f"ground-truth optimum (top) vs best Gabor (below) at L2 norm {result.norm:.3g}: best Gabor / optimum "
        f"median {summary['median']:.2f}, min {summary['min']:.2f}, {100 * summary['fraction_at_most_0.6']:.0f}% <= 0.6",
        fontsize=8,
    )
    fig.tight_layout()
    return fig
