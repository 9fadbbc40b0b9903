"""report.md of `egg demo`: the question, the answer in numbers, the tables and figures, the timing."""

from __future__ import annotations

import csv
import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egg_cli.io import atomic_path
from egg_cli.markdown import format_value, markdown_table
from egg_cli.workflows.demo import GROUND_TRUTH, MENI, DemoPlan, DemoResult

ALPHA = 0.05
ROLES = ("same architecture (held-out)", "other architecture (held-out)", "ground truth")
PAPER_SPEEDUP = 4.7  # EGG (100 steps) vs GA (1000 steps) compute in the EGG paper


def read_csv_rows(path: Path) -> list[dict[str, Any]]:
    """CSV rows with numbers parsed (empty cells and 'nan' become NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def evaluator_role(generator: str, evaluator: str) -> str:
    """How an evaluator relates to a generator in the demo (see :func:`~egg_cli.workflows.demo.run_demo` names)."""
    if evaluator == GROUND_TRUTH:
        return ROLES[2]
    return ROLES[0] if evaluator == f"{generator}_heldout" else ROLES[1]


def transfer_rows(table: Sequence[dict], compute: Sequence[dict], reference: str) -> list[dict]:
    """One row per (generator, method): mean normalized activation per role, and compute per image."""
    rows: dict[tuple[str, str], dict] = {}
    for r in table:
        key = (r["generator"], r["method"])
        row = rows.setdefault(key, {"generator": key[0], "method": key[1], "neurons": int(r["neurons"])})
        role = evaluator_role(r["generator"], r["evaluator"])
        sem = f" ± {r['sem']:.2f}" if _finite(r["sem"]) else ""
        row[role] = f"{r['mean']:.2f}{sem}"
    for c in compute:
        key = (c["generator"], c["method"])
        if key in rows:
            rows[key]["s / image"] = c["seconds_per_image"]
            rows[key][f"time vs {reference}"] = c.get(f"time_vs_{reference}", float("nan"))
    columns = ["generator", "method", "neurons", *ROLES, "s / image", f"time vs {reference}"]
    return [{c: row.get(c, "—") for c in columns} for row in rows.values()]


def answer_lines(comparisons: Sequence[dict], compute: Sequence[dict], reference: str, focus: str) -> list[str]:
    """Sentences with the numbers: does ``focus`` beat ``reference`` per generator and evaluator role, at what cost."""
    lines = []
    for c in comparisons:
        if c["method_a"] != reference or c["method_b"] != focus:
            continue
        role = evaluator_role(c["generator"], c["evaluator"])
        if role == ROLES[0]:
            continue
        p = c.get("p_holm", float("nan"))
        if not _finite(p):
            verdict = "not testable"
        elif p < ALPHA:
            verdict = f"**{focus} higher**" if c["mean_b"] > c["mean_a"] else f"**{focus} lower**"
        else:
            verdict = "no significant difference"
        lines.append(
            f"- generated on **{c['generator']}**, scored by **{c['evaluator']}** ({role}): {focus} "
            f"{c['mean_b']:.2f} vs {reference} {c['mean_a']:.2f} (mean normalized activation, n={int(c['n'])} neurons); "
            f"slope {c['slope']:.2f} [{c['slope_low']:.2f}, {c['slope_high']:.2f}], "
            f"{focus} better for {100 * c['fraction_b_better']:.0f}% of neurons, Wilcoxon p={format_value(c['p_value'])} "
            f"(Holm {format_value(p)}): {verdict}."
        )
    for gen in _ordered(c["generator"] for c in compute):
        ref = next((c for c in compute if c["generator"] == gen and c["method"] == reference), None)
        own = next((c for c in compute if c["generator"] == gen and c["method"] == focus), None)
        if ref and own and _finite(ref["seconds_per_image"]) and _finite(own["seconds_per_image"]):
            lines.append(
                f"- compute on **{gen}**: {focus} {own['seconds_per_image']:.3g} s per image ({_work(own)}) vs "
                f"{reference} {ref['seconds_per_image']:.3g} s ({_work(ref)}): "
                f"{own['seconds_per_image'] / ref['seconds_per_image']:.2f}x the time of {reference}."
            )
    return lines


def write_report(
    result: DemoResult, plan: DemoPlan, command_line: str, wall_seconds: float, path: str | os.PathLike | None = None
) -> Path:
    """Write ``report.md`` into the demo folder and return its path."""
    out = result.out_dir
    ev = result.evaluation_dir
    table = read_csv_rows(ev / "table.csv")
    comparisons = read_csv_rows(ev / "comparisons.csv")
    compute = read_csv_rows(ev / "compute.csv")
    menis = meni_tests(ev / "per_neuron.csv", table)
    reference = "ga" if "ga" in plan.methods else next(iter(plan.methods))
    focus = "egg" if "egg" in plan.methods else next(m for m in plan.methods if m != reference)
    rel = lambda p: Path(os.path.relpath(p, out)).as_posix()
    resumed = [s for s in result.stages if s.get("resumed")]
    timing = f"finished in **{wall_seconds / 60:.1f} min** of wall time"
    if resumed:
        total = sum(s["seconds"] for s in result.stages)
        timing += (
            f"; {len(resumed)} of {len(result.stages)} stages had finished in an earlier run, "
            f"all stages together took **{total / 60:.1f} min**"
        )
    sections = [
        "# egg demo report\n",
        f"`{command_line}` — {timing} (device {result.evaluation.get('device', plan.device)}).\n",
        "## Question\n",
        f"Do MEIs made by {_describe(focus)} transfer to other architectures and to the ground-truth "
        f"neurons better than MEIs made by {_describe(reference)}, and at what compute cost?\n",
        "## Answer, in numbers\n",
        "Normalized activation = response to the MEI / response to the best natural image of the dataset, both "
        "shown at the same contrast to the same evaluator (1 = as strong as the best natural image). Per neuron the "
        "seed with the best score in the generating ensemble is used.\n",
        "\n".join(answer_lines(comparisons, compute, reference, focus)) + "\n",
        "### Transfer table (mean ± s.e.m. over neurons)\n",
        markdown_table(transfer_rows(table, compute, reference)),
        _claims_section(comparisons, compute, menis, result.reconstructions, reference),
        _meni_section(menis, result),
        _reconstruction_section(result),
        _setup_section(result, plan),
        "## All tables of `egg evaluate`\n",
        (ev / "table.md").read_text(),
        "\n## Figures\n",
        *[f"![{name}]({rel(ev / name)})\n" for name in result.evaluation.get("figures", [])],
        _stage_section(result),
    ]
    if result.skipped_methods:
        sections.append("## Skipped methods\n\n" + "\n".join(f"- {m}: {why}" for m, why in result.skipped_methods.items()) + "\n")
    target = Path(path) if path is not None else out / "report.md"
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(sections))
    return target


MIN_PAIRS = 6  # the two-sided Wilcoxon signed-rank test cannot reach p < 0.05 with fewer pairs (2 / 2**n)


def verdict(p: float, difference: float, n: int) -> str:
    """Reproduced (significantly in the claimed direction), reversed (significantly against) or not reproduced."""
    if n < MIN_PAIRS:
        return f"not testable (n={n}: the Wilcoxon test needs at least {MIN_PAIRS} pairs to reach p < {ALPHA})"
    if not _finite(p):
        return "not testable"
    if p >= ALPHA:
        return "not reproduced (no significant difference)"
    return "reproduced" if difference > 0 else "reversed"


def meni_tests(per_neuron_csv: Path, table: Sequence[dict]) -> list[dict]:
    """Per (generator, evaluator): MENI / best natural image, median over neurons, and Wilcoxon of the ratio vs 1."""
    from scipy import stats

    rows = [r for r in read_csv_rows(per_neuron_csv) if r["method"] == MENI] if per_neuron_csv.is_file() else []
    out = []
    for gen in _ordered(r["generator"] for r in rows):
        for evaluator in _ordered(r["evaluator"] for r in rows if r["generator"] == gen):
            values = [r["normalized"] for r in rows if r["generator"] == gen and r["evaluator"] == evaluator]
            values = [v for v in values if _finite(v)]
            diff = [v - 1.0 for v in values]
            p = float(stats.wilcoxon(diff).pvalue) if len(values) > 1 and any(diff) else float("nan")
            above = next(
                (
                    t["fraction_above_natural"]
                    for t in table
                    if (t["generator"], t["evaluator"], t["method"]) == (gen, evaluator, MENI)
                ),
                float("nan"),
            )
            out.append(
                {
                    "generator": gen,
                    "evaluator": evaluator,
                    "role": evaluator_role(gen, evaluator),
                    "neurons": len(values),
                    "MENI / best natural (median)": float(statistics.median(values)) if values else float("nan"),
                    "fraction above natural": above,
                    "Wilcoxon p (vs 1)": p,
                }
            )
    return out


def _claims_section(
    comparisons: Sequence[dict],
    compute: Sequence[dict],
    menis: Sequence[dict],
    reconstructions: Sequence[dict],
    reference: str,
) -> str:
    """The EGG paper's claims, one line each with the statistic that decides it."""
    lines = ["### The EGG paper's claims, tested here\n"]
    egg_methods = _ordered(
        c["method_b"]
        for c in comparisons
        if c["method_a"] == reference and str(c["method_b"]).startswith("egg") and "spectral" not in str(c["method_b"])
    )
    for c in comparisons:
        if c["method_a"] != reference or c["method_b"] not in egg_methods:
            continue
        role = evaluator_role(c["generator"], c["evaluator"])
        p, diff, n = c.get("p_holm", float("nan")), c["mean_b"] - c["mean_a"], int(c["n"])
        if role == ROLES[1]:
            claim = f"{c['method_b']} MEIs transfer to the other architecture better than {reference}"
            outcome = verdict(p, diff, n)
        elif role == ROLES[0]:
            claim = f"{c['method_b']} keeps the within-architecture activation of {reference}"
            if n < MIN_PAIRS or not _finite(p):
                outcome = verdict(p, diff, n)
            else:
                outcome = (
                    "reproduced (not significantly lower)"
                    if p >= ALPHA
                    else ("reproduced (significantly higher)" if diff > 0 else "not reproduced (significantly lower)")
                )
        else:
            claim = f"{c['method_b']} MEIs drive the ground-truth neurons more than {reference} (egg's own test)"
            outcome = verdict(p, diff, n)
        lines.append(
            f"- {claim} — generated on {c['generator']}: {c['mean_b']:.2f} vs {c['mean_a']:.2f}, "
            f"n={n}, Holm p={format_value(p)}: **{outcome}**."
        )
    for gen in _ordered(c["generator"] for c in compute):
        ref = next((c for c in compute if c["generator"] == gen and c["method"] == reference), None)
        for method in egg_methods:
            own = next((c for c in compute if c["generator"] == gen and c["method"] == method), None)
            if not (ref and own and _finite(ref["seconds_per_image"]) and _finite(own["seconds_per_image"])):
                continue
            speedup = ref["seconds_per_image"] / own["seconds_per_image"]
            outcome = "reproduced" if speedup >= PAPER_SPEEDUP else ("cheaper, less than claimed" if speedup > 1 else "reversed")
            lines.append(
                f"- {method} is {PAPER_SPEEDUP}x cheaper than {reference} ({_work(own)} vs {_work(ref)}) — on {gen}: "
                f"{speedup:.1f}x: **{outcome}**."
            )
    for row in menis:
        median, p, n = row["MENI / best natural (median)"], row["Wilcoxon p (vs 1)"], row["neurons"]
        if n < MIN_PAIRS or not _finite(p):
            outcome = verdict(p, median - 1.0, n)
        elif p >= ALPHA:
            outcome = "reproduced (not significantly different from the best natural image)"
        else:
            outcome = "exceeded (above the best natural image)" if median > 1 else "not reproduced (below the best natural image)"
        lines.append(
            f"- EGG MENIs are on par with the most exciting natural images — generated on {row['generator']}, scored by "
            f"{row['evaluator']}: median ratio {median:.2f}, Wilcoxon p={format_value(p)} (n={n}): **{outcome}**."
        )
    for r in reconstructions:
        if r["role"] not in (ROLES[1], ROLES[2]):
            continue
        outcome = verdict(r["p_holm"], r["mse_ga"] - r["mse_egg"], int(r["images"]))
        lines.append(
            f"- EGG reconstructions transfer better than GA's at equal fit — generated on {r['generator']}, scored by "
            f"{r['evaluator']}: MSE {r['mse_egg']:.3g} vs {r['mse_ga']:.3g}, n={int(r['images'])} images, "
            f"Holm p={format_value(r['p_holm'])}: **{outcome}**."
        )
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""


