"""Markdown renderings of evaluation tables (the CSV files hold the same numbers in full precision)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def format_value(value: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` significant decimals, NaN as an em dash, everything else as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value != 0 and (abs(value) < 10 ** (-digits) or abs(value) >= 1e5):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` (dicts) in ``columns`` order."""
    if not rows:
        return "_(no rows)_\n"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(c, ""), digits) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def wide_activation_rows(rows: Sequence[dict], evaluators: Sequence[str]) -> list[dict]:
    """Long activation rows -> one row per (generator, method), one column per evaluator ("mean ± sem")."""
    wide: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r["generator"], r["method"])
        entry = wide.setdefault(key, {"generator": r["generator"], "method": r["method"], "neurons": r["neurons"]})
        sem = f" ± {r['sem']:.2f}" if math.isfinite(r["sem"]) else ""
        entry[r["evaluator"]] = f"{r['mean']:.2f}{sem}"
    return [
        {
            **{"generator": e["generator"], "method": e["method"], "neurons": e["neurons"]},
            **{ev: e.get(ev, "—") for ev in evaluators},
        }
        for e in wide.values()
    ]
