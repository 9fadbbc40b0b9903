"""Turn a library function into a Hydra command with egg's conventions.

Every command composes ``configs/<name>.yaml``; runs in a Hydra run folder that receives the
resolved config as ``config.yaml``; turns :class:`~egg_cli.errors.EggError` into one line on
stderr and exit code 2 (a traceback only with ``debug=true`` or ``HYDRA_FULL_ERROR=1``); and
removes the run folder of a run that failed on bad input, so nothing half-written remains.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from egg_cli.errors import EggError

log = logging.getLogger("egg")

CONFIG_DIR = Path(os.environ.get("EGG_CONFIG_DIR", Path(__file__).resolve().parents[2] / "configs"))

# Set once a task function starts: a Hydra exit before that is a config or override error.
task_started = False


def run_dir() -> Path:
    """The current Hydra run (or multirun job) folder."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def debug_requested(cfg: DictConfig | None = None) -> bool:
    """True when the user asked for tracebacks (``debug=true`` or ``HYDRA_FULL_ERROR=1``)."""
    env = os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("EGG_DEBUG") == "1"
    return env or bool(cfg is not None and cfg.get("debug", False))


def fail(message: str) -> None:
    """Print one error line and exit with code 2."""
    print(f"egg: error: {message}", file=sys.stderr)
    sys.exit(2)


def command(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Decorate ``task(cfg)`` as the Hydra app for ``configs/<config_name>.yaml``."""
    import hydra

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def wrapped(cfg: DictConfig) -> Any:
            global task_started
            task_started = True
            out = run_dir()
            fresh = _is_fresh(out)
            try:
                _write_resolved_config(cfg, out)
                return task(cfg)
            except EggError as err:
                if debug_requested(cfg):
                    raise
                if fresh:
                    shutil.rmtree(out, ignore_errors=True)
                fail(str(err))
            except KeyboardInterrupt:
                print("egg: interrupted; checkpoints written so far are kept", file=sys.stderr)
                sys.exit(130)

        return hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(wrapped)

    return decorate


def _is_fresh(out: Path) -> bool:
    """True when the run folder holds only what Hydra wrote at start (a new run, not a resume)."""
    return all(p.name == ".hydra" or p.suffix == ".log" for p in out.iterdir()) if out.exists() else True


def _write_resolved_config(cfg: DictConfig, out: Path) -> None:
    from egg_cli.io import atomic_path

    try:
        text = OmegaConf.to_yaml(cfg, resolve=True)
    except Exception as err:  # an interpolation that cannot resolve is a config error
        raise EggError(f"config does not resolve: {err}") from err
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(text)