def _meni_section(rows: Sequence[dict], result: DemoResult) -> str:
    if not rows:
        return ""
    grids = [f"![MENIs on {arch}](synth/{arch}/{MENI}/grid_egg.png)\n" for arch, m in result.runs if m == MENI]
    return (
        "## Most exciting natural images (MENIs)\n\n"
        "EGG at a small energy scale (`objective=meni`) for the same neurons; each evaluator's response to the MENI over its "
        "response to its best natural image of the dataset at the same contrast (1 = on par), tested against 1 with the "
        "Wilcoxon signed-rank test over neurons. The grids show each neuron's MENIs beside its top natural images.\n\n"
        + markdown_table(rows)
        + "\n"
        + "".join(grids)
    )


def _reconstruction_section(result: DemoResult) -> str:
    rows = result.reconstructions
    if not rows:
        return ""
    columns = [
        "generator",
        "evaluator",
        "role",
        "images",
        "mse_egg",
        "mse_ga",
        "mse_ratio_egg_over_ga",
        "fraction_egg_lower",
        "p_value",
        "p_holm",
        "ga_steps_to_match",
        "seconds_per_image_egg",
        "seconds_per_image_ga",
    ]
    grids = [
        f"![EGG reconstructions on {g}](reconstruct/{g}/egg/grid_egg.png) ![GA reconstructions on {g}](reconstruct/{g}/ga/grid_ga.png)\n"
        for g in _ordered(r["generator"] for r in rows)
    ]
    return (
        "## Population reconstructions at equal fit\n\n"
        "EGG and GA reconstruct test images from the generating ensemble's predicted population response; GA stops per "
        "image once it reaches EGG's fit in the generating ensemble (`method.match`). MSE between a scorer's responses to "
        "the reconstruction and to the target (lower is better; best seed per image); ratio = median MSE_EGG / MSE_GA "
        "with its bootstrap interval, Wilcoxon signed-rank over images, Holm over every row but the generating ensemble's. "
        "Also in `reconstruction.csv`.\n\n"
        + markdown_table([{c: r.get(c, float("nan")) for c in columns} for r in rows])
        + "\n"
        + "".join(grids)
    )


