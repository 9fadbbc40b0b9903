"""``egg train``: fit an encoding model (core + readout) to a neural dataset.

egg train dataset_path=outputs/simulate/<time>/dataset.h5 model/core=stacked model/readout=attention
egg train -m dataset_path=... seed=1,2,3,4,5          # an ensemble, one run folder per seed
egg train dataset_path=... hydra.run.dir=<old run>    # continue an interrupted run
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from egg_cli.cli import app
from egg_cli.errors import EggError
from egg_cli.io import write_csv, write_json
from egg_cli.runtime import resolve_device, resolve_precision, seed_everything

log = logging.getLogger("egg.train")

STATE_NAME = "training_state.pt"


def _trainer_config(cfg: DictConfig) -> Any:
    from egg_cli.models.training import TrainerConfig

    values = OmegaConf.to_container(cfg.trainer, resolve=True)
    try:
        return TrainerConfig(**values)
    except TypeError as err:
        known = ", ".join(TrainerConfig.__dataclass_fields__)
        raise EggError(f"trainer config has an unknown key ({err}); expected keys: {known}") from err


def _init_from_checkpoint(model: Any, path: str, dataset: Any) -> None:
    from egg_cli.models.checkpoint import read_checkpoint
    from egg_cli.models.state import load_state_strict

    payload = read_checkpoint(path)
    n_saved = len(payload["neuron_ids"])
    if n_saved != dataset.n_neurons or not np.array_equal(np.asarray(payload["neuron_ids"]), np.asarray(dataset.neuron_ids)):
        raise EggError(
            f"init_checkpoint={path} predicts {n_saved} neurons; dataset {dataset.path} has {dataset.n_neurons} "
            "with other ids: expected the same neurons"
        )
    load_state_strict(model, payload["state_dict"], f"init_checkpoint={path}")
    log.info("initialized the model from %s", path)


def _build(cfg: DictConfig, dataset: Any, device: torch.device) -> tuple[Any, int]:
    """The encoding model of ``cfg.model`` for ``dataset`` (optionally from ``init_checkpoint``) and its trainable parameters."""
    from egg_cli.models.encoding import build_model

    train_trials = dataset.trials("train")
    if len(train_trials) == 0:
        raise EggError(f"dataset {dataset.path} has no train trials; expected images with tier 'train'")
    mean_response = dataset.responses[train_trials].mean(0)
    model = build_model(cfg.model, dataset.image_shape, dataset.neuron_ids, dataset.pixel_mean, dataset.pixel_std, mean_response)
    if cfg.get("init_checkpoint"):
        _init_from_checkpoint(model, cfg.init_checkpoint, dataset)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "model: %s + %s, %d trainable parameters, %d neurons, input %s, device %s, %d threads",
        type(model.core).__name__,
        type(model.readout).__name__,
        n_params,
        model.n_neurons,
        model.input_shape,
        device,
        torch.get_num_threads(),
    )
    return model, n_params


def _training_record(state: Any) -> dict[str, Any]:
    """How training went (saved in the checkpoint and the summary)."""
    return {
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "best_validation_correlation": state.best_score,
        "stop_reason": state.stop_reason,
        "lr_decays": state.lr_decays,
        "sessions": len(state.sessions),  # 1 + how many times training resumed from training_state.pt
        "resumed_after_epochs": state.sessions[1:],
        "train_minutes": state.seconds / 60,
        "train_cpu_minutes": state.cpu_seconds / 60,
        "load_average_at_end": list(os.getloadavg()),
    }


def _neuron_rows(dataset: Any, per_neuron: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """One row per neuron: ``<tier>_<metric>`` for every scored tier."""
    rows = []
    for i, nid in enumerate(np.asarray(dataset.neuron_ids).tolist()):
        row: dict[str, Any] = {"neuron_id": nid}
        for tier, values in per_neuron.items():
            row.update({f"{tier}_{k}": float(v[i]) for k, v in values.items()})
        rows.append(row)
    return rows


def _summary(
    cfg: DictConfig,
    dataset: Any,
    n_params: int,
    device: torch.device,
    training: dict[str, Any],
    headline: str,
    head: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """summary.json: the model, the training record and the headline tier's metrics."""
    return {
        "command": "train",
        "dataset": str(dataset.path),
        "model": {
            "core": cfg.model.core._target_.rsplit(".", 1)[-1],
            "readout": cfg.model.readout._target_.rsplit(".", 1)[-1],
            "trainable_parameters": n_params,
        },
        "seed": int(cfg.seed),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "training": training,
        f"{headline}_correlation_mean": head["correlation"]["mean"],
        f"{headline}_oracle_mean": head["oracle"]["mean"],
        f"{headline}_fraction_of_oracle": head["fraction_of_oracle"],
        f"{headline}_feve_mean": head["feve"]["mean"],
        "files": {
            "checkpoint": "model.pt",
            "metrics": "metrics.json",
            "per_neuron": "neurons.csv",
            "history": "history.json",
            "figures": ["training_curves.png", "oracle_scatter.png"],
            "training_state": STATE_NAME,
        },
        "wall_minutes": seconds / 60,
        "status": "finished",
    }


