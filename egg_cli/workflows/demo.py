"""The whole loop of egg in one call: simulate, train two architectures, synthesize, evaluate, report.

Every stage is the ordinary egg command run in-process (:func:`~egg_cli.workflows.stages.run_stage`),
so the demo folder holds normal run folders (``simulate/``, ``train/<arch>/member_<k>/``,
``synth/<arch>/<method>/``, ``evaluate/``) that can be inspected, re-run or reused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egg_cli.errors import EggError
from egg_cli.workflows.stages import StageResult, Task, override_value, run_stage

log = logging.getLogger(__name__)

GROUND_TRUTH = "ground_truth"


@dataclass
class DemoPlan:
    """What the demo runs (the resolved ``egg demo`` config)."""

    simulate: list[str]
    architectures: dict[str, list[str]]
    members: int
    train: list[str]
    neurons: int
    seeds: list[int]
    methods: dict[str, list[str]]
    evaluate: list[str]
    optional_methods: list[str] = field(default_factory=list)
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def check(self) -> None:
        """Refuse plans that cannot give a generating and a held-out ensemble per architecture."""
        if self.members < 2:
            raise EggError(f"members={self.members}: expected at least 2 per architecture (one generating, one held out)")
        if len(self.architectures) < 1:
            raise EggError("architectures is empty; expected at least one `egg train` architecture")
        if self.neurons < 1:
            raise EggError(f"neurons={self.neurons}: expected a positive number of neurons to synthesize for")
        if not self.seeds:
            raise EggError("seeds=[]: expected at least one seed")
        if not self.methods:
            raise EggError("methods is empty; expected e.g. {ga: [method=ga], egg: [method=egg]}")
        for name in list(self.architectures) + list(self.methods):
            if not name.replace("_", "").replace("-", "").isalnum():
                raise EggError(f"label {name!r} must hold only letters, digits, '_' and '-'")

    @property
    def generating(self) -> int:
        """Members per architecture that generate images (the rest are held out)."""
        return self.members // 2


@dataclass
class DemoResult:
    """Where everything landed and how long each stage took."""

    out_dir: Path
    dataset: Path
    checkpoints: dict[str, list[Path]]  # architecture -> member checkpoints (generating first)
    neurons: list[int]
    neuron_ids: list[Any]
    runs: dict[tuple[str, str], Path]  # (architecture, method) -> synth run folder
    skipped_methods: dict[str, str]  # method -> why it was skipped
    evaluation_dir: Path
    stages: list[dict[str, Any]]
    train_summaries: dict[str, list[dict[str, Any]]]
    synth_summaries: dict[tuple[str, str], dict[str, Any]]
    evaluation: dict[str, Any]


def method_available(overrides: Sequence[str], config_dir: Path) -> str | None:
    """None if the method group of these synth overrides exists, else why not."""
    names = [o.split("=", 1)[1] for o in overrides if o.startswith("method=")]
    for name in names:
        if not (config_dir / "method" / f"{name}.yaml").is_file():
            return f"configs/method/{name}.yaml does not exist in this installation"
    return None


def select_neurons(checkpoints: Mapping[str, Sequence[Path]], n_generating: int, k: int) -> tuple[list[int], np.ndarray]:
    """The ``k`` neurons with the best mean test correlation over every generating member.

    Returns (neuron indices, mean test correlation of every neuron).
    """
    from egg_cli.models import read_checkpoint

    correlations = []
    for paths in checkpoints.values():
        for path in paths[:n_generating]:
            corr = read_checkpoint(path).get("test_correlation")
            if corr is None:
                raise EggError(f"{path} records no test correlation; expected a checkpoint written by egg train")
            correlations.append(np.asarray(corr, dtype=np.float64))
    mean = np.nanmean(np.stack(correlations), axis=0)
    if k > len(mean):
        raise EggError(f"neurons={k}: the dataset has only {len(mean)} neurons")
    order = np.argsort(-np.nan_to_num(mean, nan=-np.inf), kind="stable")
    return sorted(int(i) for i in order[:k]), mean


@dataclass
class _Stages:
    """Runs the demo's stages as egg commands in folders of ``out`` and records their timing."""

    plan: DemoPlan
    out: Path
    tasks: Mapping[str, Task]
    records: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, command: str, overrides: list[str], folder: Path, label: str, seed: int | None = None) -> StageResult:
        seed = self.plan.seed if seed is None else seed
        common = [f"seed={seed}", f"device={override_value(self.plan.device)}"]
        result = run_stage(command, self.tasks[command], [*common, *overrides], folder)
        self.records.append(
            {
                "stage": label,
                "command": command,
                "folder": str(folder.relative_to(self.out)),
                "seconds": result.seconds,
                "cpu_seconds": result.cpu_seconds,
            }
        )
        log.info("%s finished in %.1f s", label, result.seconds)
        return result