def _setup_section(result: DemoResult, plan: DemoPlan) -> str:
    sim = result.evaluation.get("simulate", {})
    lines = ["## Setup\n"]
    facts = {k: v for k, v in sim.items() if isinstance(v, (int, float, str)) and k not in ("status",)}
    if facts:
        lines.append(
            "Simulated dataset (`simulate/`): " + ", ".join(f"{k} {format_value(v)}" for k, v in list(facts.items())[:12]) + ".\n"
        )
    likeness = sim.get("grating_likeness")
    if likeness:
        lines.append(
            f"How grating-like the ground-truth neurons are (best Gabor patch / the neuron's own optimum, both at L2 norm "
            f"{likeness['norm']:.3g}; 1 = a grating detector): median {likeness['median']:.2f}, min {likeness['min']:.2f}, "
            f"{100 * likeness['fraction_at_most_0.6']:.0f}% of {likeness['neurons_measured']} measured neurons at or below 0.6. "
            "Optimum (top) and best Gabor (below) per neuron:\n\n![ground-truth optima](simulate/optimum.png)\n"
        )
    rows = []
    for arch, summaries in result.train_summaries.items():
        for k, s in enumerate(summaries):
            corr = next((v for key, v in s.items() if key.endswith("_correlation_mean")), float("nan"))
            rows.append(
                {
                    "architecture": arch,
                    "member": k,
                    "role": "generating" if k < plan.generating else "held-out",
                    "test correlation": corr if corr is not None else float("nan"),
                    "epochs": s.get("training", {}).get("epochs", "—"),
                    "minutes": s.get("training", {}).get("train_minutes", float("nan")),
                }
            )
    lines.append(
        "Encoding models (`train/<architecture>/member_<k>/`); generating members average into the ensemble "
        "that MEIs are made on, held-out members into an ensemble that only scores them:\n"
    )
    lines.append(markdown_table(rows))
    lines.append(
        f"\nNeurons: the {len(result.neurons)} best predicted by the generating members on average "
        f"(mean test correlation {result.evaluation.get('mean_test_correlation_selected', float('nan')):.3f}): "
        f"ids {', '.join(str(i) for i in result.neuron_ids)}; seeds {list(plan.seeds)}.\n"
    )
    method_rows = [
        {"method": m, "egg synth overrides": " ".join(o)} for m, o in plan.methods.items() if m not in result.skipped_methods
    ]
    lines.append(markdown_table(method_rows))
    arch_rows = [{"architecture": a, "egg train overrides": " ".join([*o, *plan.train])} for a, o in plan.architectures.items()]
    lines.append("\n" + markdown_table(arch_rows))
    random_cores = [a for a, o in plan.architectures.items() if "model/core=task_driven" in o and "model.core.weights=null" in o]
    if random_cores:
        lines.append(
            f"\nNote: the task-driven core of {', '.join(random_cores)} is randomly initialized (model.core.weights=null); "
            "the default `weights=shipped` is egg's rotation-trained backbone, `model.core.weights=<local file>` a timm checkpoint.\n"
        )
    return "\n".join(lines) + "\n"


