"""Turn a library function into a Hydra command with egg's conventions.

Every command composes ``configs/<name>.yaml`` and runs in a Hydra run folder. The contract:

- every exception that escapes a command is either a user error, printed as one line
  ``egg: error: <message>`` with exit code 2 (:func:`egg_cli.errors.user_error` unwraps what
  Hydra and OmegaConf wrap), or a bug, printed as one line that says so with exit code 1; a
  traceback only with ``debug=true`` or ``HYDRA_FULL_ERROR=1``;
- config values are checked before the task runs: no ``???`` left, and every override keeps the
  type of the value it replaces (``seed=abc`` is refused, ``seeds=[a]`` too);
- results are staged: :func:`run_dir` is a hidden folder inside the run folder while the task
  runs, and its content, with the resolved ``config.yaml`` and ``.hydra/``, moves into the run
  folder only when the task finished; a failure leaves the previous state of the folder (a run
  folder it created itself is removed, log lines of a refused run are taken back). State that
  must survive a kill (checkpoints to resume from) goes to :func:`final_dir` instead. Commands
  made with ``staged=False`` (long workflows that checkpoint as they go) write in place;
- temporaries of atomic writes that were killed are removed when a run starts in the folder.

In a sweep (``-m``) each job instead keeps its folder and records its status in ``job.json``
(:mod:`egg_cli.sweeps.jobs`): a failed job is reported after the other jobs have run, and a job
already finished with the same resolved config is skipped when the sweep runs again.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, read_write

from egg_cli.configs import CONFIG_MODULE
from egg_cli.errors import EggError, first_line, user_error
from egg_cli.io import remove_stale_temporaries, write_bytes, write_text
from egg_cli.sweeps.jobs import SweepJob, error_line

log = logging.getLogger("egg")

# configs/hydra/launcher/submitit_*.yaml are meant to be checked against the plugin's schema of the same name.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore schema")


# Set once a task function starts: a Hydra exit before that is a config or override error.
task_started = False

STAGING = ".egg-staging"
HYDRA_SUBDIR = ".hydra"

# (staging folder, run folder) of the staged command running in this process
_staged: tuple[Path, Path] | None = None


def run_dir() -> Path:
    """The folder a command writes its results to: the staging folder while a staged command runs."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def final_dir() -> Path:
    """The run folder the results of :func:`run_dir` end up in; state that must survive a kill goes here."""
    here = run_dir()
    if _staged is not None and here.is_relative_to(_staged[0]):
        return _staged[1] / here.relative_to(_staged[0])
    return here


def debug_requested(cfg: DictConfig | None = None) -> bool:
    """True when the user asked for tracebacks (``debug=true`` or ``HYDRA_FULL_ERROR=1``)."""
    env = os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("EGG_DEBUG") == "1"
    return env or bool(cfg is not None and cfg.get("debug", False) is True)


def fail(message: str) -> None:
    """Print one error line and exit with code 2."""
    print(f"egg: error: {first_line(message) or 'invalid input'}", file=sys.stderr)
    sys.exit(2)


def report_bug(err: BaseException) -> None:
    """Print the one line of an unexpected error (a bug in egg) and exit with code 1."""
    print(
        f"egg: error: internal error, a bug in egg ({type(err).__name__}: {first_line(str(err))}); "
        "please report it with the command line; rerun with debug=true to see the traceback",
        file=sys.stderr,
    )
    sys.exit(1)


def command(
    config_name: str, staged: bool = True, required: Mapping[str, str] | None = None
) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Decorate ``task(cfg)`` as the Hydra app for ``configs/<config_name>.yaml``.

    ``staged=False`` lets the task write into the run folder directly (see the module docstring);
    ``required`` maps a key the config leaves as ``???`` to what it expects, for the error line.
    """
    import hydra

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def wrapped(cfg: DictConfig) -> Any:
            global task_started
            task_started = True
            out = run_dir()
            fresh = _is_fresh(out)
            logs = {p: p.stat().st_size for p in out.glob("*.log")}
            configs = {p: p.read_bytes() if p.is_file() else None for p in _config_paths(out)}
            job = SweepJob.current(out)  # None outside a sweep
            try:
                check_config(cfg, config_name, required or {})
                text = _resolved_config(cfg)
                remove_stale_temporaries(out)
                if job is not None:
                    done = job.finished_summary(text)
                    if done is not None:
                        return done
                    job.start(cfg)
                    _write_config(out, cfg, text)  # egg collect reads a failed job's overrides too
                if not staged:
                    _write_config(out, cfg, text)
                    result = task(cfg)
                else:
                    with _staging(out) as stage:
                        result = task(cfg)
                        _write_config(stage, cfg, text, run_folder=out)
                if job is not None:
                    job.finish()
                return result
            except Exception as err:
                known = user_error(err)
                if job is not None:  # a sweep job: keep the folder, let the other jobs run
                    failure = job.fail(known or err)
                    print(f"egg: error: {error_line(known or err)}", file=sys.stderr)
                    if debug_requested(cfg):
                        raise
                    raise failure from err
                if debug_requested(cfg):
                    raise
                if known is None:
                    report_bug(err)
                if fresh:
                    shutil.rmtree(out, ignore_errors=True)
                else:
                    _take_back_logs(out, logs)
                    _restore(configs)
                fail(str(known).replace(str(out / STAGING) + os.sep, str(out) + os.sep))
            except KeyboardInterrupt as err:
                if job is not None:
                    job.fail(err)
                print("egg: interrupted; checkpoints written so far are kept", file=sys.stderr)
                sys.exit(130)

        return hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name=config_name)(wrapped)

    return decorate


def check_config(cfg: DictConfig, config_name: str, required: Mapping[str, str]) -> None:
    """Refuse a config with a ``???`` left or an override whose type differs from the value it replaces."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        key = missing[0]
        expected = required.get(key, "a value")
        raise EggError(f"{key}= is required: set {key}=<{expected}> on the command line")
    defaults = _default_config(config_name)
    for key, value in _value_overrides():
        default = OmegaConf.select(defaults, key, default=None, throw_on_missing=False)
        if isinstance(default, (DictConfig, ListConfig)):
            default = OmegaConf.to_container(default, resolve=False)
        expected = _expected_type(default)
        if expected is not None and not _has_type(value, default):
            raise EggError(f"{key}={_show(value)}: expected {expected} (the default is {_show(default)})")


