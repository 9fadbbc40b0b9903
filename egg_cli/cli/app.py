"""Turn a library function into a Hydra command with egg's conventions.

Every command composes ``configs/<name>.yaml``; runs in a Hydra run folder that receives the
resolved config as ``config.yaml``; turns :class:`~egg_cli.errors.EggError` into one line on
stderr and exit code 2 (a traceback only with ``debug=true`` or ``HYDRA_FULL_ERROR=1``); and
removes the run folder of a run that failed on bad input, so nothing half-written remains.

In a sweep (``-m``) each job instead keeps its folder and records its status in ``job.json``
(:mod:`egg_cli.sweeps.jobs`): a failed job is reported after the other jobs have run, and a job
already finished with the same resolved config is skipped when the sweep runs again.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from egg_cli.configs import CONFIG_MODULE
from egg_cli.errors import EggError
from egg_cli.sweeps.jobs import SweepJob, error_line

log = logging.getLogger("egg")

# configs/hydra/launcher/submitit_*.yaml are meant to be checked against the plugin's schema of the same name.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore schema")


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
            job = SweepJob.current(out)  # None outside a sweep
            try:
                text = _resolved_config(cfg)
                if job is not None:
                    done = job.finished_summary(text)
                    if done is not None:
                        return done
                    job.start(cfg)
                _write_text(out / "config.yaml", text)
                result = task(cfg)
                if job is not None:
                    job.finish()
                return result
            except Exception as err:
                if job is not None:  # a sweep job: keep the folder, let the other jobs run
                    failure = job.fail(err)
                    print(f"egg: error: {error_line(err)}", file=sys.stderr)
                    if debug_requested(cfg):
                        raise
                    raise failure from err
                if not isinstance(err, EggError) or debug_requested(cfg):
                    raise
                if fresh:
                    shutil.rmtree(out, ignore_errors=True)
                fail(str(err))
            except KeyboardInterrupt as err:
                if job is not None:
                    job.fail(err)
                print("egg: interrupted; checkpoints written so far are kept", file=sys.stderr)
                sys.exit(130)

        return hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name=config_name)(wrapped)

    return decorate


def _is_fresh(out: Path) -> bool:
    """True when the run folder holds only what Hydra wrote at start (a new run, not a resume)."""
    return all(p.name == ".hydra" or p.suffix == ".log" for p in out.iterdir()) if out.exists() else True


def _resolved_config(cfg: DictConfig) -> str:
    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception as err:  # an interpolation that cannot resolve is a config error
        raise EggError(f"config does not resolve: {err}") from err


def _write_text(path: Path, text: str) -> None:
    from egg_cli.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)
