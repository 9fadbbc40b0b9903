"""Markdown tables for reports (evaluation, demo, sweeps); the CSV files beside them hold full precision."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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


def markdown_table(
    rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 3, cell: Callable[[Any], str] | None = None
) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` (dicts) in ``columns`` order; ``cell`` formats a value
    (default :func:`format_value` with ``digits``); a ``|`` inside a cell is escaped."""
    cell = cell or (lambda value: format_value(value, digits))
    if not rows:
        return "_(no rows)_\n"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(c, "")).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines) + "\n"
