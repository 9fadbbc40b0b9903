"""``egg evaluate``: generator x evaluator x method tables of normalized activations (docs/evaluation.md).

    egg evaluate runs=[outputs/synth/A,outputs/synth/B] \\
        evaluators="{held_out:[m6.pt,m7.pt],other_arch:outputs/train/multirun/T,truth:ground_truth}"
"""

from __future__ import annotations

import glob
import logging
from typing import Any

from omegaconf import DictConfig

from egg_cli.cli.app import command, final_dir, run_dir
from egg_cli.errors import EggError
from egg_cli.evaluation.pipeline import EvaluationSettings, run_evaluate
from egg_cli.runtime import plain, resolve_device, seed_everything

log = logging.getLogger("egg.evaluate")


def expand_runs(specs: Any) -> list[Any]:
    """A run entry or a list of them; string entries with glob characters expand to the matching folders."""
    specs = plain(specs)
    if specs in (None, "", []):
        raise EggError("runs= is required: egg synth run folders, e.g. runs=[outputs/synth/<ga run>,outputs/synth/<egg run>]")
    specs = [specs] if isinstance(specs, (str, dict)) else list(specs)
    out: list[Any] = []
    for spec in specs:
        if isinstance(spec, str) and any(ch in spec for ch in "*?["):
            matches = sorted(glob.glob(spec))
            if not matches:
                raise EggError(f"runs entry {spec} matches nothing; expected a glob of egg synth run folders")
            out.extend(matches)
        else:
            out.append(spec)
    return out


def settings_from_config(cfg: DictConfig) -> EvaluationSettings:
    """The evaluation options of the config."""
    compare = plain(cfg.compare)
    if compare is not None:
        if not isinstance(compare, list) or not all(isinstance(p, list) and len(p) == 2 for p in compare):
            raise EggError(f"compare={compare!r} not understood; expected a list of [A, B] method pairs, e.g. [[ga,egg]]")
        compare = [(str(a), str(b)) for a, b in compare]
    return EvaluationSettings(
        rms_contrast=None if cfg.contrast.rms is None else float(cfg.contrast.rms),
        seeds=str(cfg.seeds),
        neurons=str(cfg.neurons),
        natural_tier=str(cfg.natural.tier),
        max_natural=None if cfg.natural.max_images is None else int(cfg.natural.max_images),
        batch_size=int(cfg.batch_size),
        fit=str(cfg.fit),
        reference=None if cfg.reference in (None, "", "none") else str(cfg.reference),
        compare=compare,
        bootstrap=int(cfg.bootstrap),
        seed=int(cfg.seed),
        grid_neurons=int(cfg.grid_neurons),
        optimum_steps=int(cfg.optimum_steps),
        allow_mismatch=bool(cfg.allow_mismatch),
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    """Load runs and evaluators, score every image, and write tables and figures to the run folder."""
    device = resolve_device(cfg.device)
    seed_everything(int(cfg.seed))
    evaluators = plain(cfg.evaluators)
    if not isinstance(evaluators, dict) or not evaluators:
        raise EggError('evaluators= is required: e.g. evaluators="{held_out:[m6.pt,m7.pt],truth:ground_truth}"')
    summary = run_evaluate(expand_runs(cfg.runs), evaluators, cfg.dataset_path, run_dir(), settings_from_config(cfg), device)
    log.info("evaluation written to %s", final_dir())
    return summary


main = command("evaluate")(run)

if __name__ == "__main__":
    main()
