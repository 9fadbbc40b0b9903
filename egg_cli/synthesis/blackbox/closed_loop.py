"""Closed-loop file protocol between egg and a recording rig (specification: docs/closed_loop.md).

Per generation egg writes, into ``<exchange>/<generation folder>/``, one 8-bit PNG per image
(the model-input image in raw pixel units: z * pixel_std + pixel_mean, clipped to 0-255),
``manifest.csv`` and, last, ``manifest.json`` (its appearance means "ready"). The rig shows the
images and writes ``responses.csv`` (first column ``image`` = file name, one column per recorded
channel, empty or NaN = not scored) into the same folder, atomically (temporary file + rename).
egg polls for that file until ``timeout_s`` and fails with a message naming the file. When the
search ends egg writes ``<exchange>/done.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egg_cli.errors import EggError
from egg_cli.io import atomic_path, write_csv, write_json
from egg_cli.synthesis.blackbox.scorers import Scorer, ScorerContext
from egg_cli.synthesis.objectives import NeuronObjective, Objective

log = logging.getLogger(__name__)

PROTOCOL = "egg-closed-loop"
PROTOCOL_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_CSV = "manifest.csv"
RESPONSES = "responses.csv"
DONE = "done.json"
IMAGE_COLUMN = "image"


def generation_folder(exchange: Path, generation: int, session: str = "") -> Path:
    """``gen_0007`` (or ``<session>_gen_0007`` for a later chunk of problems) under the exchange folder."""
    name = f"gen_{generation:04d}"
    return exchange / (f"{session}_{name}" if session else name)


def to_uint8(images: torch.Tensor, pixel_mean: float, pixel_std: float) -> np.ndarray:
    """Z-scored images (N, C, H, W) -> raw pixels as uint8 (N, H, W, C), clipped to 0-255."""
    raw = images.detach().float().cpu().numpy() * pixel_std + pixel_mean
    return np.clip(np.rint(raw), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def write_png(path: Path, pixels: np.ndarray) -> None:
    """One (H, W, C) uint8 image as PNG (gray for one channel, RGB for three), atomically."""
    from PIL import Image

    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def read_png(path: Path) -> np.ndarray:
    """A PNG as float32 (C, H, W) raw pixel values (gray -> 1 channel, colour -> RGB)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            mode = "L" if image.mode in ("L", "I", "I;16", "1") else "RGB"
            array = np.asarray(image.convert(mode), dtype=np.float32)
    except (OSError, ValueError) as err:
        raise EggError(f"{path} could not be read as an image: {err}") from err
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def write_generation(
    folder: Path,
    names: Sequence[str],
    images: torch.Tensor,
    rows: Sequence[dict[str, Any]],
    info: dict[str, Any],
    pixel_mean: float,
    pixel_std: float,
) -> None:
    """PNGs, ``manifest.csv`` and finally ``manifest.json`` of one generation."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, pixels in zip(names, to_uint8(images, pixel_mean, pixel_std)):
        write_png(folder / name, pixels)
    write_csv(folder / MANIFEST_CSV, rows)
    write_json(folder / MANIFEST, {**info, "images": list(rows)})


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a generation folder, validated."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise EggError(f"{path} could not be read as a JSON manifest: {err}") from err
    if manifest.get("protocol") != PROTOCOL or int(manifest.get("version", -1)) != PROTOCOL_VERSION:
        raise EggError(
            f"{path}: protocol {manifest.get('protocol')!r} version {manifest.get('version')!r}; "
            f"expected {PROTOCOL!r} version {PROTOCOL_VERSION}"
        )
    return manifest


def read_responses(path: Path) -> tuple[list[str], dict[str, dict[str, float]]]:
    """``responses.csv`` -> (channel columns, {image name: {channel: value}}); empty/NaN cells are NaN."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as err:
        raise EggError(f"{path} could not be read: {err}") from err
    if not rows or not rows[0] or rows[0][0].strip() != IMAGE_COLUMN:
        raise EggError(
            f"{path}: the first header cell must be {IMAGE_COLUMN!r} followed by channel names; "
            f"got {rows[0][:3] if rows else 'an empty file'}"
        )
    channels = [c.strip() for c in rows[0][1:]]
    table: dict[str, dict[str, float]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(channels) + 1:
            raise EggError(
                f"{path} line {line}: {len(row)} cells; expected {len(channels) + 1} (image + {len(channels)} channels)"
            )
        values = {}
        for channel, cell in zip(channels, row[1:]):
            text = cell.strip()
            try:
                values[channel] = float(text) if text and text.lower() not in ("nan", "na") else math.nan
            except ValueError as err:
                raise EggError(
                    f"{path} line {line}: channel {channel!r} holds {text!r}; expected a number, empty or NaN"
                ) from err
        table[row[0].strip()] = values
    return channels, table


class ClosedLoopScorer(Scorer):
    """Scores images through a recording rig that answers in an exchange folder."""

    name = "closed_loop"
    noisy = True

    def __init__(
        self,
        objective: Objective,
        exchange: str | Path,
        pixel_mean: float,
        pixel_std: float,
        channels: Sequence[str] | None = None,
        timeout_s: float = 600.0,
        poll_s: float = 0.2,
        session: str = "",
    ) -> None:
        if not isinstance(objective, NeuronObjective):
            raise EggError(f"scorer=closed_loop records neurons: expected objective=neuron, got objective={objective.name}")
        if not timeout_s > 0 or not poll_s > 0:
            raise EggError(f"scorer.timeout_s={timeout_s} and scorer.poll_s={poll_s} must be positive")
        ids = objective.problem_table()["neuron_id"]
        if channels is None:
            channels = [str(i) for i in ids]
        channels = [str(c) for c in channels]
        if len(channels) != objective.n_problems:
            raise EggError(
                f"scorer.channels lists {len(channels)} channels for {objective.n_problems} neurons; "
                "expected one channel per selected neuron, in the order of neurons="
            )
        self.objective = objective
        self.sign = -1.0 if objective.inhibitory else 1.0
        self.exchange = Path(exchange)
        self.pixel_mean = float(pixel_mean)
        self.pixel_std = float(pixel_std)
        self.channels = channels
        self.timeout_s = float(timeout_s)
        self.poll_s = float(poll_s)
        self.session = session

    def begin(self, problem: torch.Tensor, seeds: Sequence[int]) -> None:
        super().begin(problem, seeds)
        self.exchange.mkdir(parents=True, exist_ok=True)
        done = self.exchange / DONE
        if done.exists():
            done.unlink()

    def image_names(self, element: np.ndarray, generation: int) -> list[str]:
        """File names, unique over the session: generation, element and index within the element."""
        counts: dict[int, int] = {}
        names = []
        prefix = f"{self.session}_" if self.session else ""
        for b in np.asarray(element).tolist():
            k = counts.get(b, 0)
            counts[b] = k + 1
            names.append(f"{prefix}g{generation:04d}_e{b:03d}_{k:03d}.png")
        return names

    def score(self, images: torch.Tensor, element: np.ndarray, generation: int) -> np.ndarray:
        element = np.asarray(element)
        folder = generation_folder(self.exchange, generation, self.session)
        names = self.image_names(element, generation)
        problem = self.problem.numpy()[element]
        rows = [
            {
                "image": name,
                "element": int(b),
                "neuron_index": int(self.objective.neurons[p]),
                "channel": self.channels[p],
                "seed": self.seeds[b],
            }
            for name, b, p in zip(names, element.tolist(), problem.tolist())
        ]
        responses = folder / RESPONSES
        if not self._already_shown(folder, names):
            if responses.exists():
                responses.unlink()  # left over from a different set of images
            info = {
                "protocol": PROTOCOL,
                "version": PROTOCOL_VERSION,
                "generation": int(generation),
                "session": self.session,
                "channels": sorted(set(self.channels), key=self.channels.index),
                "responses_file": RESPONSES,
                "image_shape": list(images.shape[1:]),
                "pixel_mean": self.pixel_mean,
                "pixel_std": self.pixel_std,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            write_generation(folder, names, images, rows, info, self.pixel_mean, self.pixel_std)
        log.info(
            "generation %d: %d images in %s; waiting for %s (timeout %.0f s)",
            generation,
            len(names),
            folder,
            responses.name,
            self.timeout_s,
        )
        table = self._wait(responses, generation)
        return self._lookup(responses, table, names, [r["channel"] for r in rows])

    def _already_shown(self, folder: Path, names: list[str]) -> bool:
        """True when a resumed search finds this generation's images already written (maybe answered)."""
        if not (folder / MANIFEST).exists():
            return False
        try:
            manifest = read_manifest(folder)
        except EggError:
            return False
        return [row.get("image") for row in manifest.get("images", [])] == names

    def _wait(self, responses: Path, generation: int) -> tuple[list[str], dict[str, dict[str, float]]]:
        start = time.monotonic()
        last_note = start
        last_error: EggError | None = None
        while True:
            if responses.exists():
                try:
                    return read_responses(responses)
                except EggError as err:  # a rig that writes in place: give it time to finish
                    last_error = err
            now = time.monotonic()
            if now - start > self.timeout_s:
                if last_error is not None:
                    raise last_error
                raise EggError(
                    f"closed loop: no {responses} after {self.timeout_s:.0f} s (generation {generation}); the rig must "
                    f"write it (see docs/closed_loop.md); resume with hydra.run.dir=<this run folder> or raise "
                    "scorer.timeout_s"
                )
            if now - last_note > 30:
                log.info("still waiting for %s (%.0f of %.0f s)", responses, now - start, self.timeout_s)
                last_note = now
            time.sleep(self.poll_s)

    def _lookup(
        self, path: Path, table: tuple[list[str], dict[str, dict[str, float]]], names: list[str], channels: list[str]
    ) -> np.ndarray:
        columns, values = table
        missing = sorted(set(channels) - set(columns))
        if missing:
            raise EggError(
                f"{path} has no column for channel(s) {missing}; expected columns {IMAGE_COLUMN},"
                f"{','.join(sorted(set(channels)))} (any extra channels are ignored)"
            )
        unknown = sorted(set(values) - set(names))
        if unknown:
            log.warning("%s answers %d image(s) this generation did not show, e.g. %s; ignored", path, len(unknown), unknown[0])
        scores = np.array([values.get(n, {}).get(c, math.nan) for n, c in zip(names, channels)], dtype=np.float64)
        skipped = int(np.isnan(scores).sum())
        if skipped:
            log.warning("%s: %d of %d images unscored (NaN or missing rows)", path, skipped, len(names))
        return self.sign * scores

    def finish(self) -> None:
        write_json(
            self.exchange / DONE,
            {
                "protocol": PROTOCOL,
                "version": PROTOCOL_VERSION,
                "status": "finished",
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )

    def settings(self) -> dict[str, Any]:
        return {"scorer": self.name, "exchange": str(self.exchange), "channels": self.channels, "timeout_s": self.timeout_s}


def closed_loop_scorer(
    context: ScorerContext,
    exchange: str | Path | None = None,
    channels: Sequence[str] | None = None,
    timeout_s: float = 600.0,
    poll_s: float = 0.2,
) -> ClosedLoopScorer:
    """``scorer=closed_loop``: a rig answering in ``exchange`` (default: ``<run folder>/exchange``)."""
    if exchange in (None, ""):
        if context.work_dir is None:
            raise EggError("scorer.exchange is not set; expected the folder shared with the rig")
        exchange = context.work_dir / "exchange"
    return ClosedLoopScorer(
        context.objective,
        exchange,
        context.adapter.pixel_mean,
        context.adapter.pixel_std,
        channels=channels,
        timeout_s=float(timeout_s),
        poll_s=float(poll_s),
        session=context.session,
    )
