"""The sweep table: one row per job (overrides, status, headline metrics) as CSV and Markdown."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egg_cli.io import atomic_path, write_csv
from egg_cli.markdown import markdown_table
from egg_cli.sweeps.collect import FAILED, STATUSES, JobResult


def split_override(override: str) -> tuple[str, str]:
    """``"method.energy_scale=5"`` -> ``("method.energy_scale", "5")``."""
    key, _, value = override.partition("=")
    return key, value


def table_rows(results: Sequence[JobResult], sweep_dir: Path) -> list[dict[str, Any]]:
    """One flat dict per job, every row with the same columns: job, overrides, status, metrics, run facts."""
    keys = _ordered(split_override(o)[0] for r in results for o in r.overrides)
    metrics = _ordered(k for r in results for k in r.metrics)
    rows = []
    for r in results:
        values = dict(split_override(o) for o in r.overrides)
        row: dict[str, Any] = {"job": r.num}
        row.update({k: values.get(k, "") for k in keys})
        row["status"] = r.status
        row.update({k: r.metrics.get(k, "") for k in metrics})
        row["duration_s"] = r.record.get("duration_s", "")
        row["device"] = r.record.get("device", "")
        row["folder"] = os.path.relpath(r.folder, sweep_dir) if r.folder is not None else ""
        row["error"] = r.error
        rows.append(row)
    return rows


def markdown(results: Sequence[JobResult], sweep_dir: Path) -> str:
    """The sweep as Markdown: counts, overrides shared by all jobs, the job table (overrides that differ,
    status, metrics), then the failed jobs with their error lines."""
    counts = Counter(r.status for r in results)
    lines = [f"# sweep {sweep_dir}", "", f"{len(results)} jobs: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES), ""]
    rows = table_rows(results, sweep_dir)
    common = common_overrides(results)
    if common:
        lines += [f"common overrides: `{' '.join(common)}`", ""]
    if rows:
        shared = {split_override(o)[0] for o in common}
        columns = [c for c in rows[0] if c != "error" and c not in shared]
        lines.append(markdown_table(rows, columns, cell=_cell).rstrip("\n"))
    failed = [r for r in results if r.status == FAILED]
    if failed:
        lines += ["", "## failed jobs", ""]
        for r in failed:
            where = f" ({r.folder / 'error.txt'})" if r.folder is not None and (r.folder / "error.txt").exists() else ""
            own = [o for o in r.overrides if o not in common]
            lines.append(f"- job {r.num} `{' '.join(own) or 'no overrides'}`: {r.error}{where}")
    return "\n".join(lines) + "\n"


def common_overrides(results: Sequence[JobResult]) -> list[str]:
    """Overrides shared by every job (shown once above the Markdown table, kept as columns in the CSV)."""
    if len(results) < 2:
        return []
    shared = set(results[0].overrides).intersection(*(r.overrides for r in results[1:]))
    return [o for o in results[0].overrides if o in shared]


def write_tables(results: Sequence[JobResult], sweep_dir: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write ``jobs.csv`` and ``jobs.md`` into ``out_dir``; return their paths."""
    csv_path, md_path = out_dir / "jobs.csv", out_dir / "jobs.md"
    write_csv(csv_path, table_rows(results, sweep_dir))
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown(results, sweep_dir))
    return csv_path, md_path


def _ordered(items: Any) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value) if value is not None else ""
