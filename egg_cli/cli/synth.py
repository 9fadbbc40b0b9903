"""``egg synth``: MEIs, MENIs and reconstructions by GA or EGG, batched across neurons and seeds."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from egg_cli.cli.app import command, final_dir, run_dir
from egg_cli.errors import EggError
from egg_cli.io import write_csv, write_json
from egg_cli.models.population import Population, check_image_shape, check_same_population
from egg_cli.runtime import plain, resolve_device, resolve_precision, seed_everything
from egg_cli.synthesis.adapter import contrast_norm
from egg_cli.synthesis.builders import ObjectiveContext
from egg_cli.synthesis.figures import synthesis_grid
from egg_cli.synthesis.objectives import NeuronObjective, select_neurons
from egg_cli.synthesis.reference import natural_reference
from egg_cli.synthesis.results import GENERATING, SynthesisResult, write_synthesis
from egg_cli.synthesis.runner import check_finite, rescore, synthesize

log = logging.getLogger("egg.synth")


def _heldout_specs(value: Any) -> list[Any]:
    value = plain(value)
    if value in (None, "", []):
        return []
    return [value] if isinstance(value, str) else list(value)


class _LazyDataset:
    """Loads the dataset once, on first use (reconstructions, natural reference)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._dataset = None

    def __call__(self) -> Any:
        if self.path is None:
            raise EggError("no dataset: set dataset_path=<dataset.h5> (the model does not record its dataset)")
        if self._dataset is None:
            from egg_cli.data import load_dataset

            self._dataset = load_dataset(self.path)
        return self._dataset


def _natural(
    cfg: DictConfig, objective: Any, data: _LazyDataset, result: SynthesisResult, device: torch.device
) -> dict[str, Any] | None:
    if not cfg.natural.enabled or not isinstance(objective, NeuronObjective):
        return None
    if data.path is None:
        if objective.name == "meni":
            raise EggError("objective=meni shows the top natural images: set dataset_path=<dataset.h5>")
        log.warning("no dataset_path and the model records none: skipping the natural-image reference")
        return None
    dataset = data()
    check_image_shape(
        f"dataset {dataset.path}", dataset.image_shape, "the model", objective.model.input_shape, bool(cfg.allow_mismatch)
    )
    tier = str(cfg.natural.tier)
    index = np.arange(dataset.n_images) if tier == "all" else dataset.image_indices(tier)
    if len(index) == 0:
        raise EggError(f"natural.tier={tier}: {dataset.path} has no images in that tier")
    reference = natural_reference(
        objective,
        np.asarray(dataset.images[index]),
        result.adapter["norm"],
        device,
        indices=index,
        top_k=int(cfg.natural.top_k),
        progress=bool(cfg.progress),
    )
    reference["dataset"] = str(dataset.path)
    reference["tier"] = tier
    return reference


def _seed_list(value: Any) -> list[int]:
    """``seeds=`` as a list of integers (a single integer is a list of one)."""
    seeds = [value] if isinstance(value, int) else value
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise EggError(f"seeds={value}: expected a list of integers, e.g. seeds=[0,1,2]")
    return seeds


def _rows(result: SynthesisResult) -> list[dict[str, Any]]:
    rows = []
    best = result.best_seed
    nat = result.natural
    for p, label in enumerate(result.labels):
        for s, seed in enumerate(result.seeds):
            row: dict[str, Any] = {"problem": p, "label": label}
            for key in ("neuron_index", "neuron_id", "target_index"):
                if key in result.problems:
                    row[key] = result.problems[key][p]
            row["seed"] = int(seed)
            row["best_seed"] = bool(s == best[p])
            for name, values in result.scores.items():
                row[f"score_{name}"] = float(values[p, s])
            if nat is not None:
                natural_best = float(nat["score"][p, 0])
                row["natural_best_score"] = natural_best
                row["ratio_to_natural"] = (
                    float(result.scores[GENERATING][p, s]) / natural_best if natural_best > 0 else float("nan")
                )
            row["seconds_per_image"] = float(result.seconds_per_image[p, s])
            rows.append(row)
    return rows