def _stage_section(result: DemoResult) -> str:
    rows = [
        {
            "stage": s["stage"],
            "folder": s["folder"],
            "wall seconds": s["seconds"],
            "CPU seconds": s.get("cpu_seconds", float("nan")),
            "run": "earlier run" if s.get("resumed") else "this run",
        }
        for s in result.stages
    ]
    resumed = sum(bool(s.get("resumed")) for s in result.stages)
    total = sum(s["seconds"] for s in result.stages)
    cpu = sum(s.get("cpu_seconds", 0.0) for s in result.stages)
    by_kind: dict[str, float] = {}
    for s in result.stages:
        by_kind[s["command"]] = by_kind.get(s["command"], 0.0) + s["seconds"]
    kinds = ", ".join(f"{k} {v / 60:.1f} min" for k, v in by_kind.items())
    load = _load_average()
    return (
        f"\n## Stages and their time\n\nTotal wall time {total / 60:.1f} min ({kinds}); CPU time of the demo process "
        f"{cpu / 60:.1f} min over {_threads()} torch thread(s)"
        + (
            f"; load average {load:.1f} at the end (a load above the core count means other work shared the CPU)"
            if load is not None
            else ""
        )
        + ".\n\n"
        + (
            f"{resumed} of {len(rows)} stages had finished in an earlier run into this folder (their time is from then).\n\n"
            if resumed
            else ""
        )
        + markdown_table(rows, digits=1)
    )


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _work(row: dict) -> str:
    if _finite(row.get("steps")):
        return f"{int(row['steps'])} steps"
    if _finite(row.get("budget")):
        return f"{int(row['budget'])} evaluated images"
    return "work not recorded"


def _describe(method: str) -> str:
    names = {"ga": "gradient ascent", "egg": "energy-guided diffusion", "xdream": "XDream", "cmaes": "CMA-ES"}
    return f"{names[method]} ({method})" if method in names else method


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _number(text: str) -> Any:
    if text in ("", "nan", "NaN"):
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _ordered(items) -> list:
    out: list = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
