"""``egg rsm simulate``: simulated fMRI (NIfTI) whose regions each carry one layer's representation."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from egg_cli.cli.app import command, run_dir
from egg_cli.io import write_csv, write_json
from egg_cli.rsa import figures
from egg_cli.rsa.features import extract, seeded_feature_model
from egg_cli.rsa.fmri_simulation import FmriSimulationConfig, simulate_fmri
from egg_cli.rsa.images_io import natural_images, read_images_h5, write_images_h5
from egg_cli.rsa.layer_rdms import compute_layer_rdms, write_layer_rdms
from egg_cli.rsa.volume import save_volume

log = logging.getLogger("egg.rsm")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Write bold.nii.gz, events.csv, mask, truth (+ labels), layer RDMs of the image set, figure, summary."""
    out = run_dir()
    model, model_cfg, seed = seeded_feature_model(cfg)
    if str(cfg.images) == "natural":
        images = natural_images(cfg.natural_source, int(cfg.n_images), int(cfg.image_size), seed)
    else:
        images = torch.from_numpy(read_images_h5(cfg.images))
    planted = list(cfg.planted_layers or model.layers)
    feats = {k: v.numpy() for k, v in extract(model, images).items()}
    volume = OmegaConf.to_container(cfg.volume, resolve=True)
    sim = simulate_fmri(feats, planted, FmriSimulationConfig(**{**volume, "shape": tuple(volume["shape"]), "seed": seed}))
    everywhere = np.ones(sim.mask.shape, dtype=bool)
    save_volume(out / "bold.nii.gz", sim.bold.reshape(-1, sim.bold.shape[-1]), everywhere, sim.affine)
    save_volume(out / "mask.nii.gz", sim.mask[everywhere].astype(np.uint8), everywhere, sim.affine, dtype=np.uint8)
    save_volume(out / "truth.nii.gz", sim.truth[everywhere], everywhere, sim.affine, dtype=np.int16)
    write_json(out / "truth_labels.json", {str(i + 1): name for i, name in enumerate(sim.layers)})
    write_csv(
        out / "events.csv", [{"volume": t, "condition": c, "run": r} for t, (c, r) in enumerate(zip(sim.conditions, sim.runs))]
    )
    write_csv(out / "regions.csv", sim.regions)
    write_images_h5(out / "images.h5", {"images": images.numpy()}, {"source": str(cfg.images)})
    write_layer_rdms(out / "layer_rdms.h5", compute_layer_rdms(model, images, str(cfg.images), model_cfg["arch"]))
    figures.label_mosaic(sim.truth.astype(np.int64), sim.layers, out / "truth.png", title="planted layer per region")
    summary = {
        "images": str(cfg.images),
        "n_conditions": len(images),
        "n_runs": int(volume["n_runs"]),
        "shape": list(sim.mask.shape),
        "voxel_size_mm": float(volume["voxel_size"]),
        "n_mask_voxels": int(sim.mask.sum()),
        "n_volumes": int(sim.bold.shape[-1]),
        "regions": sim.regions,
        "status": "finished",
    }
    write_json(out / "summary.json", summary)
    log.info(
        "%d regions planted in %d mask voxels; %d volumes -> %s",
        len(sim.regions),
        summary["n_mask_voxels"],
        summary["n_volumes"],
        out / "bold.nii.gz",
    )
    return summary


main = command("rsm_simulate")(run)
