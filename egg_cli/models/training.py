"""Training loop for encoding models: Poisson loss, AdamW, plateau decay, early stopping, resume.

The whole training state (weights, optimizer, scheduler, best weights, history, random state) is
written atomically to ``training_state.pt`` after every epoch; calling :func:`fit` again with
the same ``state_path`` continues after the last finished epoch and gives the same result as an
uninterrupted run (shuffling is seeded per epoch, the torch random state is restored).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from egg_cli.errors import EggError, require
from egg_cli.io import atomic_path
from egg_cli.models.scoring import mean_correlation
from egg_cli.models.state import load_state_strict

log = logging.getLogger(__name__)


@dataclass
class TrainerConfig:
    """Optimization settings (config group ``trainer``)."""

    max_epochs: int = 200
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 5
    lr_decay_factor: float = 0.3
    lr_decay_steps: int = 3
    min_improvement: float = 1e-4
    max_minutes: float | None = None
    eval_batch_size: int = 256

    def check(self) -> None:
        """Raise :class:`EggError` on values no training run can use."""

        def need(ok: bool, key: str, expected: str) -> None:
            require(ok, f"trainer.{key}={getattr(self, key)!r} is not allowed; expected {expected}")

        need(isinstance(self.max_epochs, int) and self.max_epochs >= 1, "max_epochs", "an integer >= 1")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0, "lr", "a positive number")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(isinstance(self.patience, int) and self.patience >= 0, "patience", "an integer >= 0")
        need(0 < self.lr_decay_factor < 1, "lr_decay_factor", "a number in (0, 1)")
        need(isinstance(self.lr_decay_steps, int) and self.lr_decay_steps >= 0, "lr_decay_steps", "an integer >= 0")
        need(self.min_improvement >= 0, "min_improvement", "a number >= 0")
        need(self.max_minutes is None or self.max_minutes > 0, "max_minutes", "null or a positive number of minutes")
        need(isinstance(self.eval_batch_size, int) and self.eval_batch_size >= 1, "eval_batch_size", "an integer >= 1")


@dataclass
class TrainingState:
    """Everything needed to continue training after an interruption."""

    epoch: int = 0  # epochs finished
    best_score: float = -math.inf
    best_epoch: int = 0
    lr_decays: int = 0
    finished: bool = False
    stop_reason: str = ""
    seconds: float = 0.0  # wall-clock seconds of training and validation, over all sessions
    cpu_seconds: float = 0.0  # CPU time of this process (all threads): comparable across machine loads
    history: list[dict[str, float]] = field(default_factory=list)
    sessions: list[int] = field(default_factory=list)  # epochs already finished when each fit() call began


def poisson_loss(rates: torch.Tensor, responses: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Poisson negative log likelihood (without the log k! term), summed over neurons, mean over the batch."""
    return (rates - responses * torch.log(rates + eps)).sum(1).mean()


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _optimizer(model: nn.Module, config: TrainerConfig) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW on the trainable parameters and the plateau scheduler on validation correlation."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=config.lr_decay_factor,
        patience=config.patience,
        threshold=config.min_improvement,
        threshold_mode="abs",
    )
    return optimizer, scheduler


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: Any,
    config: TrainerConfig,
    epoch: int,
    seed: int,
    device: torch.device,
    deadline: float,
    progress: bool,
) -> tuple[float, int]:
    """One pass over the train tier (ended early at ``time.perf_counter() >= deadline``): (summed Poisson loss, images)."""
    model.train()
    total, count = 0.0, 0
    n_batches = math.ceil(len(dataset.trials("train")) / config.batch_size)
    batches = dataset.dataloader("train", batch_size=config.batch_size, shuffle=True, seed=seed * 100_003 + epoch)
    for images, responses in tqdm(
        batches, total=n_batches, desc=f"epoch {epoch}", leave=False, unit="batch", disable=not progress
    ):
        if time.perf_counter() >= deadline:
            log.info("trainer.max_minutes=%s reached inside epoch %d: ending it early", config.max_minutes, epoch)
            break
        images = torch.as_tensor(images, dtype=torch.float32).to(device)
        responses = torch.as_tensor(responses, dtype=torch.float32).to(device)
        data_loss = poisson_loss(model(images), responses)
        loss = data_loss + model.regularizer()
        if not torch.isfinite(loss):
            raise EggError(
                f"training diverged in epoch {epoch}: the loss is {loss.item()}; "
                f"expected a finite loss (lower trainer.lr={config.lr} or check the dataset for NaN)"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += data_loss.item() * len(images)
        count += len(images)
    return total, count


def _record_epoch(state: TrainingState, train_loss: float, score: float, lr: float, images: int) -> None:
    """Append the finished epoch (``state.epoch``) to the history and log it."""
    state.history.append(
        {
            "epoch": state.epoch,
            "train_poisson_loss": train_loss,
            "validation_correlation": score,
            "lr": lr,
            "seconds": state.seconds,
            "cpu_seconds": state.cpu_seconds,
            "images": images,
        }
    )
    log.info(
        "epoch %d: train loss %.4f, validation correlation %.4f (best %.4f at %d), lr %.2g, %.1f min",
        state.epoch,
        train_loss,
        score,
        state.best_score,
        state.best_epoch,
        lr,
        state.seconds / 60,
    )


def _apply_stop_rules(state: TrainingState, config: TrainerConfig, decayed: bool) -> None:
    """Mark the state finished when this epoch's decay was one too many, or at the epoch or time budget."""
    if decayed and state.lr_decays > config.lr_decay_steps:
        state.finished, state.stop_reason = True, f"no improvement after {config.lr_decay_steps} learning-rate decays"
    if state.epoch >= config.max_epochs:
        state.finished, state.stop_reason = True, f"reached trainer.max_epochs={config.max_epochs}"
    if config.max_minutes is not None and state.seconds >= 60 * config.max_minutes:
        state.finished, state.stop_reason = True, f"reached trainer.max_minutes={config.max_minutes}"


def fit(
    model: nn.Module,
    dataset: Any,
    config: TrainerConfig,
    state_path: str | Path,
    seed: int = 0,
    device: torch.device | str = "cpu",
    fingerprint: dict[str, Any] | None = None,
    on_epoch: Callable[[TrainingState], None] | None = None,
    progress: bool = True,
) -> TrainingState:
    """Train ``model`` on the train tier, early-stopping on validation correlation; restore the best weights.

    ``fingerprint`` (model config, dataset, neuron count) is stored with the state; resuming from
    a state written under a different fingerprint raises :class:`EggError`. ``on_epoch`` is called
    after each epoch's state is saved (used by tests to interrupt); ``progress=False`` hides the
    per-epoch batch bar (cluster job logs).
    """
    config.check()
    device = torch.device(device)
    state_path = Path(state_path)
    require(len(dataset.trials("train")) > 0, f"dataset {dataset.path} has no train trials; expected images with tier 'train'")
    require(
        len(dataset.trials("validation")) > 0,
        f"dataset {dataset.path} has no validation trials; expected images with tier 'validation' for early stopping",
    )
    model.to(device)
    optimizer, scheduler = _optimizer(model, config)
    state = TrainingState()
    best_weights = copy.deepcopy(model.state_dict())
    if state_path.exists():
        state, best_weights = _resume(state_path, model, optimizer, scheduler, fingerprint)
        log.info(
            "resuming from %s after epoch %d (best validation correlation %.4f at epoch %d)",
            state_path,
            state.epoch,
            state.best_score,
            state.best_epoch,
        )
        if state.finished and _budget_left(state, config):
            log.info("the run had stopped (%s); continuing under the larger budget", state.stop_reason)
            state.finished, state.stop_reason = False, ""
    else:
        torch.manual_seed(seed)
    if not state.finished:
        state.sessions.append(state.epoch)

    while not state.finished:
        started, cpu_started = time.perf_counter(), time.process_time()
        epoch = state.epoch + 1
        budget_left = math.inf if config.max_minutes is None else 60 * config.max_minutes - state.seconds
        total, count = _train_epoch(model, optimizer, dataset, config, epoch, seed, device, started + budget_left, progress)
        score = mean_correlation(model, dataset, "validation", config.eval_batch_size, device)
        lr = optimizer.param_groups[0]["lr"]
        if score > state.best_score + config.min_improvement:
            state.best_score, state.best_epoch = score, epoch
            best_weights = copy.deepcopy(model.state_dict())
        scheduler.step(score)
        state.epoch = epoch
        state.seconds += time.perf_counter() - started
        state.cpu_seconds += time.process_time() - cpu_started
        _record_epoch(state, total / max(count, 1), score, lr, count)
        decayed = optimizer.param_groups[0]["lr"] < lr
        if decayed:  # plateau: decay and continue from the best weights
            state.lr_decays += 1
            model.load_state_dict(best_weights)
        _apply_stop_rules(state, config, decayed)
        if state.finished:
            model.load_state_dict(best_weights)
        _save(state_path, state, model, best_weights, optimizer, scheduler, fingerprint)
        if on_epoch is not None:
            on_epoch(state)
    model.load_state_dict(best_weights)
    log.info(
        "training stopped after epoch %d (%s); best validation correlation %.4f at epoch %d",
        state.epoch,
        state.stop_reason,
        state.best_score,
        state.best_epoch,
    )
    return state


def _budget_left(state: TrainingState, config: TrainerConfig) -> bool:
    """True when a run that stopped on its epoch or time budget may go on under ``config``."""
    budget_stop = state.stop_reason.startswith(("reached trainer.max_epochs", "reached trainer.max_minutes"))
    more_time = config.max_minutes is None or state.seconds < 60 * config.max_minutes
    return budget_stop and state.epoch < config.max_epochs and more_time


def _save(
    path: Path,
    state: TrainingState,
    model: nn.Module,
    best_weights: dict,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    fingerprint: dict | None,
) -> None:
    payload = {
        "state": asdict(state),
        "model": model.state_dict(),
        "best_model": best_weights,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "fingerprint": fingerprint or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _resume(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, fingerprint: dict | None
) -> tuple[TrainingState, dict]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise EggError(f"training state {path} could not be read ({type(err).__name__}); delete it to start over") from err
    saved = payload.get("fingerprint", {})
    for key, value in (fingerprint or {}).items():
        if key in saved and saved[key] != value:
            raise EggError(
                f"training state {path} was written with a different {key} ({_short(saved[key])}); "
                f"this run has {_short(value)}: use a new run folder or the original settings"
            )
    load_state_strict(model, payload["model"], f"training state {path}")
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    _set_rng_state(payload["rng"])
    return TrainingState(**payload["state"]), payload["best_model"]


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
