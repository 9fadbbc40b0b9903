"""``egg simulate``: write an in-silico dataset with its ground-truth neurons into the run folder."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from egg_cli.cli.app import command, final_dir, run_dir
from egg_cli.errors import EggError
from egg_cli.io import save_figure, write_csv, write_json
from egg_cli.runtime import resolve_device, seed_everything
from egg_cli.simulation.report import neuron_rows, optimum_figure, overview_figure
from egg_cli.simulation.simulate import SimulationConfig, measure_optimum, simulate, write_simulation

log = logging.getLogger("egg.simulate")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Simulate, then write dataset.h5, neurons.csv, overview.png and summary.json."""
    start = time.perf_counter()
    out = run_dir()
    seed = int(cfg.seed)
    seed_everything(seed)
    device = resolve_device(str(cfg.device))
    output = str(cfg.get("output", "dataset.h5"))
    if "/" in output or not output.endswith((".h5", ".hdf5")):
        raise EggError(f"output={output!r} is not allowed; expected a file name ending in .h5 (written into the run folder)")
    if int(cfg.report.example_neurons) < 0:
        raise EggError(f"report.example_neurons={cfg.report.example_neurons}: expected 0 or a positive integer")
    config = SimulationConfig.from_dict(OmegaConf.to_container(cfg.simulation, resolve=True), prefix="simulation")
    progress = bool(cfg.get("progress", True))
    sim = simulate(config, seed=seed, device=device, progress=progress)
    simulated = time.perf_counter()
    optimum = cfg.report.optimum
    likeness = (
        measure_optimum(sim, float(optimum.rms_contrast), int(optimum.neurons), steps=int(optimum.steps), progress=progress)
        if optimum.enabled
        else None
    )
    path = out / output
    write_simulation(sim, path, attrs={"seed": seed, "config": OmegaConf.to_yaml(cfg.simulation, resolve=True)})
    write_csv(out / "neurons.csv", neuron_rows(sim))
    save_figure(overview_figure(sim, int(cfg.report.example_neurons), seed=seed), out / "overview.png")
    if likeness is not None:
        save_figure(optimum_figure(sim), out / "optimum.png")
    counts, _ = np.histogram(sim.neurons["pref_orientation"], bins=8, range=(0, 180))
    summary = {
        "dataset": str(final_dir() / output),
        "neurons": sim.population.n_neurons,
        "image_shape": list(sim.images.shape[1:]),
        "images": {tier: int(np.sum(sim.tiers == tier)) for tier in ("train", "validation", "test")},
        "trials": int(len(sim.trial_image)),
        "test_repeats": config.test_repeats,
        **sim.headline(),
        "grating_likeness": likeness.summary() if likeness is not None else None,
        "pref_orientation_histogram": {"bin_edges_deg": np.linspace(0, 180, 9).tolist(), "counts": counts.tolist()},
        "seconds": {"simulate": round(simulated - start, 2), "total": round(time.perf_counter() - start, 2)},
        "status": "finished",
    }
    write_json(out / "summary.json", summary)
    log.info(
        "%d neurons: mean rate %.2f spikes/trial, median split-half reliability %.2f, median oracle correlation %.2f -> %s",
        sim.population.n_neurons,
        summary["mean_rate"],
        summary["median_split_half_reliability"],
        summary["median_oracle_correlation"],
        final_dir() / output,
    )
    return summary


main = command("simulate")(run)
