"""EGG vs GA population reconstructions at equal fit, scored by held-out ensembles and the ground truth.

Both methods reconstruct the same target images from the generating ensemble's predicted
population response; GA stops per image once it reaches EGG's fit (``method.match``), so the
two differ only in where they end up, not in how well they fit the generating model. For each
scorer, a target's error is the mean squared difference between the scorer's responses to the
reconstruction and to the target image, MSE = -score (per image the seed with the best
generating-model fit); EGG and GA are compared over target images with the Wilcoxon signed-rank
test and the median ratio MSE_EGG / MSE_GA (< 1: EGG's reconstructions transfer better).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egg_cli.evaluation.stats import compare_paired, holm
from egg_cli.synthesis.results import GENERATING, SynthesisResult, read_synthesis

GROUND_TRUTH = "ground_truth"


def scorer_roles(generator: str, architectures: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Score name in a reconstruction run -> (evaluator label, role), given the run's ``heldout`` order:
    the generator's own held-out ensemble first, then every other architecture's."""
    others = [a for a in architectures if a != generator]
    roles = {"heldout_0": (f"{generator}_heldout", "same architecture (held-out)")}
    roles.update({f"heldout_{k + 1}": (f"{o}_heldout", "other architecture (held-out)") for k, o in enumerate(others)})
    roles[GROUND_TRUTH] = (GROUND_TRUTH, "ground truth")
    return roles


def _best_mse(result: SynthesisResult, name: str) -> np.ndarray:
    rows = np.arange(result.n_problems)
    return -np.asarray(result.scores[name], dtype=np.float64)[rows, result.best_seed]


def compare_reconstructions(
    runs: Mapping[str, tuple[Path, Path]], architectures: Sequence[str], n_boot: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per (generator, scorer): MSE of EGG and GA, their median ratio, Wilcoxon p and Holm p.

    ``runs`` maps a generator to its (EGG run folder, GA run folder); Holm's correction runs over
    every row but the generating model's own (which equal fit makes uninformative).
    """
    rows: list[dict[str, Any]] = []
    for generator, (egg_dir, ga_dir) in runs.items():
        egg, ga = read_synthesis(Path(egg_dir) / "synthesis.h5"), read_synthesis(Path(ga_dir) / "synthesis.h5")
        stop = ga.extras.get("stop_step")
        ga_steps = float(np.mean(stop[np.arange(ga.n_problems), ga.best_seed])) if stop is not None else float("nan")
        scorers = {GENERATING: (GENERATING, "generating ensemble"), **scorer_roles(generator, architectures)}
        for name, (evaluator, role) in scorers.items():
            if name not in egg.scores or name not in ga.scores:
                continue
            mse_ga, mse_egg = _best_mse(ga, name), _best_mse(egg, name)
            c = compare_paired(mse_ga, mse_egg, n_boot, seed)
            rows.append(
                {
                    "generator": generator,
                    "evaluator": evaluator,
                    "role": role,
                    "images": c.n,
                    "mse_ga": c.mean_a,
                    "mse_egg": c.mean_b,
                    "mse_ratio_egg_over_ga": c.slope,
                    "ratio_low": c.slope_low,
                    "ratio_high": c.slope_high,
                    "fraction_egg_lower": float(np.mean(mse_egg < mse_ga)),
                    "p_value": c.p_value,
                    "ga_steps_to_match": ga_steps,
                    "seconds_per_image_egg": float(np.mean(egg.seconds_per_image)),
                    "seconds_per_image_ga": float(np.mean(ga.seconds_per_image)),
                }
            )
    tested = [i for i, r in enumerate(rows) if r["role"] != "generating ensemble"]
    adjusted = holm(np.array([rows[i]["p_value"] for i in tested]))
    for r in rows:
        r["p_holm"] = float("nan")
    for i, p in zip(tested, adjusted):
        rows[i]["p_holm"] = float(p)
    return rows
