"""``egg rsm map``: searchlight RSA of NIfTI patterns against network layer RDMs."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from egg_cli.cli.app import command, run_dir
from egg_cli.rsm.pipeline import run_mapping
from egg_cli.rsm.settings import MappingSettings
from egg_cli.runtime import plain, resolve_device, seed_everything


def run(cfg: DictConfig) -> dict[str, Any]:
    """Layer maps, best-layer map, permutation test, overlaps (and recovery with truth=...)."""
    seed_everything(int(cfg.seed))
    settings = MappingSettings.from_mapping(plain(cfg))
    return run_mapping(settings, run_dir(), resolve_device(str(cfg.device)))


main = command("rsm_map")(run)
