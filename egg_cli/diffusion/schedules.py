"""Noise schedules and timestep respacing with guided-diffusion's semantics."""

from __future__ import annotations

import math

import numpy as np

from egg_cli.errors import EggError

SCHEDULES = ("linear", "cosine")


def beta_schedule(name: str, num_steps: int) -> np.ndarray:
    """Betas (float64) of the ``linear`` (DDPM, scaled to ``num_steps``) or ``cosine`` (IDDPM) schedule."""
    if name == "linear":
        scale = 1000 / num_steps
        return np.linspace(scale * 0.0001, scale * 0.02, num_steps, dtype=np.float64)
    if name == "cosine":

        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return np.array(
            [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), 0.999) for i in range(num_steps)],
            dtype=np.float64,
        )
    raise EggError(f"noise_schedule={name!r} is unknown; expected one of {', '.join(SCHEDULES)}")


def space_timesteps(num_timesteps: int, section_counts: str | int) -> list[int]:
    """The original timesteps kept by a respacing string, sorted.

    ``"50"``: 50 steps spread evenly (rounded fractional stride); ``"10,20"``: the steps are
    cut into equal sections with 10 and 20 steps; ``"ddim25"``: the integer stride that gives
    exactly 25 steps (DDIM paper); ``""``: all steps.
    """
    text = str(section_counts).strip()
    if text == "":
        return list(range(num_timesteps))
    if text.startswith("ddim"):
        try:
            desired = int(text[4:])
        except ValueError as err:
            raise EggError(f"respacing {text!r}: expected ddimN with an integer N") from err
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == desired:
                return list(range(0, num_timesteps, stride))
        raise EggError(f"respacing {text!r}: no integer stride gives exactly {desired} of {num_timesteps} steps")
    try:
        counts = [int(v) for v in text.split(",")]
    except ValueError as err:
        raise EggError(f"respacing {text!r} is not a step count, a comma-separated list of counts or ddimN") from err
    size_per, extra = divmod(num_timesteps, len(counts))
    start, steps = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if count < 1 or size < count:
            raise EggError(f"respacing {text!r}: cannot take {count} steps from a section of {size} steps")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            steps.append(start + round(cur))
            cur += stride
        start += size
    return sorted(set(steps))


def respaced_betas(alphas_cumprod: np.ndarray, use_timesteps: list[int]) -> np.ndarray:
    """Betas of the chain that visits only ``use_timesteps`` with the same cumulative alphas."""
    keep = set(use_timesteps)
    betas, last = [], 1.0
    for i, ac in enumerate(alphas_cumprod):
        if i in keep:
            betas.append(1 - ac / last)
            last = ac
    return np.array(betas, dtype=np.float64)
