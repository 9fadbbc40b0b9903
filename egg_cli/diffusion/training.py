"""Training a diffusion prior on natural image crops (``egg train-prior``).

One run folder holds everything: ``checkpoint.pt`` (weights, EMA, optimizer, step and random
state: a run resumes from it), ``prior.pt`` (EMA weights only, what ``load_prior`` reads),
``metrics.csv``, PNG grids of samples at intervals and ``summary.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from egg_cli.diffusion.calibration import x0_mse_table
from egg_cli.diffusion.checkpoint import FORMAT, export_prior, read_checkpoint, state_dict_differences
from egg_cli.diffusion.config import DiffusionConfig, UNetConfig
from egg_cli.diffusion.data import CropBank
from egg_cli.diffusion.ema import EMA
from egg_cli.diffusion.figures import save_image_grid, save_training_curves
from egg_cli.diffusion.gaussian import GaussianDiffusion
from egg_cli.diffusion.prior import LearnedPrior
from egg_cli.diffusion.spectrum import spectral_slope
from egg_cli.diffusion.unet import UNetModel
from egg_cli.diffusion.validation import denoising_loss
from egg_cli.errors import EggError
from egg_cli.io import atomic_path, write_csv, write_json
from egg_cli.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)


@dataclass
class PriorSpec:
    """Architecture of a prior: UNet flags, diffusion flags, image size and channels."""

    unet: UNetConfig
    diffusion: DiffusionConfig

    @property
    def image_size(self) -> int:
        return self.unet.image_size

    @property
    def channels(self) -> int:
        return self.unet.in_channels

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "unet": self.unet.to_dict(),
            "diffusion": self.diffusion.to_dict(),
            "image_size": self.image_size,
            "channels": self.channels,
        }


def spec_from_config(cfg: DictConfig) -> PriorSpec:
    """Build the prior's architecture from the ``data``, ``unet`` and ``diffusion`` sections."""
    unet_flags = dict(OmegaConf.to_container(cfg.unet, resolve=True))
    diff_flags = dict(OmegaConf.to_container(cfg.diffusion, resolve=True))
    unet_flags.update(
        image_size=int(cfg.data.image_size),
        in_channels=int(cfg.data.channels),
        learn_sigma=bool(diff_flags.get("learn_sigma", True)),
    )
    diff_flags["timestep_respacing"] = ""
    return PriorSpec(UNetConfig.from_flags(unet_flags), DiffusionConfig.from_flags(diff_flags))


def build_learned_prior(
    spec: PriorSpec,
    weights: dict,
    respacing: str,
    device: torch.device,
    clip_denoised: bool = False,
    name: str = "",
    x0_mse: Any = None,
) -> LearnedPrior:
    """A :class:`LearnedPrior` from an architecture and its (EMA) weights."""
    model = UNetModel(spec.unet)
    model.load_state_dict(weights, strict=True)
    return LearnedPrior(
        model.to(device),
        GaussianDiffusion(spec.diffusion, respacing, x0_mse=x0_mse),
        spec.image_size,
        spec.channels,
        device,
        clip_denoised=clip_denoised,
        name=name,
    )


def _resume_path(resume: Any, out_dir: Path) -> Path | None:
    if resume in (None, False, "none", "false"):
        return None
    if resume in (True, "auto"):
        path = out_dir / "checkpoint.pt"
        return path if path.exists() else None
    path = Path(str(resume))
    path = path / "checkpoint.pt" if path.is_dir() else path
    if not path.is_file():
        raise EggError(f"resume={resume}: no checkpoint at {path}; expected a checkpoint.pt or a train-prior run folder")
    return path


def _lr_at(step: int, lr: float, warmup: int) -> float:
    return lr * min(1.0, (step + 1) / max(1, warmup))