def _default_config(config_name: str) -> DictConfig:
    """The command's config with the same config-group choices but no value overrides."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    groups = [f"{group}={choice}" for group, choice in HydraConfig.get().runtime.choices.items() if choice is not None]
    groups = [g for g in groups if not g.startswith("hydra/")]
    return compose(config_name=config_name, overrides=groups)


def _value_overrides() -> Iterator[tuple[str, Any]]:
    """(key, value) of each ``key=value`` override on the command line that sets a plain value."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = HydraConfig.get().runtime.choices
    for override in OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task)):
        key = override.key_or_group
        if override.is_delete() or override.is_add() or key in choices or key.startswith("hydra."):
            continue
        yield key, override.value()


def _expected_type(default: Any) -> str | None:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, list) and default and all(_is_int(v) for v in default):
        return "a list of integers"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_type(value: Any, default: Any) -> bool:
    """True when an override ``value`` fits the type of ``default`` (None, resolved later, always fits)."""
    if value is None or (isinstance(value, str) and value.startswith("${")):
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return _is_int(value)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    # a list of integers; a keyword (neurons=top_16, all) or a single integer is the command's to check
    return not isinstance(value, list) or all(_is_int(v) for v in value)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return "null" if value is None else str(value)


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """Point :func:`run_dir` at a staging folder inside ``out``; move its files into ``out`` on success."""
    global _staged
    from hydra.core.hydra_config import HydraConfig

    stage = out / STAGING
    shutil.rmtree(stage, ignore_errors=True)  # left by a killed run
    stage.mkdir(parents=True)
    runtime = HydraConfig.get().runtime
    previous = runtime.output_dir
    _staged = (stage, out)
    with read_write(runtime):
        runtime.output_dir = str(stage)
    try:
        yield stage
        for path in sorted(p for p in stage.rglob("*") if not p.is_dir()):
            target = out / path.relative_to(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        with read_write(runtime):
            runtime.output_dir = previous
        _staged = None
        shutil.rmtree(stage, ignore_errors=True)


def _is_fresh(out: Path) -> bool:
    """True when the run folder holds only what Hydra wrote at start (a new run, not a resume)."""
    return all(p.name == HYDRA_SUBDIR or p.suffix == ".log" for p in out.iterdir()) if out.is_dir() else True


def _config_paths(folder: Path) -> list[Path]:
    """The files :func:`_write_config` writes into ``folder``."""
    return [folder / "config.yaml", *(folder / HYDRA_SUBDIR / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml"))]


def _restore(contents: Mapping[Path, bytes | None]) -> None:
    """Put back files as they were (None: the file did not exist) after an unstaged command was refused."""
    for path, data in contents.items():
        if data is None:
            path.unlink(missing_ok=True)
        elif not path.is_file() or path.read_bytes() != data:
            write_bytes(path, data)


def _take_back_logs(out: Path, sizes: Mapping[Path, int]) -> None:
    """Cut each log file in ``out`` back to its size before a refused run; remove logs that run created."""
    for path in out.glob("*.log"):
        if path in sizes:
            with open(path, "r+b") as f:
                f.truncate(sizes[path])
        else:
            path.unlink(missing_ok=True)


def _resolved_config(cfg: DictConfig) -> str:
    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception as err:  # an interpolation that cannot resolve is a config error
        raise EggError(f"config does not resolve: {first_line(str(err))}") from err


def _write_config(folder: Path, cfg: DictConfig, resolved: str, run_folder: Path | None = None) -> None:
    """Write the resolved ``config.yaml`` and Hydra's ``.hydra/`` (config, hydra, overrides) into ``folder``.

    ``run_folder``: the folder the files end up in, recorded as Hydra's output_dir (default ``folder``).
    """
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = OmegaConf.create({"hydra": OmegaConf.to_container(HydraConfig.get(), resolve=False)})
    hydra_cfg.hydra.runtime.output_dir = str(run_folder or folder)
    texts = [resolved, OmegaConf.to_yaml(cfg), OmegaConf.to_yaml(hydra_cfg), OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task)]
    for path, text in zip(_config_paths(folder), texts):
        write_text(path, text)
