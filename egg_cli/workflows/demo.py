"""The whole loop of egg in one call: simulate, train two architectures, synthesize, evaluate, report.

Every stage is the ordinary egg command run in-process (:func:`~egg_cli.workflows.stages.run_stage`),
so the demo folder holds normal run folders (``simulate/``, ``train/<arch>/member_<k>/``,
``synth/<arch>/<method>/``, ``synth/<arch>/meni/``, ``reconstruct/<arch>/{egg,ga}/``, ``evaluate/``)
that can be inspected, re-run or reused. Rerun into the same folder, the demo continues with the
first unfinished stage (:mod:`.stages`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egg_cli.errors import EggError
from egg_cli.workflows.reconstruction import GROUND_TRUTH, compare_reconstructions
from egg_cli.workflows.stages import StageResult, Task, override_value, run_stage

log = logging.getLogger(__name__)

MENI = "meni"  # method label of the most exciting natural images in the evaluation


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
    menis: list[str] = field(default_factory=list)  # `egg synth` overrides of the MENI run; [] none
    reconstruction_images: list[int] = field(default_factory=list)  # test-tier targets; [] none
    reconstruction_egg: list[str] = field(default_factory=list)  # `egg synth` overrides of EGG reconstructions
    reconstruction_ga: list[str] = field(default_factory=list)  # ... of GA reconstructions (stopped at EGG's fit)
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
        if MENI in self.methods and self.menis:
            raise EggError(f"methods.{MENI}: the label is taken by the MENI run (menis=...); expected another label")

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
    runs: dict[tuple[str, str], Path]  # (architecture, method) -> synth run folder (MENIs under method "meni")
    skipped_methods: dict[str, str]  # method -> why it was skipped
    evaluation_dir: Path
    stages: list[dict[str, Any]]
    train_summaries: dict[str, list[dict[str, Any]]]
    synth_summaries: dict[tuple[str, str], dict[str, Any]]
    evaluation: dict[str, Any]
    reconstructions: list[dict[str, Any]] = field(default_factory=list)  # rows of compare_reconstructions


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
    ran: set[str] = field(default_factory=set)  # commands of which at least one stage ran in this call (not resumed)

    def __call__(
        self,
        command: str,
        overrides: list[str],
        folder: Path,
        label: str,
        seed: int | None = None,
        inputs: Sequence[str] = (),
    ) -> StageResult:
        """Run (or resume) one stage; it runs again whenever a stage of a command in ``inputs`` ran in this call."""
        seed = self.plan.seed if seed is None else seed
        common = [f"seed={seed}", f"device={override_value(self.plan.device)}"]
        rerun = bool(self.ran.intersection(inputs))
        result = run_stage(command, self.tasks[command], [*common, *overrides], folder, rerun=rerun)
        if not result.resumed:
            self.ran.add(command)
        self.records.append(
            {
                "stage": label,
                "command": command,
                "folder": str(folder.relative_to(self.out)),
                "seconds": result.seconds,
                "cpu_seconds": result.cpu_seconds,
                "resumed": result.resumed,
            }
        )
        log.info("%s %s in %.1f s", label, "had finished earlier" if result.resumed else "finished", result.seconds)
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
                [
                    f"dataset_path={override_value(str(dataset))}",
                    f"progress={override_value(plan.progress)}",
                    *arch_overrides,
                    *plan.train,
                ],
                folder,
                f"train {arch} member {k}",
                seed=plan.seed + k,
                inputs=("simulate",),
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
            res = stage(
                "synth",
                [
                    *_synth_common(plan, dataset, paths),
                    f"neurons={override_value(neurons)}",
                    "natural.enabled=false",
                    *method_overrides,
                ],
                folder,
                f"synth {arch} {method}",
                inputs=("simulate", "train"),
            )
            runs[(arch, method)] = folder
            summaries[(arch, method)] = res.summary
    return runs, summaries, skipped


def _synth_common(plan: DemoPlan, dataset: Path, paths: Sequence[Path]) -> list[str]:
    """`egg synth` overrides every synthesis of the demo shares: the generating ensemble, seeds, dataset."""
    return [
        f"model={override_value([str(p) for p in paths[: plan.generating]])}",
        f"seeds={override_value(list(plan.seeds))}",
        f"dataset_path={override_value(str(dataset))}",
        f"progress={override_value(plan.progress)}",
    ]


def _menis(stage: _Stages, dataset: Path, checkpoints: Mapping[str, list[Path]], neurons: list[int]) -> dict[str, Path]:
    """Most exciting natural images (``objective=meni``) of the same neurons on every generating ensemble."""
    plan = stage.plan
    runs = {}
    for arch, paths in checkpoints.items() if plan.menis else ():
        folder = stage.out / "synth" / arch / MENI
        overrides = [*_synth_common(plan, dataset, paths), f"neurons={override_value(neurons)}", "objective=meni", *plan.menis]
        stage("synth", overrides, folder, f"synth {arch} {MENI}", inputs=("simulate", "train"))
        runs[arch] = folder
    return runs


def _reconstruct(stage: _Stages, dataset: Path, checkpoints: Mapping[str, list[Path]]) -> dict[str, tuple[Path, Path]]:
    """EGG, then GA stopped at EGG's fit, reconstructing test images on every generating ensemble.

    Both are scored by the generator's held-out ensemble, every other architecture's held-out
    ensemble (in that order: ``heldout_0``, ``heldout_1``, ...) and the ground truth.
    """
    plan = stage.plan
    runs: dict[str, tuple[Path, Path]] = {}
    for arch, paths in checkpoints.items() if plan.reconstruction_images else ():
        heldout = [[str(p) for p in checkpoints[a][plan.generating :]] for a in [arch, *(a for a in checkpoints if a != arch)]]
        common = [
            *_synth_common(plan, dataset, paths),
            "objective=reconstruction",
            f"objective.images={override_value(list(plan.reconstruction_images))}",
            f"heldout={override_value(heldout)}",
            "ground_truth=true",
        ]
        egg_dir, ga_dir = stage.out / "reconstruct" / arch / "egg", stage.out / "reconstruct" / arch / "ga"
        egg = stage(
            "synth", [*common, *plan.reconstruction_egg], egg_dir, f"reconstruct {arch} egg", inputs=("simulate", "train")
        )
        stage(
            "synth",
            [*common, *plan.reconstruction_ga, f"method.match={override_value(str(egg_dir))}"],
            ga_dir,
            f"reconstruct {arch} ga (stopped at egg's fit)",
            inputs=("simulate", "train") if egg.resumed else ("simulate", "train", "synth"),
        )
        runs[arch] = (egg_dir, ga_dir)
    return runs


def _evaluate(
    stage: _Stages, dataset: Path, checkpoints: Mapping[str, list[Path]], runs: Mapping[tuple[str, str], Path]
) -> StageResult:
    """Every image in the held-out ensembles of every architecture and in the ground truth.

    Methods are compared with the reference (GA); MENIs only against natural images (their normalization).
    """
    plan = stage.plan
    evaluators: dict[str, Any] = {
        f"{arch}_heldout": [str(p) for p in paths[plan.generating :]] for arch, paths in checkpoints.items()
    }
    evaluators[GROUND_TRUTH] = GROUND_TRUTH
    run_specs = [{"path": str(folder), "method": method, "generator": arch} for (arch, method), folder in runs.items()]
    reference = "ga" if "ga" in plan.methods else next(iter(plan.methods))
    methods = sorted({method for _, method in runs if method != MENI})
    pairs = [[reference, m] for m in methods if m != reference]
    return stage(
        "evaluate",
        [
            f"runs={override_value(run_specs)}",
            f"evaluators={override_value(evaluators)}",
            f"dataset_path={override_value(str(dataset))}",
            f"reference={override_value(reference)}",
            *([f"compare={override_value(pairs)}"] if pairs else []),
            *plan.evaluate,
        ],
        stage.out / "evaluate",
        "evaluate",
        inputs=("simulate", "train", "synth"),
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
    # 4. synthesis (MEIs of every method, MENIs, reconstructions), 5. evaluation
    runs, synth_summaries, skipped = _synthesize(stage, dataset, checkpoints, neurons)
    runs.update({(arch, MENI): folder for arch, folder in _menis(stage, dataset, checkpoints, neurons).items()})
    reconstruction_runs = _reconstruct(stage, dataset, checkpoints)
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
        reconstructions=compare_reconstructions(reconstruction_runs, list(checkpoints), seed=plan.seed),
    )
