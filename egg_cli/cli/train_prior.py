"""``egg train-prior``: train a diffusion prior on natural image crops (see docs/prior.md)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from egg_cli.cli.app import command, run_dir


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train or resume a prior in the run folder; returns the summary."""
    from egg_cli.diffusion.training import train_prior

    return train_prior(cfg, run_dir())


main = command("train_prior", staged=False)(run)  # its checkpoint.pt is what a run resumes from