def _check_settings(cfg: DictConfig) -> None:
    """One line for the first training setting out of range."""
    tr = cfg.training
    for key in ("steps", "batch_size"):
        if int(tr[key]) < 1:
            raise EggError(f"training.{key}={tr[key]} must be a positive integer")
    if not float(tr.lr) > 0 or not float(tr.weight_decay) >= 0 or not 0 <= float(tr.ema_decay) < 1:
        raise EggError(
            f"training.lr={tr.lr}, weight_decay={tr.weight_decay}, ema_decay={tr.ema_decay}: "
            "expected lr > 0, weight_decay >= 0 and 0 <= ema_decay < 1"
        )
    if int(cfg.data.heldout) < 1:
        raise EggError(f"data.heldout={cfg.data.heldout} must be a positive integer (held-out images for the denoising loss)")
    for key in ("log_every", "checkpoint_every", "sample_count"):
        if int(cfg[key]) < 1:
            raise EggError(f"{key}={cfg[key]} must be a positive integer")


def _check_flags(ckpt: Any, spec: PriorSpec, model: UNetModel, key: str, what: str, instead: str) -> None:
    """One line for a checkpoint whose flags or ``key`` weights do not fit this run's architecture."""
    if not isinstance(ckpt, dict) or key not in ckpt:
        raise EggError(f"{what} has no {key!r} weights; expected a file written by egg train-prior")
    if ckpt.get("unet") != spec.unet.to_dict() or ckpt.get("diffusion") != spec.diffusion.to_dict():
        diffs = [
            f"{k}: {ckpt.get(s, {}).get(k)!r} vs {v!r}"
            for s, d in (("unet", spec.unet.to_dict()), ("diffusion", spec.diffusion.to_dict()))
            for k, v in d.items()
            if ckpt.get(s, {}).get(k) != v
        ]
        raise EggError(
            f"{what} was trained with other flags ({'; '.join(diffs)}); use the same unet/diffusion settings or {instead}"
        )
    diffs = state_dict_differences(model, ckpt[key])
    if diffs:
        raise EggError(f"{what} does not fit the UNet: {'; '.join(diffs)}")


def _initialize(init: Any, spec: PriorSpec, model: UNetModel) -> str | None:
    """Start ``model`` from the EMA weights of a prior (``init``: a shipped name, prior.pt, checkpoint.pt or a
    run folder) of the same flags: fine-tuning on new images. Returns what it started from, recorded in the
    checkpoints: the shipped prior's name or the file's path (None: random initialization)."""
    if init in (None, False, "none", "null", ""):
        return None
    from egg_cli.diffusion.loading import SHIPPED_PRIORS, prior_file

    path = prior_file(str(init))
    ckpt = read_checkpoint(path, "init checkpoint")
    _check_flags(ckpt, spec, model, "ema", f"init={init} ({path})", "init=none")
    model.load_state_dict(ckpt["ema"])
    log.info("initialized from the EMA weights of %s (step %s)", path, ckpt.get("step", "?"))
    return str(init) if str(init) in SHIPPED_PRIORS else str(path)


