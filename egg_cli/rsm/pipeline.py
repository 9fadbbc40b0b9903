"""Library entry points behind ``egg rsm map`` and ``egg rsm residual``: NIfTI in, maps and tables out."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from scipy import stats as scipy_stats

from egg_cli.errors import EggError
from egg_cli.io import atomic_hdf5, write_csv, write_json
from egg_cli.rsm import figures
from egg_cli.rsm.compare import Comparison
from egg_cli.rsm.glm import GlmConfig
from egg_cli.rsm.group import GroupTest, noise_ceiling, sign_flip_test
from egg_cli.rsm.layer_rdms import LayerRdms, compute_layer_rdms, read_layer_rdms
from egg_cli.rsm.mapping import LayerMaps, map_layers, overlap_statistics, region_recovery
from egg_cli.rsm.matrices import correlation_summary
from egg_cli.rsm.residual import explained_by_others
from egg_cli.rsm.searchlight import RdmCalculator, Searchlights, volume_searchlights
from egg_cli.rsm.settings import MappingSettings
from egg_cli.rsm.subject_patterns import BidsSelection, glm_patterns, prepare_subject
from egg_cli.rsm.volume import BrainPatterns, check_same_grid, load_patterns, nibabel, save_volume

log = logging.getLogger(__name__)


def model_rdms(settings: MappingSettings, device: torch.device) -> LayerRdms:
    """Layer RDMs from ``rdms`` (a layer RDM file) or computed from ``images`` with ``model``."""
    if settings.rdms:
        rdms = read_layer_rdms(settings.rdms)
    elif settings.images:
        from egg_cli.rsm.features import feature_model
        from egg_cli.rsm.images_io import read_images_h5

        model = feature_model(settings.model, device)
        images = torch.from_numpy(read_images_h5(settings.images))
        rdms = compute_layer_rdms(model, images, image_set=str(settings.images), model_name=str(settings.model["arch"]))
    else:
        raise EggError("neither rdms nor images is set; expected rdms=<layer_rdms.h5> or images=<images.h5>")
    return rdms.select(list(settings.layers or []))


def read_truth(path: str | Path, patterns: BrainPatterns) -> tuple[np.ndarray, dict[int, str]]:
    """Ground-truth label volume (values at the analysis mask's voxels) and its label -> layer names."""
    nib = nibabel()
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


def run_mapping(settings: MappingSettings, out: Path, device: torch.device, residual: bool = False) -> dict:
    """Searchlight RSA against layer RDMs; writes maps, tables and figures to ``out``.

    Input is either condition patterns (``data``, ``mask``, ``events``) or a BIDS dataset
    (``bids.root``): then a first-level GLM per run and subject, per-subject maps in ``out/sub-<s>``
    and, with several subjects, group maps in ``out/group``.
    """
    start = time.perf_counter()
    settings.check()
    if settings.bids.get("root"):
        if settings.has_data or settings.events:
            raise EggError("both bids.root and data/events are set; expected one input: a BIDS dataset or condition patterns")
        return run_bids_mapping(settings, out, device, residual)
    if not settings.has_data:
        raise EggError(
            "neither data nor bids.root is set; expected data=<4D NIfTI>, a glob, or a list of 3D files (one per condition), "
            "or bids.root=<BIDS/fMRIPrep dataset>"
        )
    rdms = model_rdms(settings, device)
    patterns = load_patterns(settings.data, settings.mask, settings.events)
    summary, _, _ = map_subject(settings, out, patterns, rdms, residual, settings.truth, start)
    return summary


def map_subject(
    settings: MappingSettings,
    out: Path,
    patterns: BrainPatterns,
    rdms: LayerRdms,
    residual: bool,
    truth: str | None,
    start: float,
    keep_rdms: bool = False,
) -> tuple[dict, LayerMaps, Searchlights]:
    """Searchlights, layer maps and permutation test of one set of patterns; writes the outputs to ``out``."""
    if patterns.n_conditions != rdms.n_conditions:
        raise EggError(
            f"data have {patterns.n_conditions} conditions but the layer RDMs have {rdms.n_conditions}; "
            "expected one data condition per image (events.condition indexes the images)"
        )
    sl = volume_searchlights(
        patterns.mask,
        float(settings.radius),
        patterns.affine if settings.radius_unit == "mm" else None,
        threshold=float(settings.threshold),
        min_voxels=int(settings.min_voxels),
    )
    log.info(
        "%d searchlight centres of up to %d voxels, %d conditions, %d layers",
        sl.n_centers,
        len(sl.offsets),
        patterns.n_conditions,
        len(rdms.layers),
    )
    comparison = Comparison(settings.comparison, residual=residual)
    calculator = RdmCalculator(patterns, sl, settings.distance)
    maps = map_layers(
        calculator,
        rdms.vectors,
        rdms.layers,
        comparison,
        n_permutations=int(settings.n_permutations),
        seed=int(settings.seed),
        chunk_size=int(settings.chunk_size),
        max_over=settings.max_over,
        keep_rdms=keep_rdms,
    )
    if not np.isfinite(maps.stats).any():
        raise EggError(
            f"{settings.data or out.name}: no searchlight gave a finite statistic (patterns constant within every sphere?); "
            "expected BOLD patterns that vary across voxels and conditions"
        )
    seconds = time.perf_counter() - start
    summary = write_mapping_outputs(settings, out, patterns, sl, rdms, maps, residual, seconds, truth)
    return summary, maps, sl


def run_bids_mapping(settings: MappingSettings, out: Path, device: torch.device, residual: bool) -> dict:
    """GLM + searchlight maps per subject of a BIDS dataset, then group maps when there are several."""
    start = time.perf_counter()
    rdms = model_rdms(settings, device)
    selection = BidsSelection(**settings.bids)
    glm = GlmConfig(**settings.glm)
    names = rdms.condition_names
    labels = selection.subject_labels()
    prepared = [prepare_subject(selection, label, names, settings.mask) for label in labels]  # fail fast on bad input
    for other in prepared[1:]:
        check_same_grid(
            prepared[0].mask.shape, prepared[0].affine, f"sub-{labels[0]}", other.mask.shape, other.affine, f"sub-{other.subject}"
        )
    truth = Path(settings.truth) if settings.truth else None
    if truth is not None:
        if not truth.is_dir():
            raise EggError(
                f"truth={truth} is not a folder; with bids.root expected the truth/ folder of rsm simulate (sub-<s>_truth.nii.gz)"
            )
        missing = [f"sub-{label}_truth.nii.gz" for label in labels if not (truth / f"sub-{label}_truth.nii.gz").is_file()]
        if missing:
            raise EggError(f"truth={truth} lacks {missing[:3]}; expected one truth volume per analysed subject")
    subjects = []
    for subject in prepared:
        patterns = glm_patterns(subject, names, glm, selection.confounds)
        subject_truth = truth / f"sub-{subject.subject}_truth.nii.gz" if truth else None
        summary, maps, sl = map_subject(
            settings,
            out / f"sub-{subject.subject}",
            patterns,
            rdms,
            residual,
            subject_truth,
            time.perf_counter(),
            keep_rdms=len(labels) > 1,
        )
        subjects.append((subject.subject, summary, maps, sl))
    result: dict[str, Any] = {
        "method": "residual" if residual else "searchlight",
        "bids_root": selection.root,
        "glm": dict(settings.glm),
        "subjects": {label: _subject_digest(summary) for label, summary, _, _ in subjects},
    }
    if len(subjects) > 1:
        group_truth = truth / "truth.nii.gz" if truth else None
        result["group"] = write_group_outputs(settings, out / "group", subjects, rdms, prepared[0].affine, group_truth)
    result["seconds"] = time.perf_counter() - start
    result["status"] = "finished"
    write_json(out / "summary.json", result)
    return result


def _subject_digest(summary: dict) -> dict:
    keys = ("n_voxels", "n_centres_valid", "max_stat", "recovery", "overlap")
    return {k: summary[k] for k in keys if k in summary}


def _common_centres(subjects: list, shape: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Centres valid in every subject (a volume mask) and, per subject, each voxel's row in its maps (-1: none)."""
    common = np.ones(shape, dtype=bool)
    rows = []
    for _, _, maps, sl in subjects:
        index = np.full(shape, -1, dtype=np.int64)
        coords = sl.center_coordinates[maps.valid]
        index[tuple(coords.T)] = np.flatnonzero(maps.valid)
        common &= index >= 0
        rows.append(index)
    if not common.any():
        raise EggError("the subjects share no valid searchlight centre; expected subject data in one common space")
    return common, rows


def _write_group_volumes(
    out: Path,
    layers: list[str],
    mean: np.ndarray,
    test: GroupTest,
    use_tfce: bool,
    best: np.ndarray,
    best_sig: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    common: np.ndarray,
    affine: np.ndarray,
) -> None:
    """Group NIfTI maps: per layer mean, t (TFCE) and FWER p; best layer (significant), noise ceilings, labels."""
    for i, layer in enumerate(layers):
        save_volume(out / "maps" / f"{layer}_mean.nii.gz", mean[:, i], common, affine)
        save_volume(out / "maps" / f"{layer}_t.nii.gz", test.t[:, i], common, affine)
        if use_tfce:
            save_volume(out / "maps" / f"{layer}_tfce.nii.gz", test.statistic[:, i], common, affine)
        save_volume(out / "maps" / f"{layer}_pfwer.nii.gz", test.p_fwer[:, i], common, affine, fill=1.0)
    save_volume(out / "best_layer.nii.gz", best, common, affine, dtype=np.int16)
    save_volume(out / "best_layer_significant.nii.gz", best_sig, common, affine, dtype=np.int16)
    save_volume(out / "noise_ceiling_lower.nii.gz", lower, common, affine)
    save_volume(out / "noise_ceiling_upper.nii.gz", upper, common, affine)
    write_json(out / "layer_labels.json", {str(i + 1): name for i, name in enumerate(layers)})


def _group_recovery(
    out: Path,
    truth: Path,
    group_maps: LayerMaps,
    alpha: float,
    lower: np.ndarray,
    upper: np.ndarray,
    common: np.ndarray,
    affine: np.ndarray,
) -> tuple[dict, np.ndarray]:
    """recovery.csv of the group maps against the planted regions (with their noise ceilings); (summary, truth volume)."""
    template = BrainPatterns(np.zeros((1, int(common.sum()))), np.zeros(1, dtype=int), None, common, affine)
    truth_at, names = read_truth(truth, template)
    recovery = region_recovery(group_maps, truth_at, names, alpha)
    for row in recovery:
        region = truth_at == row["region"]
        row["mean_noise_ceiling_lower"] = float(lower[region].mean())
        row["mean_noise_ceiling_upper"] = float(upper[region].mean())
    write_csv(out / "recovery.csv", recovery)
    truth_volume = np.zeros(common.shape, dtype=np.int64)
    truth_volume[common] = truth_at
    return _recovery_summary(recovery), truth_volume


def write_group_outputs(
    settings: MappingSettings, out: Path, subjects: list, rdms: LayerRdms, affine: np.ndarray, truth: Path | None = None
) -> dict:
    """Group t maps with sign-flip FWER, best layer, Dice overlaps, noise ceiling, recovery against ``truth``."""
    group = settings.group
    alpha = float(group.alpha)
    shape = subjects[0][3].mask.shape
    common, rows = _common_centres(subjects, shape)
    stats = np.stack([maps.stats[index[common]] for (_, _, maps, _), index in zip(subjects, rows)])  # (S, V, L)
    if 0.5 ** len(subjects) >= alpha:
        log.warning(
            "%d subjects: the smallest sign-flip p-value is 1/%d >= alpha %.3g, so nothing can be significant; "
            "the group maps and best-layer map are still written",
            len(subjects),
            2 ** len(subjects),
            alpha,
        )
    use_tfce = bool(group.tfce)
    test = sign_flip_test(
        stats,
        int(group.n_permutations),
        int(settings.seed),
        str(group.max_over),
        tfce_mask=common if use_tfce else None,
        progress=True,
    )
    comparison = settings.comparison
    brain = np.stack([maps.brain_rdms[index[common]] for (_, _, maps, _), index in zip(subjects, rows)])
    if comparison in ("spearman", "tau-a"):
        brain = scipy_stats.rankdata(brain, axis=-1)
    lower, upper = noise_ceiling(brain)
    mean = stats.mean(0)
    layers = rdms.layers
    group_maps = LayerMaps(
        layers=layers, stats=mean, valid=np.ones(len(mean), dtype=bool), p_fwer=test.p_fwer, null_max=test.null_max
    )
    significant = group_maps.significant(alpha)
    best = group_maps.best_layer + 1
    best_sig = np.where(significant[np.arange(len(best)), best - 1], best, 0)
    _write_group_volumes(out, layers, mean, test, use_tfce, best, best_sig, lower, upper, common, affine)
    overlap = overlap_statistics(significant, layers)
    write_csv(
        out / "overlap_dice.csv",
        [{"layer": a, **{b: overlap["dice"][i, j] for j, b in enumerate(layers)}} for i, a in enumerate(layers)],
    )
    figures.correlation_heatmaps(
        [overlap["dice"]], ["Dice overlap of group layer maps"], layers, out / "overlap.png", vmin=0, vmax=1, cmap="viridis"
    )
    best_of = mean[np.arange(len(best)), best - 1]
    summary: dict[str, Any] = {
        "n_subjects": len(subjects),
        "subjects": [label for label, *_ in subjects],
        "n_centres": int(common.sum()),
        "n_sign_flips": test.n_flips,
        "exhaustive": test.exhaustive,
        "statistic": "tfce" if use_tfce else "t",
        "alpha": alpha,
        "max_t": {l: float(test.t[:, i].max()) for i, l in enumerate(layers)},
        "n_significant": overlap["n_significant"],
        "overlap": {k: v for k, v in overlap.items() if k not in ("dice", "jaccard", "layers", "n_significant")},
        "noise_ceiling": {
            "median_lower": float(np.median(lower)),
            "median_upper": float(np.median(upper)),
            "median_best_over_lower": float(np.median(best_of / np.where(lower > 0, lower, np.nan)))
            if (lower > 0).any()
            else float("nan"),
        },
    }
    truth_volume = None
    if truth is not None:
        summary["recovery"], truth_volume = _group_recovery(out, truth, group_maps, alpha, lower, upper, common, affine)
    with atomic_hdf5(out / "group.h5") as f:
        f.create_dataset("layers", data=np.array(layers, dtype=h5py.string_dtype()))
        f.create_dataset("centres_voxel", data=np.argwhere(common))
        for name, value in (
            ("subject_stats", stats),
            ("mean", mean),
            ("t", test.t),
            ("p_fwer", test.p_fwer),
            ("null_max", test.null_max),
            ("noise_ceiling_lower", lower),
            ("noise_ceiling_upper", upper),
        ):
            f.create_dataset(name, data=value)
        f.attrs["affine"] = affine
    best_volume = np.zeros(shape, dtype=np.int64)
    best_volume[common] = best_sig
    figures.label_mosaic(
        best_volume, layers, out / "best_layer.png", truth=truth_volume, title="group: best layer where FWER-significant"
    )
    figures.null_histograms(test.null_max, test.statistic.max(0), layers, out / "null_max.png")
    summary["status"] = "finished"
    write_json(out / "summary.json", summary)
    return summary


def _recovery_summary(rows: list[dict]) -> dict:
    """Regions recovered and mean per-region fractions of a recovery table."""
    out = {
        "n_regions": len(rows),
        "n_recovered": int(sum(r["recovered"] for r in rows)),
        "mean_fraction_best_is_planted": float(np.mean([r["fraction_best_is_planted"] for r in rows])) if rows else float("nan"),
    }
    for key in ("fraction_significant_planted", "fraction_significant_other_layers"):
        if rows and key in rows[0]:
            out[f"mean_{key}"] = float(np.mean([r[key] for r in rows]))
    return out


def _write_map_volumes(
    out: Path, patterns: BrainPatterns, sl: Searchlights, maps: LayerMaps, alpha: float, threshold: float | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-layer maps (and FWER p maps), best-layer maps and labels; returns (best layer + 1, significance or None)."""
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
    return best, significant


def _mapping_summary(
    settings: MappingSettings,
    patterns: BrainPatterns,
    sl: Searchlights,
    maps: LayerMaps,
    model_corr: np.ndarray,
    residual: bool,
    alpha: float,
    seconds: float,
) -> dict[str, Any]:
    """The headline numbers of a mapping (summary.json before overlap and recovery)."""
    return {
        "method": "residual" if residual else "searchlight",
        "n_conditions": patterns.n_conditions,
        "n_voxels": patterns.n_voxels,
        "n_voxels_excluded_nonfinite": patterns.n_excluded,
        "n_centres": sl.n_centers,
        "n_centres_valid": int(maps.valid.sum()),
        "sphere_size": len(sl.offsets),
        "distance": settings.distance,
        "comparison": settings.comparison,
        "n_permutations": int(settings.n_permutations),
        "alpha": alpha,
        "layers": maps.layers,
        "model_rdm_correlation": correlation_summary(model_corr),
        "max_stat": {l: float(np.nanmax(maps.stats[:, i])) for i, l in enumerate(maps.layers)},
        "best_layer_counts": {l: int((maps.best_layer == i).sum()) for i, l in enumerate(maps.layers)},
        "seconds": seconds,
    }


def _write_overlap(out: Path, significant: np.ndarray, maps: LayerMaps, layer_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Dice overlap of the significant layer maps (CSV, figure); adds ``n_significant`` to ``layer_rows``."""
    overlap = overlap_statistics(significant, maps.layers)
    for row in layer_rows:
        row["n_significant"] = overlap["n_significant"][row["layer"]]
    write_csv(
        out / "overlap_dice.csv",
        [{"layer": a, **{b: overlap["dice"][i, j] for j, b in enumerate(maps.layers)}} for i, a in enumerate(maps.layers)],
    )
    figures.correlation_heatmaps(
        [overlap["dice"]],
        ["Dice overlap of significant layer maps"],
        maps.layers,
        out / "overlap.png",
        vmin=0,
        vmax=1,
        cmap="viridis",
    )
    return {k: v for k, v in overlap.items() if k not in ("dice", "jaccard", "layers")}


def _write_results_h5(path: Path, sl: Searchlights, rdms: LayerRdms, maps: LayerMaps, affine: np.ndarray) -> None:
    """results.h5: layers, searchlight centres, statistics, validity, model RDMs and permutation results."""
    with atomic_hdf5(path) as f:
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


def write_mapping_outputs(
    settings: MappingSettings,
    out: Path,
    patterns: BrainPatterns,
    sl: Searchlights,
    rdms: LayerRdms,
    maps: LayerMaps,
    residual: bool,
    seconds: float,
    truth: str | None = None,
) -> dict:
    """Per-layer NIfTI maps, best-layer maps, results.h5, overlap/recovery tables, figures and summary.json."""
    alpha = float(settings.alpha)
    threshold = None if settings.overlap_threshold is None else float(settings.overlap_threshold)
    best, significant = _write_map_volumes(out, patterns, sl, maps, alpha, threshold)
    centre_mask = sl.center_mask()
    model_corr = np.corrcoef(rdms.vectors)
    summary = _mapping_summary(settings, patterns, sl, maps, model_corr, residual, alpha, seconds)
    if residual:
        shares = explained_by_others(rdms.vectors, settings.comparison)
        summary["explained_by_others"] = {l: float(s) for l, s in zip(maps.layers, shares)}
    layer_rows = [
        {"layer": l, "max_stat": summary["max_stat"][l], "n_best": summary["best_layer_counts"][l]} for l in maps.layers
    ]
    if significant is not None:
        summary["overlap"] = _write_overlap(out, significant, maps, layer_rows)
    write_csv(out / "layers.csv", layer_rows)
    truth_volume = None
    if truth:
        truth_at_voxels, names = read_truth(truth, patterns)
        rows = region_recovery(maps, truth_at_voxels[centre_mask[patterns.mask]], names, alpha, threshold)
        write_csv(out / "recovery.csv", rows)
        summary["recovery"] = _recovery_summary(rows)
        truth_volume = np.zeros(patterns.mask.shape, dtype=np.int64)
        truth_volume[patterns.mask] = truth_at_voxels
    _write_results_h5(out / "results.h5", sl, rdms, maps, patterns.affine)
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
