"""``egg rsm simulate``: simulated fMRI whose regions each carry one layer's representation.

``format=bids`` (default): BOLD time series of several subjects as fMRIPrep-style derivatives;
``format=patterns``: one volume per image presentation of a single subject (NIfTI + events.csv).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from egg_cli.cli.app import command, run_dir
from egg_cli.errors import EggError, require
from egg_cli.io import write_csv, write_json
from egg_cli.rsm import figures
from egg_cli.rsm.bids import write_bold_run, write_dataset_description
from egg_cli.rsm.bold_simulation import BoldSimulationConfig, BoldStudy
from egg_cli.rsm.features import extract, seeded_feature_model
from egg_cli.rsm.fmri_simulation import FmriSimulationConfig, simulate_fmri
from egg_cli.rsm.images_io import natural_images, read_images_h5, write_images_h5
from egg_cli.rsm.layer_rdms import compute_layer_rdms, default_condition_names, write_layer_rdms
from egg_cli.rsm.volume import save_volume
from egg_cli.runtime import plain

log = logging.getLogger("egg.rsm")
FORMATS = ("bids", "patterns")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Write the simulated data, truth volumes (+ labels), images, layer RDMs, figure and summary."""
    if str(cfg.images) == "natural":
        require(
            int(cfg.image_size) >= 32, f"image_size={cfg.image_size}: expected at least 32 pixels (the network downsamples by 32)"
        )
    out = run_dir()
    if str(cfg.format) not in FORMATS:
        raise EggError(f"format={cfg.format!r} is not supported; expected one of {FORMATS}")
    model, model_cfg, seed = seeded_feature_model(cfg)
    if str(cfg.images) == "natural":
        images = natural_images(cfg.natural_source, int(cfg.n_images), int(cfg.image_size), seed)
    else:
        images = torch.from_numpy(read_images_h5(cfg.images))
    planted = list(cfg.planted_layers or model.layers)
    feats = {k: v.numpy() for k, v in extract(model, images).items()}
    volume = plain(cfg.volume)
    volume_cfg = FmriSimulationConfig(**{**volume, "shape": tuple(volume["shape"]), "seed": seed})
    rdms = compute_layer_rdms(model, images, str(cfg.images), model_cfg["arch"])
    rdms.conditions = default_condition_names(len(images))
    if str(cfg.format) == "bids":
        summary = _write_bids(cfg, out, feats, planted, rdms.conditions, volume_cfg)
    else:
        summary = _write_patterns(out, feats, planted, volume_cfg)
    write_images_h5(out / "images.h5", {"images": images.numpy()}, {"source": str(cfg.images)})
    write_layer_rdms(out / "layer_rdms.h5", rdms)
    summary = {"images": str(cfg.images), "n_conditions": len(images), **summary, "status": "finished"}
    write_json(out / "summary.json", summary)
    return summary


def _write_truth(folder: Path, name: str, truth: np.ndarray, layers: list[str], affine: np.ndarray) -> None:
    everywhere = np.ones(truth.shape, dtype=bool)
    save_volume(folder / name, truth[everywhere], everywhere, affine, dtype=np.int16)
    write_json(folder / "truth_labels.json", {str(i + 1): layer for i, layer in enumerate(layers)})


def _write_bids(cfg: DictConfig, out: Path, feats, planted: list[str], names: list[str], volume_cfg) -> dict[str, Any]:
    """fMRIPrep-style derivatives under ``out/bids``; truth volumes (template and per subject) under ``out/truth``."""
    bold_cfg = BoldSimulationConfig(**plain(cfg.bold))
    study = BoldStudy(feats, planted, names, volume_cfg, bold_cfg)
    root, truth_dir = out / "bids", out / "truth"
    task, space = str(cfg.task), str(cfg.space)
    write_dataset_description(root, "egg simulated RSM fMRI")
    _write_truth(truth_dir, "truth.nii.gz", study.truth, study.layers, study.affine)
    write_csv(out / "regions.csv", study.regions)
    subjects = []
    for index in tqdm(range(bold_cfg.n_subjects), desc="subjects", disable=not cfg.get("progress", True)):
        subject = study.subject(index)
        for r, run in enumerate(subject.runs):
            write_bold_run(
                root,
                subject.label,
                task,
                r + 1,
                space,
                run.data,
                study.mask,
                study.affine,
                bold_cfg.tr,
                run.events,
                run.confounds,
            )
        _write_truth(truth_dir, f"sub-{subject.label}_truth.nii.gz", subject.truth, study.layers, study.affine)
        write_csv(truth_dir / f"sub-{subject.label}_regions.csv", subject.regions)
        subjects.append({"subject": subject.label, "n_volumes": [len(r.data) for r in subject.runs]})
    figures.label_mosaic(
        study.truth.astype(np.int64), study.layers, out / "truth.png", title="planted layer per region (template)"
    )
    log.info("%d subjects x %d runs -> %s (task=%s, space=%s)", len(subjects), volume_cfg.n_runs, root, task, space)
    next_step = f"egg rsm map bids.root={root} rdms={out / 'layer_rdms.h5'} truth={truth_dir}"
    log.info("map it with: %s", next_step)
    return {
        "format": "bids",
        "bids_root": str(root),
        "task": task,
        "space": space,
        "tr": bold_cfg.tr,
        "subjects": subjects,
        "n_runs": volume_cfg.n_runs,
        "shape": list(study.shape),
        "voxel_size_mm": volume_cfg.voxel_size,
        "n_mask_voxels": int(study.mask.sum()),
        "regions": study.regions,
        "map_command": next_step,
    }


def _write_patterns(out: Path, feats, planted: list[str], volume_cfg: FmriSimulationConfig) -> dict[str, Any]:
    """bold.nii.gz (one volume per presentation), events.csv, mask and truth of one subject."""
    sim = simulate_fmri(feats, planted, volume_cfg)
    everywhere = np.ones(sim.mask.shape, dtype=bool)
    save_volume(out / "bold.nii.gz", sim.bold.reshape(-1, sim.bold.shape[-1]), everywhere, sim.affine)
    save_volume(out / "mask.nii.gz", sim.mask[everywhere].astype(np.uint8), everywhere, sim.affine, dtype=np.uint8)
    _write_truth(out, "truth.nii.gz", sim.truth, sim.layers, sim.affine)
    write_csv(
        out / "events.csv", [{"volume": t, "condition": c, "run": r} for t, (c, r) in enumerate(zip(sim.conditions, sim.runs))]
    )
    write_csv(out / "regions.csv", sim.regions)
    figures.label_mosaic(sim.truth.astype(np.int64), sim.layers, out / "truth.png", title="planted layer per region")
    log.info(
        "%d regions planted in %d mask voxels; %d volumes -> %s", len(sim.regions), int(sim.mask.sum()), sim.bold.shape[-1], out
    )
    return {
        "format": "patterns",
        "n_runs": volume_cfg.n_runs,
        "shape": list(sim.mask.shape),
        "voxel_size_mm": volume_cfg.voxel_size,
        "n_mask_voxels": int(sim.mask.sum()),
        "n_volumes": int(sim.bold.shape[-1]),
        "regions": sim.regions,
    }


main = command("rsm_simulate")(run)