def _resume(
    path: Path, spec: PriorSpec, model: UNetModel, ema: EMA, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> tuple[int, list[dict[str, Any]], float, Any, str | None]:
    """Load a training checkpoint of the same flags into model, EMA, optimizer and data generator.

    Returns (step, metrics, seconds trained so far, x0_mse calibration table, the run's init file).
    """
    ckpt = read_checkpoint(path, "resume checkpoint")
    _check_flags(ckpt, spec, model, "model", f"resume checkpoint {path}", "resume=none")
    model.load_state_dict(ckpt["model"])
    ema.load_state_dict({"updates": ckpt["ema_updates"], "weights": ckpt["ema"]})
    optimizer.load_state_dict(ckpt["optimizer"])
    generator.set_state(ckpt["generator"])
    log.info("resumed from %s at step %d", path, int(ckpt["step"]))
    return (
        int(ckpt["step"]),
        list(ckpt.get("metrics", [])),
        float(ckpt.get("elapsed_s", 0.0)),
        ckpt.get("x0_mse"),
        ckpt.get("init"),
    )


def _crop_bank(cfg: DictConfig, spec: PriorSpec, out_dir: Path) -> tuple[CropBank, CropBank, float]:
    """The training images (``cfg.data``), held-out images of the same source (another seed),
    the training images' spectral slope, and crops.png."""
    data = cfg.data
    t0 = time.time()
    bank = CropBank(
        str(data.source), int(data.bank_size), spec.image_size, spec.channels, tuple(data.scale_range), seed=int(cfg.seed)
    )
    crop_slope = spectral_slope(bank.sample(256, seed=int(cfg.seed)))
    log.info(
        "crop bank: %d crops of %dx%d in %.1fs; crop spectral slope %.3f",
        len(bank),
        spec.image_size,
        spec.image_size,
        time.time() - t0,
        crop_slope,
    )
    save_image_grid(bank.sample(64, seed=int(cfg.seed)), out_dir / "crops.png", nrow=8)
    heldout = CropBank(
        str(data.source), int(data.heldout), spec.image_size, spec.channels, tuple(data.scale_range), seed=int(cfg.seed) + 1
    )
    return bank, heldout, crop_slope


def _train_step(
    model: UNetModel,
    ema: EMA,
    optimizer: torch.optim.Optimizer,
    diffusion: GaussianDiffusion,
    x: torch.Tensor,
    generator: torch.Generator,
    tr: DictConfig,
    step: int,
    device: torch.device,
) -> dict[str, float]:
    """One optimizer step on the batch ``x`` (timesteps and noise from ``generator``); its loss terms."""
    t = torch.randint(diffusion.num_timesteps, (x.shape[0],), generator=generator).to(device)
    noise = torch.randn(x.shape, generator=generator).to(device)
    for group in optimizer.param_groups:
        group["lr"] = _lr_at(step, float(tr.lr), int(tr.warmup_steps))
    terms = diffusion.training_losses(model, x, t, noise, str(tr.weighting), float(tr.min_snr_gamma))
    loss = terms["loss"].mean()
    if not torch.isfinite(loss):
        raise EggError(f"training loss became {loss.item()} at step {step}; lower training.lr (now {tr.lr}) or check the images")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float(tr.grad_clip))
    optimizer.step()
    ema.update(model)
    return {
        "loss": loss.item(),
        "mse": terms["mse"].mean().item(),
        "vb": terms["vb"].mean().item() if "vb" in terms else 0.0,
        "grad_norm": float(grad_norm),
    }


