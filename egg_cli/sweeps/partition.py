"""Check a sweep's SLURM request (CPUs, memory, GPUs, time) against its partition before sbatch.

sbatch accepts a request that no node of the partition can hold and the jobs then stay pending
forever (Reason=PartitionConfig). :func:`check_request` asks ``sinfo`` for the partition's node
shapes and raises :class:`~egg_cli.errors.EggError` with one line when no node fits; without
``sinfo`` on PATH it logs that the check was skipped.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from egg_cli.errors import EggError

log = logging.getLogger("egg.sweep")

SINFO_FORMAT = "%P|%c|%m|%G|%l"  # partition (default marked *), CPUs, memory MB, gres, time limit


@dataclass(frozen=True)
class NodeShape:
    """What one kind of node of a partition offers to a job."""

    partition: str
    cpus: int
    mem_mb: int
    gpus: int
    time_min: float  # math.inf for an unlimited partition


@dataclass(frozen=True)
class Request:
    """What each job of a sweep asks for (per node)."""

    cpus: int
    mem_mb: int
    gpus: int
    time_min: float

    @classmethod
    def from_launcher(cls, params: Mapping[str, Any]) -> Request:
        """The request of ``hydra.launcher`` (SlurmQueueConf keys); unset values ask for the minimum."""
        tasks = int(params.get("tasks_per_node") or 1)
        gpus = int(params.get("gpus_per_node") or 0) or gres_gpus(str(params.get("gres") or ""))
        return cls(
            cpus=int(params.get("cpus_per_task") or 1) * tasks,
            mem_mb=int(params.get("mem_gb") or 0) * 1024,
            gpus=gpus,
            time_min=float(params.get("timeout_min") or 0),
        )


def gres_gpus(gres: str) -> int:
    """GPU count in a SLURM gres string: ``gpu:a100:4(S:0-1),shard:8`` -> 4; ``(null)`` -> 0."""
    total = 0
    for item in gres.split(","):
        fields = re.sub(r"\(.*?\)", "", item).strip().split(":")
        if fields[0] == "gpu":
            total += int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
    return total


def slurm_minutes(text: str) -> float:
    """A SLURM time limit in minutes: ``infinite``, ``30``, ``4:00:00``, ``1-12:00:00``, ``2-06``."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return float("inf")
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:  # minutes[:seconds]
        hours, minutes, seconds = 0, parts[0], parts[1] if len(parts) > 1 else 0
    return int(days or 0) * 1440 + hours * 60 + minutes + seconds / 60


def parse_sinfo(text: str) -> list[NodeShape]:
    """Node shapes from ``sinfo --noheader --format=SINFO_FORMAT`` output."""
    nodes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        partition, cpus, mem, gres, limit = line.strip().split("|")
        nodes.append(NodeShape(partition, int(cpus.rstrip("+")), int(mem.rstrip("+")), gres_gpus(gres), slurm_minutes(limit)))
    return nodes


def partition_nodes(partition: str | None) -> list[NodeShape] | None:
    """The node shapes of ``partition`` (None: the cluster's default one); None without ``sinfo``."""
    if shutil.which("sinfo") is None:
        return None
    try:
        done = subprocess.run(["sinfo", "--noheader", f"--format={SINFO_FORMAT}"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as err:
        raise EggError("sinfo did not answer within 30 s; expected a reachable SLURM controller") from err
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise EggError(f"sinfo failed ({first}); expected a reachable SLURM controller")
    nodes = parse_sinfo(done.stdout)
    if partition is None:
        chosen = [n for n in nodes if n.partition.endswith("*")]
        require_any(chosen, "the cluster has no default partition; set hydra.launcher.partition", nodes)
    else:
        chosen = [n for n in nodes if n.partition.rstrip("*") == partition]
        require_any(chosen, f"hydra.launcher.partition={partition} is not a partition of this cluster", nodes)
    return chosen


def require_any(chosen: list[NodeShape], message: str, nodes: list[NodeShape]) -> None:
    """Raise ``message`` (with the partitions sinfo lists) when ``chosen`` is empty."""
    if not chosen:
        names = sorted({n.partition.rstrip("*") for n in nodes})
        raise EggError(f"{message}; expected one of: {', '.join(names) or 'none (sinfo lists no partition)'}")


def check_request(params: Mapping[str, Any]) -> None:
    """Raise one line when no node of the sweep's partition can hold one job of it."""
    partition = params.get("partition")
    nodes = partition_nodes(partition)
    if nodes is None:
        log.info("sinfo not found: the sweep's CPUs, memory, GPUs and time are not checked against a partition")
        return
    request = Request.from_launcher(params)
    if any(fits(request, node) for node in nodes):
        return
    name = nodes[0].partition.rstrip("*")
    largest = NodeShape(
        name,
        max(n.cpus for n in nodes),
        max(n.mem_mb for n in nodes),
        max(n.gpus for n in nodes),
        max(n.time_min for n in nodes),
    )
    too_big = [
        f"hydra.launcher.{key}={value} > {limit}"
        for key, value, limit, over in (
            ("cpus_per_task", params.get("cpus_per_task"), f"{largest.cpus} CPUs", request.cpus > largest.cpus),
            ("mem_gb", params.get("mem_gb"), f"{largest.mem_mb / 1024:.1f} GB", request.mem_mb > largest.mem_mb),
            ("gpus_per_node", request.gpus, f"{largest.gpus} GPUs", request.gpus > largest.gpus),
            ("timeout_min", params.get("timeout_min"), f"{largest.time_min:g} min", request.time_min > largest.time_min),
        )
        if over
    ]
    detail = f"{', '.join(too_big)} (the most a node offers)" if too_big else "no single node has all of the request"
    raise EggError(
        f"the sweep's jobs cannot run on partition {name}: {detail}; lower them or choose another hydra.launcher.partition"
    )


def fits(request: Request, node: NodeShape) -> bool:
    """True when one job of ``request`` fits on ``node``."""
    return (
        request.cpus <= node.cpus
        and request.mem_mb <= node.mem_mb
        and request.gpus <= node.gpus
        and request.time_min <= node.time_min
    )
