"""Batch planning: problems x seeds form the batch; its size comes from a memory estimate.

The memory a step needs per batch element is measured, not guessed: a probe runs one step's
forward and backward pass at batch sizes 1 and 2 while counting the bytes autograd saves for
the backward pass; the difference is the per-element cost (the parameters cancel). The batch
size is the largest that fits a fraction of the free memory of the device (free CUDA memory,
or ``MemAvailable`` of the host), capped by ``max_batch_size``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import torch

from egg_cli.errors import EggError

log = logging.getLogger(__name__)

#: share of the free memory a synthesis batch may plan to use, per device type
MEMORY_FRACTION = {"cuda": 0.5, "cpu": 0.25}
#: peak memory of a step relative to what autograd saves (activations of the backward pass)
PEAK_FACTOR = 2.0


def saved_bytes(probe: Callable[[int], None], batch: int) -> int:
    """Bytes autograd saves for backward while ``probe(batch)`` runs one step."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        probe(batch)
    return total


def bytes_per_element(probe: Callable[[int], None]) -> int:
    """Per-element memory of one step: saved bytes at batch 2 minus batch 1 (at least 1 byte)."""
    return max(1, saved_bytes(probe, 2) - saved_bytes(probe, 1))


def free_memory(device: torch.device) -> int:
    """Free bytes on ``device``: CUDA free memory, or the host's available memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def choose_batch_size(per_element: int, device: torch.device, n_elements: int, max_batch_size: int) -> int:
    """Largest batch whose estimated peak fits the device's memory budget."""
    budget = free_memory(device) * MEMORY_FRACTION.get(device.type, 0.25)
    fits = int(budget // (per_element * PEAK_FACTOR))
    if fits < 1:
        raise EggError(
            f"one synthesis image needs about {per_element * PEAK_FACTOR / 2**20:.0f} MiB but only "
            f"{budget / 2**20:.0f} MiB are available on {device}; use a smaller model or prior, or another device"
        )
    size = max(1, min(fits, n_elements, int(max_batch_size)))
    log.info("batch size %d (%.1f MiB per image, budget %.0f MiB)", size, per_element / 2**20, budget / 2**20)
    return size


def resolve_batch_size(
    spec: int | str, probe: Callable[[int], None], device: torch.device, n_elements: int, max_batch_size: int
) -> int:
    """``batch_size=auto`` measures memory through ``probe``; an integer is used as given."""
    if isinstance(spec, str):
        if spec != "auto":
            raise EggError(f"batch_size={spec!r} not understood; expected a positive integer or 'auto'")
        return choose_batch_size(bytes_per_element(probe), device, n_elements, max_batch_size)
    if int(spec) < 1:
        raise EggError(f"batch_size={spec} must be a positive integer or 'auto'")
    return int(spec)


def plan_chunks(n_problems: int, n_seeds: int, batch_size: int, whole_problems: bool = False) -> list[list[tuple[int, int]]]:
    """Split the (problem, seed) grid, problem-major, into chunks of at most ``batch_size``.

    With ``whole_problems`` (methods that couple the seeds of a problem) a chunk holds all seeds
    of each of its problems, so it may exceed ``batch_size`` when one problem has more seeds.
    """
    elements = [(p, s) for p in range(n_problems) for s in range(n_seeds)]
    if not whole_problems:
        return [elements[i : i + batch_size] for i in range(0, len(elements), batch_size)]
    per_chunk = max(1, batch_size // n_seeds)
    return [
        [(p, s) for p in range(start, min(start + per_chunk, n_problems)) for s in range(n_seeds)]
        for start in range(0, n_problems, per_chunk)
    ]


def chunk_problem_seed(chunk: Sequence[tuple[int, int]], seeds: Sequence[int]) -> tuple[torch.Tensor, list[int]]:
    """Problem indices (tensor) and seed values of a chunk's elements."""
    return torch.as_tensor([p for p, _ in chunk], dtype=torch.long), [int(seeds[s]) for _, s in chunk]