def train_prior(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Train (or resume) a diffusion prior as configured; returns the summary."""
    tr = cfg.training
    if int(cfg.get("threads", 0)) > 0:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(str(cfg.device))
    seed_everything(int(cfg.seed))
    spec = spec_from_config(cfg)
    _check_settings(cfg)
    model = UNetModel(spec.unet)
    resume = _resume_path(cfg.get("resume", "auto"), out_dir)
    init = _initialize(cfg.get("init"), spec, model) if resume is None else None
    model = model.to(device)
    ema = EMA(model, float(tr.ema_decay), bool(tr.ema_warmup))
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(tr.lr), weight_decay=float(tr.weight_decay))
    diffusion = GaussianDiffusion(spec.diffusion, "")
    generator = torch.Generator().manual_seed(int(cfg.seed))
    step, metrics, elapsed_before = 0, [], 0.0
    x0_mse = None  # calibration table of the EMA weights (fixed-variance priors), refreshed with each sample grid

    if resume is not None:
        step, metrics, elapsed_before, x0_mse, init = _resume(resume, spec, model, ema, optimizer, generator)

    data = cfg.data
    bank, heldout, crop_slope = _crop_bank(cfg, spec, out_dir)

    total = int(tr.steps)
    start_time = time.time()
    window: list[dict[str, float]] = []

    def elapsed() -> float:
        return elapsed_before + time.time() - start_time

    def save_checkpoint() -> None:
        ckpt = {
            **spec.to_dict(),
            "model": model.state_dict(),
            "ema": ema.shadow.state_dict(),
            "ema_updates": ema.updates,
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "step": step,
            "metrics": metrics,
            "elapsed_s": elapsed(),
            "x0_mse": x0_mse,
            "config": OmegaConf.to_container(cfg, resolve=True),
            "data": {"source": str(data.source), "scale_range": list(data.scale_range), "crop_slope": crop_slope},
            "init": init,
        }
        with atomic_path(out_dir / "checkpoint.pt") as tmp:
            torch.save(ckpt, tmp)
        export_prior(ckpt, out_dir / "prior.pt")

    calibrate = bool(cfg.get("calibrate_variance", True)) and not spec.diffusion.learn_sigma

    def sample_grid() -> dict[str, float]:
        nonlocal x0_mse
        if calibrate:
            crops = bank.sample(int(cfg.get("calibration_crops", 64)), seed=int(cfg.seed) + 1).to(device)
            x0_mse = x0_mse_table(
                ema.shadow, diffusion, crops, str(cfg.get("calibration_grid", "25")), seed=int(cfg.seed)
            ).tolist()
        prior = build_learned_prior(
            spec, ema.shadow.state_dict(), str(cfg.sample_steps), device, clip_denoised=bool(cfg.clip_denoised), x0_mse=x0_mse
        )
        samples = prior.sample(int(cfg.sample_count), seed=int(cfg.seed))
        save_image_grid(samples, out_dir / f"samples_{step:06d}.png")
        held = denoising_loss(ema.shadow, diffusion, heldout.all(), str(tr.weighting), float(tr.min_snr_gamma), 20, seed=0)
        return {"sample_slope": spectral_slope(samples), "heldout_loss": held["loss"], "heldout_x0_mse": held["x0_mse"]}

    model.train()
    bar = tqdm(total=total, initial=step, desc="train-prior", disable=not cfg.progress, dynamic_ncols=True)
    while step < total:
        x = bank.batch(int(tr.batch_size), generator, flip=bool(data.flip)).to(device)
        window.append(_train_step(model, ema, optimizer, diffusion, x, generator, tr, step, device))
        step += 1
        bar.update(1)
        sample_now = int(cfg.sample_every) > 0 and (step % int(cfg.sample_every) == 0 or step == total)
        if step % int(cfg.log_every) == 0 or sample_now or step == total:
            row = {
                "step": step,
                "elapsed_s": round(elapsed(), 1),
                "lr": optimizer.param_groups[0]["lr"],
                **{k: sum(w[k] for w in window) / len(window) for k in window[0]},
            }
            window = []
            if sample_now:
                row.update(sample_grid(), crop_slope=crop_slope)
            metrics.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            log.info("step %d  %s", step, "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "step"))
            write_csv(out_dir / "metrics.csv", metrics)
        if step % int(cfg.checkpoint_every) == 0 or step == total:
            save_checkpoint()
    bar.close()
    if metrics:
        save_training_curves(metrics, out_dir / "training.png")
    last = metrics[-1] if metrics else {}
    summary = {
        "steps": step,
        "elapsed_s": round(elapsed(), 1),
        "final_loss": last.get("loss"),
        "sample_slope": next((m["sample_slope"] for m in reversed(metrics) if "sample_slope" in m), None),
        "crop_slope": crop_slope,
        "heldout_loss": next((m["heldout_loss"] for m in reversed(metrics) if "heldout_loss" in m), None),
        "parameters": sum(p.numel() for p in model.parameters()),
        "images_per_s": round(step * int(tr.batch_size) / max(elapsed(), 1e-9), 2),
        "prior": str(out_dir / "prior.pt"),
        "status": "finished",
    }
    write_json(out_dir / "summary.json", summary)
    return summary