def _train_members(stage: _Stages, dataset: Path) -> tuple[dict[str, list[Path]], dict[str, list[dict[str, Any]]]]:
    """Ensembles of every architecture; the first half of each generates, the rest is held out."""
    plan = stage.plan
    checkpoints: dict[str, list[Path]] = {}
    summaries: dict[str, list[dict[str, Any]]] = {}
    for arch, arch_overrides in plan.architectures.items():
        checkpoints[arch], summaries[arch] = [], []
        for k in range(plan.members):
            folder = stage.out / "train" / arch / f"member_{k}"
            res = stage(
                "train",
                [f"dataset_path={override_value(str(dataset))}", *arch_overrides, *plan.train],
                folder,
                f"train {arch} member {k}",
                seed=plan.seed + k,
            )
            checkpoints[arch].append(folder / "model.pt")
            summaries[arch].append(res.summary)
    return checkpoints, summaries


def _synthesize(
    stage: _Stages, dataset: Path, checkpoints: Mapping[str, list[Path]], neurons: list[int]
) -> tuple[dict[tuple[str, str], Path], dict[tuple[str, str], dict[str, Any]], dict[str, str]]:
    """Every method on every generating ensemble: run folders, summaries, and the skipped optional methods."""
    from egg_cli.configs import CONFIG_DIR

    plan = stage.plan
    runs: dict[tuple[str, str], Path] = {}
    summaries: dict[tuple[str, str], dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for method, method_overrides in plan.methods.items():
        missing = method_available(method_overrides, CONFIG_DIR)
        if missing is not None:
            if method in plan.optional_methods:
                skipped[method] = missing
                log.warning("skipping method %s: %s", method, missing)
                continue
            raise EggError(f"methods.{method}: {missing}; expected an available method or list it in optional_methods")
        for arch, paths in checkpoints.items():
            folder = stage.out / "synth" / arch / method
            generating = [str(p) for p in paths[: plan.generating]]
            res = stage(
                "synth",
                [
                    f"model={override_value(generating)}",
                    f"neurons={override_value(neurons)}",
                    f"seeds={override_value(list(plan.seeds))}",
                    f"dataset_path={override_value(str(dataset))}",
                    "natural.enabled=false",
                    f"progress={override_value(plan.progress)}",
                    *method_overrides,
                ],
                folder,
                f"synth {arch} {method}",
            )
            runs[(arch, method)] = folder
            summaries[(arch, method)] = res.summary
    return runs, summaries, skipped


def _evaluate(
    stage: _Stages, dataset: Path, checkpoints: Mapping[str, list[Path]], runs: Mapping[tuple[str, str], Path]
) -> StageResult:
    """Every image in the held-out ensembles of every architecture and in the ground truth."""
    plan = stage.plan
    evaluators: dict[str, Any] = {
        f"{arch}_heldout": [str(p) for p in paths[plan.generating :]] for arch, paths in checkpoints.items()
    }
    evaluators[GROUND_TRUTH] = GROUND_TRUTH
    run_specs = [{"path": str(folder), "method": method, "generator": arch} for (arch, method), folder in runs.items()]
    reference = "ga" if "ga" in plan.methods else next(iter(plan.methods))
    return stage(
        "evaluate",
        [
            f"runs={override_value(run_specs)}",
            f"evaluators={override_value(evaluators)}",
            f"dataset_path={override_value(str(dataset))}",
            f"reference={override_value(reference)}",
            *plan.evaluate,
        ],
        stage.out / "evaluate",
        "evaluate",
    )


def run_demo(plan: DemoPlan, out_dir: str | Path, tasks: Mapping[str, Task]) -> DemoResult:
    """Run every stage of the demo into ``out_dir``; ``tasks`` maps each egg command to its library entry
    ``run(cfg)``. The report is written by :mod:`.report`."""
    from egg_cli.models import read_checkpoint

    plan.check()
    out = Path(out_dir).absolute()
    stage = _Stages(plan, out, tasks)
    # 1. a simulated dataset with known ground truth
    sim = stage("simulate", [f"progress={override_value(plan.progress)}", *plan.simulate], out / "simulate", "simulate")
    dataset = out / "simulate" / "dataset.h5"
    if not dataset.is_file():
        raise EggError(f"egg simulate wrote no {dataset}; expected its dataset.h5")
    # 2. ensembles of two architectures
    checkpoints, train_summaries = _train_members(stage, dataset)
    # 3. the same well-predicted neurons for every generator and method
    neurons, mean_corr = select_neurons(checkpoints, plan.generating, plan.neurons)
    neuron_ids = list(np.asarray(read_checkpoint(checkpoints[next(iter(checkpoints))][0])["neuron_ids"])[neurons])
    # 4. synthesis, 5. evaluation
    runs, synth_summaries, skipped = _synthesize(stage, dataset, checkpoints, neurons)
    ev = _evaluate(stage, dataset, checkpoints, runs)
    return DemoResult(
        out_dir=out,
        dataset=dataset,
        checkpoints=checkpoints,
        neurons=neurons,
        neuron_ids=[v.item() if hasattr(v, "item") else v for v in neuron_ids],
        runs=runs,
        skipped_methods=skipped,
        evaluation_dir=out / "evaluate",
        stages=stage.records,
        train_summaries=train_summaries,
        synth_summaries=synth_summaries,
        evaluation={**ev.summary, "simulate": sim.summary, "mean_test_correlation_selected": float(np.mean(mean_corr[neurons]))},
    )
