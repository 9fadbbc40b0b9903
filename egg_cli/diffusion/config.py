"""The flags of guided-diffusion's ``create_model`` and ``create_gaussian_diffusion`` as dataclasses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from egg_cli.errors import EggError

# create_model's channel multipliers when channel_mult="" (by image size)
DEFAULT_CHANNEL_MULT = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}


def _parse_ints(text: str | int | list | tuple, name: str) -> tuple[float, ...]:
    if isinstance(text, (list, tuple)):
        return tuple(text)
    if isinstance(text, int):
        return (text,)
    try:
        return tuple(float(v) if "." in v else int(v) for v in str(text).split(",") if v.strip())
    except ValueError as err:
        raise EggError(f"{name}={text!r} is not a comma-separated list of numbers") from err


@dataclass
class UNetConfig:
    """ADM UNet flags, named as in guided-diffusion's ``model_and_diffusion_defaults``."""

    image_size: int = 32
    num_channels: int = 32
    num_res_blocks: int = 1
    channel_mult: str = ""
    attention_resolutions: str = "8"
    num_heads: int = 4
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    use_new_attention_order: bool = False
    learn_sigma: bool = True
    class_cond: bool = False
    num_classes: int = 1000
    dropout: float = 0.0
    in_channels: int = 3

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)

    @property
    def channel_mult_tuple(self) -> tuple[float, ...]:
        if self.channel_mult in ("", None):
            if self.image_size not in DEFAULT_CHANNEL_MULT:
                raise EggError(
                    f"channel_mult is empty and image_size={self.image_size} has no ADM default; expected e.g. channel_mult='1,2,2'"
                )
            return DEFAULT_CHANNEL_MULT[self.image_size]
        return _parse_ints(self.channel_mult, "channel_mult")

    @property
    def attention_downsample_rates(self) -> set[int]:
        """Downsampling factors at which attention runs (``image_size // resolution``)."""
        return {self.image_size // int(r) for r in _parse_ints(self.attention_resolutions, "attention_resolutions")}

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any]) -> UNetConfig:
        """Build from guided-diffusion flags; keys that do not concern the UNet are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in dict(flags).items() if k in names}
        for key in ("channel_mult", "attention_resolutions"):
            if key in kwargs and isinstance(kwargs[key], (list, tuple)):
                kwargs[key] = ",".join(str(v) for v in kwargs[key])
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise EggError on flags that cannot build a UNet."""
        if self.num_channels < 1 or self.num_res_blocks < 1:
            raise EggError(f"num_channels={self.num_channels}, num_res_blocks={self.num_res_blocks}: expected positive integers")
        if self.image_size < 8 or self.image_size % 2 ** (len(self.channel_mult_tuple) - 1):
            raise EggError(
                f"image_size={self.image_size} is not divisible by 2^{len(self.channel_mult_tuple) - 1} "
                f"(one halving per channel_mult level after the first)"
            )
        for m in self.channel_mult_tuple:
            if int(m * self.num_channels) % 32:
                raise EggError(
                    f"num_channels={self.num_channels} x channel_mult {m} is not a multiple of 32 (group norm uses 32 groups)"
                )
        if self.num_head_channels != -1 and any(
            int(m * self.num_channels) % self.num_head_channels for m in self.channel_mult_tuple
        ):
            raise EggError(f"num_head_channels={self.num_head_channels} does not divide every level's channel count")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class DiffusionConfig:
    """Gaussian diffusion flags: schedule, parametrization, variance and respacing."""

    diffusion_steps: int = 1000
    noise_schedule: str = "linear"  # linear | cosine
    mean_type: str = "epsilon"  # epsilon | x0 | v
    learn_sigma: bool = True  # learned-range variance (else fixed, see sigma_small)
    sigma_small: bool = False  # fixed variance: posterior (small) or beta (large)
    timestep_respacing: str = ""
    rescale_timesteps: bool = False

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any]) -> DiffusionConfig:
        """Build from guided-diffusion flags (``predict_xstart`` maps to ``mean_type='x0'``)."""
        flags = dict(flags)
        mean_type = flags.get("mean_type") or ("x0" if flags.get("predict_xstart") else "epsilon")
        if int(flags.get("diffusion_steps", 1000)) < 2:
            raise EggError(f"diffusion_steps={flags['diffusion_steps']}: expected at least 2 noise levels")
        return cls(
            diffusion_steps=int(flags.get("diffusion_steps", 1000)),
            noise_schedule=str(flags.get("noise_schedule", "linear")),
            mean_type=str(mean_type),
            learn_sigma=bool(flags.get("learn_sigma", True)),
            sigma_small=bool(flags.get("sigma_small", False)),
            timestep_respacing=str(flags.get("timestep_respacing", "") or ""),
            rescale_timesteps=bool(flags.get("rescale_timesteps", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
