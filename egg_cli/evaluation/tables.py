"""Evaluation tables reshaped for Markdown (rendered by :mod:`egg_cli.markdown`)."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
