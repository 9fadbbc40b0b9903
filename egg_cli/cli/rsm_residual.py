"""``egg rsm residual``: searchlight maps of what each layer's RDM adds beyond all other layers."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from egg_cli.cli.app import command, run_dir
from egg_cli.rsm.pipeline import run_mapping
from egg_cli.rsm.settings import MappingSettings
from egg_cli.runtime import plain, resolve_device, seed_everything


def run(cfg: DictConfig) -> dict[str, Any]:
    """Residualized layer RDMs, then the same outputs as ``rsm map``."""
    seed_everything(int(cfg.seed))
    settings = MappingSettings.from_mapping(plain(cfg))
    return run_mapping(settings, run_dir(), resolve_device(str(cfg.device)), residual=True)


main = command("rsm_residual")(run)
