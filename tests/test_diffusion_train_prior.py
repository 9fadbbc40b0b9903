"""End-to-end `egg train-prior` on a tiny config: folder of RGB images, checkpoints, resume, loading."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from egg_cli.diffusion import load_prior

EGG = [sys.executable, "-c", "from egg_cli.cli import main; main()"]
TINY = [
    "data.image_size=16",
    "data.channels=3",
    "data.bank_size=200",
    "unet.channel_mult=[1,2]",
    "unet.attention_resolutions=8",
    "training.batch_size=4",
    "training.warmup_steps=2",
    "log_every=2",
    "checkpoint_every=3",
    "sample_every=3",
    "sample_count=4",
    "sample_steps=4",
    "data.heldout=8",
    "calibration_crops=8",
    "calibration_grid=4",
    "progress=false",
    "device=cpu",
]


def _images(folder: Path) -> Path:
    import matplotlib.pyplot as plt

    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        smooth = np.cumsum(np.cumsum(rng.normal(size=(80, 96, 3)), axis=0), axis=1)
        smooth = (smooth - smooth.min()) / np.ptp(smooth)
        plt.imsave(folder / f"photo{k}.png", smooth)
    return folder


def _train(out: Path, *overrides: str, preset: list[str] = TINY) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EGG, "train-prior", f"hydra.run.dir={out}", *preset, *overrides],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.slow
def test_train_prior_runs_resumes_and_its_prior_loads(tmp_path):
    folder = _images(tmp_path / "photos")
    out = tmp_path / "run"
    proc = _train(out, f"data.source={folder}", "training.steps=6")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 6
    assert summary["crop_slope"] < -1.0  # integrated noise images have a steep spectrum
    for name in (
        "checkpoint.pt",
        "prior.pt",
        "metrics.csv",
        "crops.png",
        "samples_000003.png",
        "samples_000006.png",
        "config.yaml",
    ):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 3, 4, 6]
    assert [r["sample_slope"] != "" for r in rows] == [False, True, False, True]
    assert all(np.isfinite(float(r["loss"])) for r in rows)

    # same command with more steps resumes from checkpoint.pt
    proc = _train(out, f"data.source={folder}", "training.steps=8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from" in proc.stdout + proc.stderr
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 3, 4, 6, 8]
    assert json.loads((out / "summary.json").read_text())["steps"] == 8

    prior = load_prior(str(out / "prior.pt"), steps="5", device="cpu")
    assert (prior.image_size, prior.channels, prior.num_steps) == (16, 3, 5)
    assert prior.diffusion.config.mean_type == "v" and prior.diffusion.config.noise_schedule == "cosine"
    assert prior.diffusion.calibrated is not None  # variance calibrated on crops with the last sample grid
    sample = prior.sample(2, seed=0)
    assert sample.shape == (2, 3, 16, 16) and torch.isfinite(sample).all()
    # the small export holds only the EMA weights
    assert set(torch.load(out / "prior.pt", weights_only=True)) >= {"ema", "unet", "diffusion"}
    assert "optimizer" not in torch.load(out / "prior.pt", weights_only=True)

    # resuming with other flags is refused with one line naming the difference
    proc = _train(out, f"data.source={folder}", "training.steps=9", "unet.num_res_blocks=2")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("egg: error:")]
    assert len(errors) == 1 and "num_res_blocks: 1 vs 2" in errors[0]


def test_train_prior_rejects_missing_image_folder(tmp_path):
    proc = _train(tmp_path / "run", f"data.source={tmp_path / 'nowhere'}", "training.steps=2")
    assert proc.returncode == 2
    assert f"egg: error: image folder {tmp_path / 'nowhere'} does not exist" in proc.stderr
    assert not (tmp_path / "run").exists()


# two steps of the shipped architecture (32x32 grayscale) on the V4-like world's images
WORLD = [
    "data.source=mixed",
    "data.bank_size=32",
    "data.heldout=8",
    "training.steps=2",
    "training.batch_size=8",
    "log_every=1",
    "sample_every=2",
    "sample_count=2",
    "sample_steps=4",
    "calibration_crops=8",
    "calibration_grid=4",
    "progress=false",
    "device=cpu",
]


@pytest.mark.slow
def test_train_prior_fine_tunes_the_shipped_prior_on_world_images(tmp_path):
    tuned, scratch = tmp_path / "tuned", tmp_path / "scratch"
    for out, init in ((tuned, "default"), (scratch, "none")):
        proc = _train(out, f"init={init}", preset=WORLD)
        assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {out: list(csv.DictReader(open(out / "metrics.csv"))) for out in (tuned, scratch)}
    # the shipped weights already denoise; random weights do not (their first loss is several times higher)
    assert float(rows[tuned][0]["loss"]) < 0.1 < float(rows[scratch][0]["loss"])
    held = {out: float(rows[out][-1]["heldout_loss"]) for out in (tuned, scratch)}
    assert held[tuned] < 0.5 * held[scratch]
    summary = json.loads((tuned / "summary.json").read_text())
    assert summary["heldout_loss"] == pytest.approx(held[tuned])
    prior = torch.load(tuned / "prior.pt", weights_only=True)
    assert prior["init"] == "default" and prior["data"]["source"] == "mixed"

    # an init prior of other flags is refused with one line naming the difference
    proc = _train(tmp_path / "other", "init=default", "unet.num_channels=64", preset=WORLD)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("egg: error:")]
    assert len(errors) == 1 and "init=default" in errors[0] and "num_channels: 32 vs 64" in errors[0]