def run(cfg: DictConfig) -> dict:
    """Train, evaluate on validation and test tiers, and write the run folder."""
    from egg_cli.data import load_dataset
    from egg_cli.models.checkpoint import save_checkpoint
    from egg_cli.models.figures import plot_oracle_scatter, plot_training_curves
    from egg_cli.models.scoring import score_tier, summarize_tier
    from egg_cli.models.training import fit

    if OmegaConf.is_missing(cfg, "dataset_path") or not cfg.dataset_path:
        raise EggError(
            "dataset_path= is required: the path of a dataset.h5 (egg simulate writes "
            "outputs/simulate/<time>/dataset.h5) or a Sensorium folder"
        )
    out = app.run_dir()
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    dtype = resolve_precision(cfg.precision, device)
    if dtype != torch.float32:
        log.info("precision=%s: training runs in fp32 (mixed precision is not used for encoding models)", cfg.precision)
    trainer = _trainer_config(cfg)
    trainer.check()
    seed_everything(int(cfg.seed))
    dataset = load_dataset(cfg.dataset_path)
    model, n_params = _build(cfg, dataset, device)
    fingerprint = {
        "model config": OmegaConf.to_container(cfg.model, resolve=True),
        "dataset": str(dataset.path),
        "neurons": dataset.n_neurons,
        "seed": int(cfg.seed),
        "init_checkpoint": cfg.get("init_checkpoint"),
    }
    state = fit(
        model,
        dataset,
        trainer,
        app.final_dir() / STATE_NAME,
        seed=int(cfg.seed),
        device=device,
        fingerprint=fingerprint,
        progress=bool(cfg.progress),
    )

    tiers = [t for t in ("validation", "test") if len(dataset.trials(t))]
    per_neuron = {t: score_tier(model, dataset, t, trainer.eval_batch_size, device) for t in tiers}
    metrics = {t: summarize_tier(per_neuron[t]) for t in tiers}
    headline = "test" if "test" in per_neuron else "validation"
    model.test_correlation = per_neuron[headline]["correlation"]
    model.dataset_path = str(dataset.path)
    model.dataset_id = dataset.population_id
    training = _training_record(state)
    save_checkpoint(out / "model.pt", model, cfg.model, extra={"seed": int(cfg.seed), "metrics": metrics, "training": training})
    write_json(out / "metrics.json", {"headline_tier": headline, **metrics})
    write_csv(out / "neurons.csv", _neuron_rows(dataset, per_neuron))
    write_json(out / "history.json", state.history)
    plot_training_curves(state.history, out / "training_curves.png", state.best_epoch)
    plot_oracle_scatter(per_neuron[headline]["correlation"], per_neuron[headline]["oracle"], out / "oracle_scatter.png")
    head = metrics[headline]
    summary = _summary(cfg, dataset, n_params, device, training, headline, head, time.perf_counter() - started)
    write_json(out / "summary.json", summary)
    log.info(
        "%s correlation %.3f (oracle %.3f, fraction %.2f); run folder %s",
        headline,
        head["correlation"]["mean"] or 0,
        head["oracle"]["mean"] or float("nan"),
        head["fraction_of_oracle"] or float("nan"),
        app.final_dir(),
    )
    return summary


_hydra_main = app.command("train", required={"dataset_path": "dataset.h5 written by egg simulate, or a Sensorium folder"})(run)


def main() -> None:
    """Entry point of ``egg train``: a Hydra app, with a pointer from ``dataset=`` to ``dataset_path=``."""
    for arg in sys.argv[1:]:
        if arg.startswith(("dataset=", "+dataset=", "++dataset=")):
            app.fail(f"egg train takes the dataset as dataset_path=<file or folder>, got {arg!r}")
    _hydra_main()
