"""``egg rsm synth``: images whose layer RSMs are decorrelated, with before/after numbers and figures."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from egg_cli.cli.app import command, run_dir
from egg_cli.errors import require
from egg_cli.io import write_csv, write_json
from egg_cli.rsm import figures
from egg_cli.rsm.features import seeded_feature_model
from egg_cli.rsm.images_io import natural_images, write_images_h5, write_pngs
from egg_cli.rsm.layer_rdms import compute_layer_rdms, write_layer_rdms
from egg_cli.rsm.matrices import correlation_summary, rdm_contrast
from egg_cli.rsm.parametrization import make_parametrization
from egg_cli.rsm.synthesis import RsmObjective, images_to_uint8, synthesize
from egg_cli.rsm.transforms import Jitter

log = logging.getLogger("egg.rsm")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Synthesize, then write images (PNG + HDF5), layer RSMs, cross-layer correlations, figures, summary."""
    require(int(cfg.n_images) >= 3, f"n_images={cfg.n_images}: expected at least 3 images (an RSM compares image pairs)")
    require(
        int(cfg.image_size) >= 32, f"image_size={cfg.image_size}: expected at least 32 pixels (the network downsamples by 32)"
    )
    for key in ("steps", "eval_every"):
        require(int(cfg[key]) >= 1, f"{key}={cfg[key]}: expected a positive integer")
    require(float(cfg.lr) > 0, f"lr={cfg.lr}: expected a positive learning rate")
    out = run_dir()
    model, model_cfg, seed = seeded_feature_model(cfg)
    natural = natural_images(cfg.natural.source, int(cfg.n_images), int(cfg.image_size), int(cfg.natural.seed))
    parametrization = make_parametrization(
        cfg.parametrization,
        int(cfg.n_images),
        int(cfg.image_size),
        decorrelate=bool(cfg.decorrelate_colour),
        decay=float(cfg.spectrum_decay),
        init_std=float(cfg.init_std),
        seed=seed,
    )
    objective = RsmObjective(
        float(cfg.objective.contrast_weight), float(cfg.objective.contrast_target), float(cfg.objective.pair_power)
    )
    result = synthesize(
        model,
        parametrization,
        objective,
        steps=int(cfg.steps),
        lr=float(cfg.lr),
        jitter=Jitter(**cfg.jitter),
        eval_every=int(cfg.eval_every),
        seed=seed,
        progress=bool(cfg.progress),
    )
    sets = {"natural": natural, "synthesized": result.images}
    rdms = {
        name: compute_layer_rdms(model, images, image_set=name, model_name=model_cfg["arch"]) for name, images in sets.items()
    }
    corr = {name: np.corrcoef(r.vectors) for name, r in rdms.items()}

    write_images_h5(
        out / "images.h5",
        {"images": result.images.numpy(), "natural_images": natural.numpy()},
        {"seed": seed, "parametrization": cfg.parametrization, "note": "RGB in [0, 1]; 'images' are the synthesized set"},
    )
    write_pngs(out / "images", images_to_uint8(result.images), "synth")
    figures.image_grid(images_to_uint8(result.images), out / "images.png")
    figures.image_grid(images_to_uint8(natural), out / "natural_images.png")
    write_layer_rdms(out / "layer_rdms.h5", rdms["synthesized"])
    write_layer_rdms(out / "natural_layer_rdms.h5", rdms["natural"])
    layers = model.layers
    rows = [
        {"image_set": name, "layer_a": a, "layer_b": b, "r": corr[name][i, j]}
        for name in sets
        for i, a in enumerate(layers)
        for j, b in enumerate(layers)
        if i < j
    ]
    write_csv(out / "layer_correlation.csv", rows)
    write_csv(out / "trace.csv", result.trace)
    figures.correlation_heatmaps(
        [corr["natural"], corr["synthesized"]],
        ["natural images: layer RSM correlation", "synthesized: layer RSM correlation"],
        layers,
        out / "layer_correlation.png",
    )
    figures.rsm_grid(
        [1 - rdms["natural"].rdms, 1 - rdms["synthesized"].rdms], ["natural", "synthesized"], layers, out / "rsms.png"
    )
    figures.loss_curve(result.trace, out / "loss.png")
    contrast = {name: rdm_contrast(torch.from_numpy(r.vectors)).numpy() for name, r in rdms.items()}
    summary = {
        "n_images": int(cfg.n_images),
        "image_size": int(cfg.image_size),
        "layers": layers,
        "objective": f"power mean (p={objective.pair_power:g}) of squared Pearson correlations of layer RSM upper triangles + RDM contrast hinge",
        "natural": correlation_summary(corr["natural"]),
        "synthesized": correlation_summary(corr["synthesized"]),
        "rdm_contrast": {name: [round(float(c), 4) for c in values] for name, values in contrast.items()},
        "best_step": result.best_step,
        "best_loss": result.best_loss,
        "steps": int(cfg.steps),
        "seconds": round(result.seconds, 2),
        "status": "finished",
    }
    write_json(out / "summary.json", summary)
    log.info(
        "cross-layer RSM correlation: natural mean r^2 %.3f (mean |r| %.3f) -> synthesized %.3f (%.3f)",
        summary["natural"]["mean_squared"],
        summary["natural"]["mean_abs"],
        summary["synthesized"]["mean_squared"],
        summary["synthesized"]["mean_abs"],
    )
    return summary


main = command("rsm_synth")(run)
