"""Run another egg command in this process, into a chosen run folder (used by `egg demo`).

A stage composes ``configs/<command>.yaml`` with overrides exactly as the command line would,
points the Hydra run folder at ``out_dir``, writes the resolved ``config.yaml`` there and calls
the command's library entry ``task(cfg)`` (the caller passes it, so workflows never import the CLI). The run folder therefore looks like one made by
``egg <command> ... hydra.run.dir=<out_dir>``. The caller's own Hydra state (its run folder) is
restored afterwards.

A finished stage leaves ``stage.json`` (its summary and time) beside its ``config.yaml``, written
last; a stage whose folder holds both, with the same resolved config, is not run again, so a
killed workflow rerun into the same folder continues with the first unfinished stage (a caller
passes ``rerun=True`` to the stages whose inputs were made again).
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
from egg_cli.io import atomic_path, write_json

STAGE_RECORD = "stage.json"

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage returned and how long it took."""

    command: str
    out_dir: Path
    summary: dict[str, Any]
    seconds: float  # wall time
    cpu_seconds: float  # CPU time of this process (all threads) during the stage
    resumed: bool = False  # True: finished by an earlier run (its summary and time are from then)


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


def run_stage(command: str, task: Task, overrides: Sequence[str], out_dir: str | Path, rerun: bool = False) -> StageResult:
    """Run ``egg <command> <overrides>`` in-process, as ``task(cfg)``, with its run folder at ``out_dir``.

    Unless ``rerun`` (an input of the stage was made again), a stage that finished earlier in
    ``out_dir`` with the same config is not run again (:func:`finished_stage`).
    """
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
    config_text = OmegaConf.to_yaml(task_cfg, resolve=True)
    finished = None if rerun else finished_stage(command, out_dir, config_text)
    if finished is not None:
        log.info("stage egg %s -> %s finished earlier; not run again", command, out_dir)
        return finished
    HydraConfig.instance().set_config(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STAGE_RECORD).unlink(missing_ok=True)
    log.info("stage egg %s %s -> %s", command, " ".join(overrides), out_dir)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        with atomic_path(out_dir / "config.yaml") as tmp:
            tmp.write_text(config_text)
        summary = task(task_cfg)
    finally:
        if previous is not None:
            HydraConfig.instance().cfg = previous
    result = StageResult(command, out_dir, dict(summary or {}), time.perf_counter() - start, time.process_time() - cpu_start)
    record = {"command": command, "summary": result.summary, "seconds": result.seconds, "cpu_seconds": result.cpu_seconds}
    write_json(out_dir / STAGE_RECORD, record)
    return result


def finished_stage(command: str, out_dir: Path, config_text: str) -> StageResult | None:
    """The result an earlier run recorded in ``out_dir`` for this exact config, or None (run it).

    Configs are compared without ``progress`` (how a run shows its loops does not change its results).
    """
    import json

    record_path, config_path = out_dir / STAGE_RECORD, out_dir / "config.yaml"
    if not (record_path.is_file() and config_path.is_file()):
        return None
    if _without_progress(config_path.read_text()) != _without_progress(config_text):
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("command") != command:
        return None
    return StageResult(
        command, out_dir, dict(record.get("summary") or {}), float(record["seconds"]), float(record["cpu_seconds"]), True
    )


def _without_progress(config_text: str) -> Any:
    """A resolved config without its ``progress`` key, for comparing two runs' settings."""
    cfg = OmegaConf.to_container(OmegaConf.create(config_text), resolve=False)
    cfg.pop("progress", None)
    return cfg


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
