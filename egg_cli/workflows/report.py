"""report.md of `egg demo`: the question, the answer in numbers, the tables and figures, the timing."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egg_cli.io import atomic_path
from egg_cli.markdown import format_value, markdown_table
from egg_cli.workflows.demo import GROUND_TRUTH, DemoPlan, DemoResult

ALPHA = 0.05
ROLES = ("same architecture (held-out)", "other architecture (held-out)", "ground truth")


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
    reference = "ga" if "ga" in plan.methods else next(iter(plan.methods))
    focus = "egg" if "egg" in plan.methods else next(m for m in plan.methods if m != reference)
    rel = lambda p: Path(os.path.relpath(p, out)).as_posix()
    sections = [
        "# egg demo report\n",
        f"`{command_line}` — finished in **{wall_seconds / 60:.1f} min** of wall time "
        f"(device {result.evaluation.get('device', plan.device)}).\n",
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
        }
        for s in result.stages
    ]
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
