"""Run another egg command in this process, into a chosen run folder (used by `egg demo`).

A stage composes ``configs/<command>.yaml`` with overrides exactly as the command line would,
points the Hydra run folder at ``out_dir``, writes the resolved ``config.yaml`` there and calls
the command's library entry ``task(cfg)`` (the caller passes it, so workflows never import the CLI). The run folder therefore looks like one made by
``egg <command> ... hydra.run.dir=<out_dir>``. The caller's own Hydra state (its run folder) is
restored afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from egg_cli.errors import EggError
from egg_cli.io import atomic_path

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage returned and how long it took."""

    command: str
    out_dir: Path
    summary: dict[str, Any]
    seconds: float  # wall time
    cpu_seconds: float  # CPU time of this process (all threads) during the stage


def compose_stage(command: str, overrides: Sequence[str], out_dir: Path) -> DictConfig:
    """The config ``egg <command> <overrides> hydra.run.dir=<out_dir>`` would run with (hydra node kept)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from egg_cli.configs import CONFIG_MODULE

    overrides = [*overrides, f"hydra.run.dir={out_dir}"]
    try:
        if GlobalHydra.instance().is_initialized():
            return compose(config_name=command, overrides=overrides, return_hydra_config=True)
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name=command, overrides=overrides, return_hydra_config=True)
    except EggError:
        raise
    except Exception as err:  # Hydra's override and missing-config errors
        raise EggError(f"egg {command} {' '.join(overrides)}: the config does not compose ({err})") from err


Task = Callable[[DictConfig], Mapping[str, Any] | None]


def run_stage(command: str, task: Task, overrides: Sequence[str], out_dir: str | Path) -> StageResult:
    """Run ``egg <command> <overrides>`` in-process, as ``task(cfg)``, with its run folder at ``out_dir``."""
    from hydra.core.hydra_config import HydraConfig

    out_dir = Path(out_dir).absolute()
    cfg = compose_stage(command, overrides, out_dir)
    previous = HydraConfig.instance().cfg if HydraConfig.initialized() else None
    hydra_node = cfg.hydra
    with open_dict(hydra_node):
        hydra_node.runtime.output_dir = str(out_dir)
        hydra_node.job.name = command
    task_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    HydraConfig.instance().set_config(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("stage egg %s %s -> %s", command, " ".join(overrides), out_dir)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        with atomic_path(out_dir / "config.yaml") as tmp:
            tmp.write_text(OmegaConf.to_yaml(task_cfg, resolve=True))
        summary = task(task_cfg)
    finally:
        if previous is not None:
            HydraConfig.instance().cfg = previous
    return StageResult(command, out_dir, dict(summary or {}), time.perf_counter() - start, time.process_time() - cpu_start)


def override_value(value: Any) -> str:
    """Render a Python value in Hydra's override grammar (strings quoted, so paths may hold any character)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        text = str(value).replace("\\", "\\\\").replace("'", "\\'")
        return f"'{text}'"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_key(k)}:{override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    raise EggError(f"cannot pass {type(value).__name__} {value!r} as a config override; expected str, number, list or dict")


def _key(name: Any) -> str:
    text = str(name)
    if not text.replace("_", "").replace("-", "").isalnum():
        raise EggError(f"config key {text!r} must hold only letters, digits, '_' and '-'")
    return text