def _summary(result: SynthesisResult, cfg: DictConfig, wall: float) -> dict[str, Any]:
    best = result.best_seed
    rows = np.arange(result.n_problems)
    summary: dict[str, Any] = {
        "method": result.method,
        "objective": result.objective,
        "n_problems": result.n_problems,
        "n_seeds": int(len(result.seeds)),
        "steps": int(result.trace.shape[2]),
        "batch_size": result.batch_size,
        "device": result.device,
        "contrast_norm": result.adapter["norm"],
        "seconds_per_image": float(result.seconds_per_image.mean()),
        "wall_seconds": wall,
        "best_score_mean": {name: float(v[rows, best].mean()) for name, v in result.scores.items()},
        "score_mean": {name: float(v.mean()) for name, v in result.scores.items()},
    }
    if result.natural is not None:
        natural_best = result.natural["score"][:, 0]
        ratio = np.where(
            natural_best > 0, result.scores[GENERATING][rows, best] / np.where(natural_best > 0, natural_best, 1), np.nan
        )
        summary["natural"] = {
            "dataset": result.natural["dataset"],
            "n_images": result.natural["n_images"],
            "best_score_mean": float(natural_best.mean()),
            "ratio_best_seed_median": float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else None,
            "ratio_best_seed_mean": float(np.nanmean(ratio)) if np.isfinite(ratio).any() else None,
            "fraction_above_natural": float(np.mean(result.scores[GENERATING][rows, best] > natural_best)),
        }
    summary["status"] = "finished"
    return summary


def run(cfg: DictConfig) -> dict[str, Any]:
    """Synthesize, score in held-out models and the ground truth, and write the run folder."""
    from egg_cli.data import load_dataset
    from egg_cli.models import load_model

    start = time.perf_counter()
    out = run_dir()
    device = resolve_device(cfg.device)
    seed_everything(int(cfg.seed))
    model_spec = plain(cfg.model)
    model = load_model(model_spec, device)
    dataset_path = cfg.dataset_path or getattr(model, "dataset_path", None)
    data = _LazyDataset(None if dataset_path is None else str(dataset_path))
    neurons = select_neurons(plain(cfg.neurons), model)
    norm = contrast_norm(model.input_shape, cfg.adapter.rms_contrast, cfg.adapter.norm)
    context = ObjectiveContext(model=model, neurons=neurons, dataset=data, norm=norm, device=device)
    objective = instantiate(cfg.objective)(context)
    method = instantiate(cfg.method)
    seeds = _seed_list(plain(cfg.seeds))
    result = synthesize(
        method,
        objective,
        seeds,
        device,
        batch_size=cfg.batch_size,
        max_batch_size=int(cfg.max_batch_size),
        adapter_options=plain(cfg.adapter),
        progress=bool(cfg.progress),
        precision=resolve_precision(cfg.precision, device),
    )
    result.score_sources[GENERATING] = str(model_spec)
    generating = Population.of_model(model, f"model={model_spec}")
    for k, spec in enumerate(_heldout_specs(cfg.heldout)):
        name = f"heldout_{k}"
        heldout = load_model(spec, device)
        check_same_population(generating, Population.of_model(heldout, f"heldout model {spec}"), bool(cfg.allow_mismatch))
        result.scores[name] = rescore(objective, heldout, result, device)
        result.score_sources[name] = str(spec)
        check_finite(result.scores[name], result, name)
    if cfg.ground_truth:
        from egg_cli.simulation import load_ground_truth

        truth_path = data.path if cfg.ground_truth is True else str(cfg.ground_truth)
        if truth_path is None:
            raise EggError("ground_truth=true needs dataset_path=<simulated dataset.h5> (the model records none)")
        truth = load_ground_truth(truth_path, device)
        truth.dataset_id = (data() if truth_path == data.path else load_dataset(truth_path)).population_id
        check_same_population(generating, Population.of_model(truth, f"ground truth of {truth_path}"), bool(cfg.allow_mismatch))
        result.scores["ground_truth"] = rescore(objective, truth, result, device)
        result.score_sources["ground_truth"] = truth_path
        check_finite(result.scores["ground_truth"], result, "ground_truth")
    result.natural = _natural(cfg, objective, data, result, device)
    result.attrs = {
        "model": model_spec,
        "heldout": _heldout_specs(cfg.heldout),
        "dataset": data.path or "",
        "dataset_id": generating.dataset_id or "",
        "config": OmegaConf.to_yaml(cfg, resolve=True),
        "egg_version": __import__("egg_cli").__version__,
    }
    write_synthesis(out / "synthesis.h5", result)
    write_csv(out / "synthesis.csv", _rows(result))
    synthesis_grid(result, out / f"grid_{result.method}.png")
    summary = _summary(result, cfg, time.perf_counter() - start)
    write_json(out / "summary.json", summary)
    log.info(
        "%s %s: %d images in %s", result.method, result.objective, result.images.shape[0] * result.images.shape[1], final_dir()
    )
    return summary


main = command("synth", required={"model": "model.pt, an egg train run folder, or a list of them"})(run)

if __name__ == "__main__":
    main()
