"""Library entry points behind ``egg rsm map`` and ``egg rsm residual``: NIfTI in, maps and tables out."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from egg_cli.errors import EggError
from egg_cli.io import atomic_path, write_csv, write_json
from egg_cli.rsa import figures
from egg_cli.rsa.compare import Comparison
from egg_cli.rsa.layer_rdms import LayerRdms, compute_layer_rdms, read_layer_rdms
from egg_cli.rsa.mapping import LayerMaps, map_layers, overlap_statistics, region_recovery
from egg_cli.rsa.residual import explained_by_others
from egg_cli.rsa.rsm import correlation_summary
from egg_cli.rsa.searchlight import RdmCalculator, volume_searchlights
from egg_cli.rsa.volume import BrainPatterns, check_same_grid, load_patterns, save_volume

log = logging.getLogger(__name__)


def model_rdms(cfg: Mapping[str, Any], device: torch.device) -> LayerRdms:
    """Layer RDMs from ``cfg.rdms`` (a layer RDM file) or computed from ``cfg.images`` with ``cfg.model``."""
    if cfg.get("rdms"):
        rdms = read_layer_rdms(cfg["rdms"])
    elif cfg.get("images"):
        from egg_cli.rsa.features import feature_model
        from egg_cli.rsa.images_io import read_images_h5

        model = feature_model(cfg["model"], device)
        images = torch.from_numpy(read_images_h5(cfg["images"]))
        rdms = compute_layer_rdms(model, images, image_set=str(cfg["images"]), model_name=str(cfg["model"]["arch"]))
    else:
        raise EggError("neither rdms nor images is set; expected rdms=<layer_rdms.h5> or images=<images.h5>")
    return rdms.select(list(cfg.get("layers") or []))


def read_truth(path: str | Path, patterns: BrainPatterns) -> tuple[np.ndarray, dict[int, str]]:
    """Ground-truth label volume (values at the analysis mask's voxels) and its label -> layer names."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise EggError(f"truth={path} does not exist; expected the truth.nii.gz written by rsm simulate")
    img = nib.load(str(path))
    check_same_grid(patterns.mask.shape, patterns.affine, "data", img.shape, img.affine, f"truth {path}")
    labels_path = path.with_name("truth_labels.json")
    if not labels_path.is_file():
        raise EggError(f"truth={path}: {labels_path.name} is missing next to it; expected the label -> layer table")
    names = {int(k): v for k, v in json.loads(labels_path.read_text()).items()}
    return np.asarray(img.dataobj).astype(np.int64)[patterns.mask], names


def run_mapping(cfg: Mapping[str, Any], out: Path, device: torch.device, residual: bool = False) -> dict:
    """Searchlight RSA of NIfTI patterns against layer RDMs; writes maps, tables and figures to ``out``."""
    start = time.perf_counter()
    if cfg.get("data") in (None, "", "???"):
        raise EggError("data is not set; expected data=<4D NIfTI>, a glob, or a list of 3D files (one per condition)")
    rdms = model_rdms(cfg, device)
    patterns = load_patterns(cfg["data"], cfg.get("mask"), cfg.get("events"))
    if patterns.n_conditions != rdms.n_conditions:
        raise EggError(
            f"data have {patterns.n_conditions} conditions but the layer RDMs have {rdms.n_conditions}; "
            "expected one data condition per image (events.condition indexes the images)"
        )
    unit = cfg.get("radius_unit", "mm")
    if unit not in ("mm", "voxels"):
        raise EggError(f"radius_unit={unit!r} is not supported; expected mm or voxels")
    sl = volume_searchlights(
        patterns.mask,
        float(cfg["radius"]),
        patterns.affine if unit == "mm" else None,
        threshold=float(cfg.get("threshold", 0.5)),
        min_voxels=int(cfg.get("min_voxels", 10)),
    )
    log.info(
        "%d searchlight centres of up to %d voxels, %d conditions, %d layers",
        sl.n_centers,
        len(sl.offsets),
        patterns.n_conditions,
        len(rdms.layers),
    )
    comparison = Comparison(cfg.get("comparison", "spearman"), residual=residual)
    calculator = RdmCalculator(patterns, sl, cfg.get("distance", "correlation"))
    maps = map_layers(
        calculator,
        rdms.vectors,
        rdms.layers,
        comparison,
        n_permutations=int(cfg.get("n_permutations", 1000)),
        seed=int(cfg.get("seed", 0)),
        chunk_size=int(cfg.get("chunk_size", 2000)),
        max_over=cfg.get("max_over", "voxels"),
    )
    seconds = time.perf_counter() - start
    return write_mapping_outputs(cfg, out, patterns, sl, rdms, maps, residual, seconds)


def write_mapping_outputs(
    cfg, out: Path, patterns: BrainPatterns, sl, rdms: LayerRdms, maps: LayerMaps, residual: bool, seconds: float
) -> dict:
    """Per-layer NIfTI maps, best-layer maps, results.h5, overlap/recovery tables, figures and summary.json."""
    alpha = float(cfg.get("alpha", 0.05))
    threshold = cfg.get("overlap_threshold")
    threshold = None if threshold is None else float(threshold)
    centres = sl.center_mask()[patterns.mask]  # analysis voxels that are centres
    centre_mask = sl.center_mask()
    affine = patterns.affine
    maps_dir = out / "maps"
    for i, layer in enumerate(maps.layers):
        save_volume(maps_dir / f"{layer}.nii.gz", np.nan_to_num(maps.stats[:, i]), centre_mask, affine)
        if maps.p_fwer is not None:
            save_volume(
                maps_dir / f"{layer}_pfwer.nii.gz", np.nan_to_num(maps.p_fwer[:, i], nan=1.0), centre_mask, affine, fill=1.0
            )
    best = maps.best_layer + 1
    save_volume(out / "best_layer.nii.gz", best, centre_mask, affine, dtype=np.int16)
    save_volume(out / "searchlight_centres.nii.gz", maps.valid.astype(np.int16), centre_mask, affine, dtype=np.int16)
    significant = None
    if maps.p_fwer is not None or threshold is not None:
        significant = maps.significant(alpha, threshold)
        best_sig = np.where(significant[np.arange(len(best)), np.maximum(best - 1, 0)] & (best > 0), best, 0)
        save_volume(out / "best_layer_significant.nii.gz", best_sig, centre_mask, affine, dtype=np.int16)
    write_json(out / "layer_labels.json", {str(i + 1): name for i, name in enumerate(maps.layers)})

    model_corr = np.corrcoef(rdms.vectors)
    summary: dict[str, Any] = {
        "method": "residual" if residual else "searchlight",
        "n_conditions": patterns.n_conditions,
        "n_voxels": patterns.n_voxels,
        "n_voxels_excluded_nonfinite": patterns.n_excluded,
        "n_centres": sl.n_centers,
        "n_centres_valid": int(maps.valid.sum()),
        "sphere_size": len(sl.offsets),
        "distance": cfg.get("distance", "correlation"),
        "comparison": cfg.get("comparison", "spearman"),
        "n_permutations": int(cfg.get("n_permutations", 0)),
        "alpha": alpha,
        "layers": maps.layers,
        "model_rdm_correlation": correlation_summary(model_corr),
        "max_stat": {l: float(np.nanmax(maps.stats[:, i])) for i, l in enumerate(maps.layers)},
        "best_layer_counts": {l: int((maps.best_layer == i).sum()) for i, l in enumerate(maps.layers)},
        "seconds": seconds,
    }
    if residual:
        shares = explained_by_others(rdms.vectors, cfg.get("comparison", "spearman"))
        summary["explained_by_others"] = {l: float(s) for l, s in zip(maps.layers, shares)}
    layer_rows = [
        {"layer": l, "max_stat": summary["max_stat"][l], "n_best": summary["best_layer_counts"][l]} for l in maps.layers
    ]
    if significant is not None:
        overlap = overlap_statistics(significant, maps.layers)
        for row in layer_rows:
            row["n_significant"] = overlap["n_significant"][row["layer"]]
        write_csv(
            out / "overlap_dice.csv",
            [{"layer": a, **{b: overlap["dice"][i, j] for j, b in enumerate(maps.layers)}} for i, a in enumerate(maps.layers)],
        )
        summary["overlap"] = {k: v for k, v in overlap.items() if k not in ("dice", "jaccard", "layers")}
        figures.correlation_heatmaps(
            [overlap["dice"]],
            ["Dice overlap of significant layer maps"],
            maps.layers,
            out / "overlap.png",
            vmin=0,
            vmax=1,
            cmap="viridis",
        )
    write_csv(out / "layers.csv", layer_rows)
    truth_volume = None
    if cfg.get("truth"):
        truth_at_voxels, names = read_truth(cfg["truth"], patterns)
        rows = region_recovery(maps, truth_at_voxels[centres], names, alpha, threshold)
        write_csv(out / "recovery.csv", rows)
        summary["recovery"] = {
            "n_regions": len(rows),
            "n_recovered": int(sum(r["recovered"] for r in rows)),
            "mean_fraction_best_is_planted": float(np.mean([r["fraction_best_is_planted"] for r in rows]))
            if rows
            else float("nan"),
        }
        if rows and "fraction_significant_planted" in rows[0]:
            summary["recovery"]["mean_fraction_significant_planted"] = float(
                np.mean([r["fraction_significant_planted"] for r in rows])
            )
            summary["recovery"]["mean_fraction_significant_other_layers"] = float(
                np.mean([r["fraction_significant_other_layers"] for r in rows])
            )
        truth_volume = np.zeros(patterns.mask.shape, dtype=np.int64)
        truth_volume[patterns.mask] = truth_at_voxels
    with atomic_path(out / "results.h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("layers", data=np.array(maps.layers, dtype=h5py.string_dtype()))
        f.create_dataset("centres_voxel", data=sl.center_coordinates)
        f.create_dataset("stats", data=maps.stats)
        f.create_dataset("valid", data=maps.valid)
        f.create_dataset("model_rdms", data=rdms.rdms)
        for name in ("p_fwer", "p_uncorrected", "null_max"):
            value = getattr(maps, name)
            if value is not None:
                f.create_dataset(name, data=value)
        f.attrs["affine"] = affine
    figures.correlation_heatmaps([model_corr], ["correlation of layer RDMs"], maps.layers, out / "model_rdm_correlation.png")
    best_volume = np.zeros(patterns.mask.shape, dtype=np.int64)
    best_volume[centre_mask] = best
    figures.label_mosaic(
        best_volume,
        maps.layers,
        out / "best_layer.png",
        truth=truth_volume,
        title="best layer per searchlight" + (" (outlines: planted regions)" if truth_volume is not None else ""),
    )
    if maps.null_max is not None:
        figures.null_histograms(maps.null_max, np.nanmax(maps.stats, 0), maps.layers, out / "null_max.png")
    summary["status"] = "finished"
    write_json(out / "summary.json", summary)
    return summary
