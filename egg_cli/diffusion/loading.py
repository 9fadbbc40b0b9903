"""``load_prior``: one entry point for every diffusion prior egg knows.

- ``default``: the small prior shipped in the package (``egg_cli/diffusion/weights/default.pt``),
  trained on crops of the bundled photographs;
- ``mixed``: the shipped prior of the V4-like world's images (``weights/mixed.pt``: half
  photograph crops, half dead-leaves images);
- ``spectral``: the Gaussian 1/f^a prior fitted to images of a source (bundled photograph crops by default);
- ``adm256``: OpenAI's ``256x256_diffusion_uncond.pt`` (option ``checkpoint``);
- a path to an ``egg train-prior`` checkpoint (``prior.pt`` or ``checkpoint.pt``), or to any
  guided-diffusion state dict together with its ``flags``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from egg_cli.diffusion.checkpoint import is_egg_checkpoint, load_weights, read_checkpoint
from egg_cli.diffusion.config import DiffusionConfig, UNetConfig
from egg_cli.diffusion.gaussian import GaussianDiffusion
from egg_cli.diffusion.prior import LearnedPrior, Prior
from egg_cli.diffusion.unet import UNetModel
from egg_cli.errors import EggError
from egg_cli.runtime import resolve_device

WEIGHTS = Path(__file__).parent / "weights"
SHIPPED_PRIORS = {"default": WEIGHTS / "default.pt", "mixed": WEIGHTS / "mixed.pt"}  # name -> egg train-prior file
DEFAULT_WEIGHTS = SHIPPED_PRIORS["default"]

# guided-diffusion flags of 256x256_diffusion_uncond.pt (the EGG paper's prior)
ADM256_FLAGS: dict[str, Any] = {
    "image_size": 256,
    "num_channels": 256,
    "num_res_blocks": 2,
    "num_heads": 4,
    "num_heads_upsample": -1,
    "num_head_channels": 64,
    "attention_resolutions": "32,16,8",
    "channel_mult": "",
    "dropout": 0.0,
    "class_cond": False,
    "use_scale_shift_norm": True,
    "resblock_updown": True,
    "use_new_attention_order": False,
    "learn_sigma": True,
    "diffusion_steps": 1000,
    "noise_schedule": "linear",
    "predict_xstart": False,
    "rescale_timesteps": False,
}
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return resolve_device("auto")
    return device if isinstance(device, torch.device) else resolve_device(str(device))


def _blocks_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on a GPU (as the paper), fp32 on the CPU; half precision is ignored on the CPU."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise EggError(f"prior precision={precision!r} is unknown; expected auto, {', '.join(PRECISIONS)}")
    return PRECISIONS[precision] if device.type == "cuda" else torch.float32


def build_unet_prior(
    flags: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    source: str,
    steps: str,
    device: torch.device,
    precision: str = "auto",
    clip_denoised: bool = False,
    x0_mse: Any = None,
) -> LearnedPrior:
    """A prior from guided-diffusion flags and a state dict, without a second copy of the weights:
    the UNet is built on the meta device and takes the (memory-mapped) tensors by assignment."""
    unet_config = UNetConfig.from_flags(flags)
    with torch.device("meta"):
        model = UNetModel(unet_config)
    flag_text = ", ".join(
        f"{k}={flags[k]}"
        for k in ("image_size", "num_channels", "num_res_blocks", "channel_mult", "attention_resolutions", "learn_sigma")
        if k in flags
    )
    load_weights(model, state, source, flag_text)
    dtype = _blocks_dtype(precision, device)
    model = model.to(device)
    if dtype != torch.float32:
        model.convert_blocks(dtype)
    diffusion = GaussianDiffusion(DiffusionConfig.from_flags(flags), str(steps), x0_mse=x0_mse)
    return LearnedPrior(
        model, diffusion, unet_config.image_size, unet_config.in_channels, device, clip_denoised=clip_denoised, name=source
    )


def _egg_checkpoint_prior(
    ckpt: Mapping[str, Any], source: str, steps: str, device: torch.device, precision: str, clip_denoised: bool
) -> LearnedPrior:
    for key in ("unet", "diffusion", "ema"):
        if key not in ckpt:
            raise EggError(f"prior checkpoint {source} has no {key!r} entry; expected a file written by egg train-prior")
    flags = {**ckpt["diffusion"], **ckpt["unet"]}
    return build_unet_prior(flags, ckpt["ema"], source, steps, device, precision, clip_denoised, ckpt.get("x0_mse"))


def prior_file(name_or_path: str) -> Path:
    """The file of a shipped prior (``default``, ``mixed``) or of a checkpoint path (a run folder: its prior.pt)."""
    name = str(name_or_path)
    if name in SHIPPED_PRIORS:
        path = SHIPPED_PRIORS[name]
        if not path.is_file():
            raise EggError(
                f"the {name} prior's weights {path} are missing from the installation; reinstall egg or use prior=spectral"
            )
        return path
    path = Path(name).expanduser()
    if path.is_dir():
        path = path / "prior.pt"
    if not path.is_file():
        raise EggError(f"prior {name!r} is neither {', '.join(SHIPPED_PRIORS)}, spectral, adm256 nor an existing checkpoint file")
    return path


def load_prior(
    name_or_path: str = "default", steps: str | int = "50", device: str | torch.device | None = "auto", **options: Any
) -> Prior:
    """Load a diffusion prior respaced to ``steps`` ("50", "ddim25", "10,20", ...).

    Options: ``checkpoint`` (adm256: path of 256x256_diffusion_uncond.pt), ``flags``
    (guided-diffusion flags for a plain state-dict file), ``precision`` (auto | fp32 | fp16 |
    bf16; auto runs adm256 in fp16 on a GPU), ``clip_denoised`` (clamp x0 predictions to
    [-1, 1]; default off, as EGG), and for ``spectral``: ``image_size`` (32), ``channels`` (1),
    ``source`` (bundled, dead_leaves, mixed or an image folder), ``fit_crops`` (2000), ``noise_schedule`` (cosine).
    """
    dev = _device(device)
    steps = str(steps)
    name = str(name_or_path)
    opts = dict(options)
    precision = str(opts.pop("precision", "auto"))
    clip = bool(opts.pop("clip_denoised", False))
    if name == "spectral":
        from egg_cli.diffusion.spectral import SpectralPrior, fitted_to_source

        source = opts.pop("source", "bundled")
        model = fitted_to_source(
            "bundled" if source is None else str(source),
            int(opts.pop("image_size", 32)),
            int(opts.pop("channels", 1)),
            int(opts.pop("fit_crops", 2000)),
            int(opts.pop("seed", 0)),
        )
        prior: Prior = SpectralPrior.from_config(model, steps, dev, str(opts.pop("noise_schedule", "cosine")))
    elif name == "adm256":
        path = opts.pop("checkpoint", None)
        if path in (None, ""):
            raise EggError(
                "prior adm256 needs OpenAI's 256x256_diffusion_uncond.pt: set prior.checkpoint=/path/to/256x256_diffusion_uncond.pt"
            )
        if not Path(str(path)).is_file():
            raise EggError(f"prior.checkpoint={path} does not exist; expected the path of OpenAI's 256x256_diffusion_uncond.pt")
        state = read_checkpoint(path, "adm256 checkpoint")
        prior = build_unet_prior(ADM256_FLAGS, state, str(path), steps, dev, precision, clip)
    else:
        path = prior_file(name)
        ckpt = read_checkpoint(path)
        flags = opts.pop("flags", None)
        if is_egg_checkpoint(ckpt):
            prior = _egg_checkpoint_prior(ckpt, str(path), steps, dev, precision, clip)
        elif flags is not None:
            state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
            prior = build_unet_prior(dict(flags), state, str(path), steps, dev, precision, clip)
        else:
            raise EggError(
                f"prior checkpoint {path} was not written by egg train-prior; pass its guided-diffusion flags "
                "(+prior.flags={image_size: ..., num_channels: ..., ...})"
            )
    if opts:
        raise EggError(f"load_prior({name!r}) got unknown options {sorted(opts)}")
    return prior


def prior_config(name_or_path: str = "default", **options: Any) -> dict[str, Any]:
    """A prior's config as ``configs/prior/*.yaml`` writes it (for library use of EGG and ``generator=prior``)."""
    return {"_target_": f"{__name__}.load_prior", "name_or_path": str(name_or_path), **options}


def build_prior(config: Any, steps: str | int, device: str | torch.device | None, key: str) -> Prior:
    """The prior of a ``configs/prior/*.yaml`` entry (a mapping with ``_target_``), respaced to ``steps``.

    ``key`` names where the config came from (``method.prior``, ``generator.prior``) in the one-line
    error a bare name gets: priors are chosen with ``prior=default|mixed|spectral|adm256``.
    """
    if not isinstance(config, Mapping) or "_target_" not in config:
        raise EggError(
            f"{key}={config!r}: expected the prior group's config; choose the prior with prior=default|mixed|spectral|adm256 "
            "(a checkpoint: prior.name_or_path=<path>)"
        )
    from hydra.utils import instantiate

    return instantiate(config, steps=str(steps), device=device)
