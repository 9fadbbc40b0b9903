"""The ``egg`` console script: one entry point, one Hydra app per command."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    module: str
    summary: str


# name -> module holding a ``main()``; a command is listed only once it does real work.
COMMANDS: dict[str, Command] = {
    "simulate": Command("egg_cli.cli.simulate", "simulate a dataset with known ground truth (V4-like neurons)"),
    "info": Command(
        "egg_cli.cli.info",
        "summarize a neural dataset (HDF5 file or Sensorium folder) or an encoding model (model.pt or run folder)",
    ),
    "train": Command(
        "egg_cli.cli.train", "fit an encoding model (core + readout) to a neural dataset; -m seed=1,2,3 for an ensemble"
    ),
    "train-prior": Command("egg_cli.cli.train_prior", "train a diffusion prior (ADM UNet) on natural image crops; resumable"),
    "synth": Command("egg_cli.cli.synth", "most exciting inputs, MENIs, reconstructions by GA or EGG, batched across neurons"),
    "evaluate": Command(
        "egg_cli.cli.evaluate", "score synthesized images in held-out models, other architectures and the ground truth"
    ),
    "demo": Command(
        "egg_cli.cli.demo", "the whole loop on embedded defaults (simulate, train, synth, evaluate) ending in report.md"
    ),
    "rsm synth": Command(
        "egg_cli.cli.rsm_synth", "images whose network-layer RSMs are decorrelated (fMRI layer mapping stimuli)"
    ),
    "rsm simulate": Command(
        "egg_cli.cli.rsm_simulate",
        "a simulated fMRI study (BIDS: BOLD time series of several subjects) with regions carrying one layer each",
    ),
    "rsm map": Command(
        "egg_cli.cli.rsm_map",
        "searchlight RSA of BIDS time series (first-level GLM) or NIfTI patterns vs layer RDMs: subject and group maps",
    ),
    "rsm residual": Command("egg_cli.cli.rsm_residual", "searchlight maps of each layer's RDM residualized on all other layers"),
    "collect": Command(
        "egg_cli.cli.collect", "one table (CSV + Markdown) of a sweep's jobs: overrides, status, headline metrics"
    ),
}


def stage_tasks(names: Sequence[str]) -> dict[str, Callable[[Any], Any]]:
    """The library entry ``run(cfg)`` of each named command, for workflows that run commands as stages."""
    return {name: importlib.import_module(COMMANDS[name].module).run for name in names}


USAGE = "usage: egg <command> [hydra overrides...]   (egg <command> --help for its config groups)"


def print_help(family: str | None = None) -> None:
    """List every command, or only the subcommands of a two-word family such as ``rsm``; a reader that
    leaves early (``egg --help | head -3``) is not an error."""
    try:
        _write_help(family)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _write_help(family: str | None) -> None:
    names = [name for name in COMMANDS if family is None or name.startswith(f"{family} ")]
    print(USAGE if family is None else f"usage: egg {family} <subcommand> [hydra overrides...]")
    print("\ncommands:" if family is None else "\nsubcommands:")
    width = max(len(name) for name in names)
    for name in names:
        print(f"  {name:<{width}}  {COMMANDS[name].summary}")
    print("\nerrors print one line and exit 2; set debug=true or HYDRA_FULL_ERROR=1 for a traceback.", flush=True)


def _families() -> set[str]:
    return {name.split(" ", 1)[0] for name in COMMANDS if " " in name}


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``egg <command> ...`` to the command's Hydra app."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print_help()
        return
    if argv[0] in ("-V", "--version"):
        from egg_cli import __version__

        print(f"egg {__version__}")
        return
    name, rest = argv[0], argv[1:]
    # two-word commands such as ``egg rsm map``
    if rest and f"{name} {rest[0]}" in COMMANDS:
        name, rest = f"{name} {rest[0]}", rest[1:]
    if name in _families() and (not rest or rest[0] in ("-h", "--help", "help")):
        print_help(name)
        return
    if name not in COMMANDS:
        if name in _families():
            name = f"{name} {rest[0]}"
        print(f"egg: error: unknown command {name!r}; expected one of: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[name].module)
    sys.argv = [f"egg {name}", *rest]
    from egg_cli.cli import app
    from egg_cli.cli.held_stderr import HeldStderr

    held = sys.stderr = HeldStderr(sys.stderr, lambda: app.task_started)
    try:
        module.main()
    except BrokenPipeError:  # ``egg demo --help | head``: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except Exception as err:  # what escapes a command that is not a Hydra app (egg info) or Hydra itself
        from egg_cli.errors import user_error

        held.release()
        if app.debug_requested() or "--debug" in rest or "debug=true" in rest:
            raise
        known = user_error(err)
        if known is None:
            app.report_bug(err)
        app.fail(str(known))
    except SystemExit as exit_:
        # Hydra exits with 1 on a bad override or unknown config value, before the task runs.
        if exit_.code == 1 and not app.task_started:
            message = held.one_line()
            held.held.clear()
            print(f"egg: error: {message}", file=held.stream)
            sys.exit(2)
        raise
    finally:
        held.release()
        sys.stderr = held.stream
