"""``egg demo``: simulate, train two architectures, synthesize MEIs with every method, evaluate, report.

egg demo                   # experiment=small, under 15 minutes on 2 CPU cores
egg demo experiment=paper  # the EGG paper's ensemble sizes and step counts (configs/experiment/)
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from typing import Any

from omegaconf import DictConfig

from egg_cli.cli import stage_tasks
from egg_cli.cli.app import command, run_dir
from egg_cli.errors import EggError
from egg_cli.io import write_csv, write_json
from egg_cli.runtime import plain
from egg_cli.workflows.demo import DemoPlan, run_demo
from egg_cli.workflows.report import write_report

log = logging.getLogger("egg.demo")


def _overrides(value: Any, key: str) -> list[str]:
    value = plain(value)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float, bool)) for v in value):
        raise EggError(f"{key}={value!r} not understood; expected a list of overrides such as [trainer.max_epochs=5]")
    return [str(v) for v in value]


def plan_from_config(cfg: DictConfig) -> DemoPlan:
    """The demo plan of a resolved ``egg demo`` config."""
    methods = plain(cfg.methods)
    architectures = plain(cfg.architectures)
    if not isinstance(methods, dict) or not isinstance(architectures, dict):
        raise EggError("methods and architectures must map labels to lists of overrides")
    seeds = plain(cfg.seeds)
    reconstruction = plain(cfg.reconstruction) or {}
    if not isinstance(reconstruction, dict):
        raise EggError(f"reconstruction={reconstruction!r} not understood; expected {{images: [0, 1], egg: [...], ga: [...]}}")
    images = reconstruction.get("images") or []
    if not isinstance(images, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in images):
        raise EggError(f"reconstruction.images={images!r}: expected a list of test-image indices, e.g. [0,1,2,3]")
    return DemoPlan(
        simulate=_overrides(cfg.simulate, "simulate"),
        architectures={str(k): _overrides(v, f"architectures.{k}") for k, v in architectures.items()},
        members=int(cfg.members),
        train=_overrides(cfg.train, "train"),
        neurons=int(cfg.neurons),
        seeds=[int(s) for s in (seeds if isinstance(seeds, list) else [seeds])],
        methods={str(k): _overrides(v, f"methods.{k}") for k, v in methods.items()},
        evaluate=_overrides(cfg.evaluate, "evaluate"),
        optional_methods=[str(m) for m in plain(cfg.optional_methods) or []],
        menis=_overrides(cfg.menis, "menis"),
        reconstruction_images=images,
        reconstruction_egg=_overrides(reconstruction.get("egg"), "reconstruction.egg"),
        reconstruction_ga=_overrides(reconstruction.get("ga"), "reconstruction.ga"),
        seed=int(cfg.seed),
        device=str(cfg.device),
        progress=bool(cfg.progress),
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run every stage into the demo's run folder and write report.md there."""
    start = time.perf_counter()
    out = run_dir()
    plan = plan_from_config(cfg)
    result = run_demo(plan, out, stage_tasks(("simulate", "train", "synth", "evaluate")))
    wall = time.perf_counter() - start
    command_line = "egg demo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if result.reconstructions:
        write_csv(out / "reconstruction.csv", result.reconstructions)
    report = write_report(result, plan, command_line.strip(), wall)
    summary = {
        "experiment": str(cfg.preset),
        "report": report.name,
        "wall_seconds": time.perf_counter() - start,
        "stages": result.stages,
        "dataset": str(result.dataset),
        "neurons": result.neurons,
        "skipped_methods": result.skipped_methods,
        "mean_normalized_activation": result.evaluation.get("mean_normalized_activation", {}),
        "comparisons": result.evaluation.get("comparisons", []),
        "seconds_per_image": result.evaluation.get("seconds_per_image", {}),
        "reconstructions": result.reconstructions,
        "status": "finished",
    }
    write_json(out / "summary.json", summary)
    log.info("demo finished in %.1f min; report: %s", summary["wall_seconds"] / 60, report)
    return summary


main = command("demo", staged=False)(run)  # its stages refer to each other by path

if __name__ == "__main__":
    main()
