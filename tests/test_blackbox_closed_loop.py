"""Closed-loop file protocol: manifest and PNGs out, responses in; an end-to-end session with the rig script."""

import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from egg_cli.errors import EggError
from egg_cli.synthesis.blackbox.closed_loop import ClosedLoopScorer, read_png, read_responses, to_uint8
from egg_cli.synthesis.objectives import NeuronObjective

sys.path.insert(0, str(Path(__file__).parent))
from blackbox_assets import checkpoint_on, tiny_simulation
from synthesis_toys import gabor_neurons

ROOT = Path(__file__).resolve().parents[1]
EGG = [sys.executable, "-c", "from egg_cli.cli import main; main()"]


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_responses_file_is_parsed_with_empty_and_nan_cells_as_unscored(tmp_path):
    path = tmp_path / "responses.csv"
    _write(path, "image,7,9\na.png,1.5,\nb.png,NaN,2\n\n")
    channels, table = read_responses(path)
    assert channels == ["7", "9"]
    assert table["a.png"]["7"] == 1.5 and np.isnan(table["a.png"]["9"]) and np.isnan(table["b.png"]["7"])


@pytest.mark.parametrize(
    "text, match",
    [
        ("name,7\na.png,1\n", "first header cell must be 'image'"),
        ("image,7\na.png,lots\n", "line 2: channel '7' holds 'lots'"),
        ("image,7,8\na.png,1\n", "line 2: 2 cells; expected 3"),
    ],
)
def test_malformed_responses_files_are_named_with_line_and_problem(tmp_path, text, match):
    path = tmp_path / "responses.csv"
    _write(path, text)
    with pytest.raises(EggError, match=match):
        read_responses(path)


def test_png_round_trip_keeps_raw_pixels_within_rounding():
    images = torch.randn(2, 1, 8, 8) * 0.5
    pixels = to_uint8(images, 120.0, 60.0)
    assert pixels.shape == (2, 8, 8, 1) and pixels.dtype == np.uint8
    assert np.abs(pixels[..., 0] - (images[:, 0].numpy() * 60 + 120)).max() <= 0.5 + 1e-4


def _scorer(tmp_path, **kw):
    objective = NeuronObjective(gabor_neurons(4, 16), [2, 0])
    scorer = ClosedLoopScorer(objective, tmp_path / "exchange", 120.0, 60.0, **kw)
    scorer.begin(torch.tensor([0, 1]), [0, 0])
    return scorer


def test_scorer_writes_pngs_and_manifest_and_reads_each_images_channel(tmp_path):
    scorer = _scorer(tmp_path, timeout_s=20, poll_s=0.02)
    images = torch.randn(4, 1, 16, 16) * 0.3
    element = np.array([0, 0, 1, 1])
    folder = tmp_path / "exchange" / "gen_0003"

    def rig():
        while not (folder / "manifest.json").exists():
            time.sleep(0.01)
        manifest = json.loads((folder / "manifest.json").read_text())
        names = [row["image"] for row in manifest["images"]]
        assert [row["channel"] for row in manifest["images"]] == ["102", "102", "100", "100"]  # neuron ids
        assert all(read_png(folder / n).shape == (1, 16, 16) for n in names)
        rows = "\n".join(f"{n},{k}.0,{10 + k}.0,99" for k, n in enumerate(names) if k != 1)  # image 1 unscored
        _write(folder / "responses.csv", "image,100,102,101\n" + rows + "\n")

    thread = threading.Thread(target=rig)
    thread.start()
    scores = scorer.score(images, element, 3)
    thread.join()
    # element 0 optimizes neuron index 2 (id 102), element 1 neuron index 0 (id 100)
    assert scores[0] == 10.0 and np.isnan(scores[1]) and scores[2] == 2.0 and scores[3] == 3.0
    with open(folder / "manifest.csv") as f:
        assert [r["neuron_index"] for r in csv.DictReader(f)] == ["2", "2", "0", "0"]
    # a resumed search finds the answered generation and reads it without showing it again
    before = (folder / "manifest.json").stat().st_mtime_ns
    assert np.array_equal(scorer.score(images, element, 3), scores, equal_nan=True)
    assert (folder / "manifest.json").stat().st_mtime_ns == before
    scorer.finish()
    assert json.loads((tmp_path / "exchange" / "done.json").read_text())["status"] == "finished"


def test_scorer_times_out_naming_the_responses_file(tmp_path):
    scorer = _scorer(tmp_path, timeout_s=0.3, poll_s=0.05)
    with pytest.raises(EggError, match=r"no .*gen_0000/responses.csv after 0 s .*docs/closed_loop.md"):
        scorer.score(torch.zeros(2, 1, 16, 16), np.array([0, 1]), 0)


def test_scorer_rejects_responses_without_the_neurons_channel(tmp_path):
    scorer = _scorer(tmp_path, timeout_s=5, poll_s=0.02)
    folder = tmp_path / "exchange" / "gen_0000"
    folder.mkdir(parents=True)
    names = scorer.image_names(np.array([0, 1]), 0)
    _write(folder / "responses.csv", "image,100\n" + "".join(f"{n},1\n" for n in names))

    def write_later():  # the responses file must be answered after the manifest: pretend the rig was fast
        time.sleep(0.2)
        _write(folder / "responses.csv", "image,100\n" + "".join(f"{n},1\n" for n in names))

    thread = threading.Thread(target=write_later)
    thread.start()
    with pytest.raises(EggError, match=r"no column for channel\(s\) \['102'\]"):
        scorer.score(torch.zeros(2, 1, 16, 16), np.array([0, 1]), 0)
    thread.join()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("closed_loop")
    dataset = tiny_simulation(root / "dataset.h5")
    return {"dataset": dataset, "model": checkpoint_on(dataset, root / "model.pt")}


@pytest.mark.slow
def test_closed_loop_session_against_the_simulated_rig_script(simulated, tmp_path):
    """egg synth method=xdream scorer=closed_loop: no rig -> clear timeout (exit 2); then
    scripts/simulated_rig.py answers as a subprocess and the same command resumes and finishes."""
    out, exchange = tmp_path / "run", tmp_path / "exchange"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        *EGG,
        "synth",
        f"hydra.run.dir={out}",
        "progress=false",
        f"model={simulated['model']}",
        "method=xdream",
        "method.budget=160",
        "neurons=[1,3]",
        "seeds=[0]",
        "generator.grid=6",
        "scorer=closed_loop",
        f"scorer.exchange={exchange}",
        "scorer.poll_s=0.05",
        "natural.enabled=false",
    ]
    proc = subprocess.run([*command, "scorer.timeout_s=1"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "closed loop: no" in proc.stderr and "gen_0000/responses.csv" in proc.stderr and "hydra.run.dir" in proc.stderr
    assert (exchange / "gen_0000" / "manifest.json").exists() and not (out / "synthesis.h5").exists()
    rig = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "simulated_rig.py"),
            "--exchange",
            str(exchange),
            "--dataset",
            str(simulated["dataset"]),
            "--noise",
            "none",
            "--skip",
            "0.1",
            "--poll",
            "0.05",
            "--linger",
            "0.5",
            "--idle-timeout",
            "240",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        proc = subprocess.run([*command, "scorer.timeout_s=120"], capture_output=True, text=True, env=env, timeout=400)
        rig_out, _ = rig.communicate(timeout=60)
    finally:
        if rig.poll() is None:
            rig.kill()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert rig.returncode == 0, rig_out[-2000:]
    folders = sorted(p.name for p in exchange.iterdir() if p.is_dir())
    assert folders == [f"gen_{g:04d}" for g in range(8)]
    assert (exchange / "done.json").exists()
    # the rig's answers are the ground truth of the PNGs it was shown: recompute one generation
    from egg_cli.simulation import load_ground_truth

    truth = load_ground_truth(simulated["dataset"])
    _, table = read_responses(exchange / "gen_0005" / "responses.csv")
    manifest = json.loads((exchange / "gen_0005" / "manifest.json").read_text())
    row = next(r for r in manifest["images"] if not np.isnan(table[r["image"]][r["channel"]]))
    x = (torch.as_tensor(read_png(exchange / "gen_0005" / row["image"]))[None] - truth.pixel_mean) / truth.pixel_std
    assert abs(table[row["image"]][row["channel"]] - float(truth(x)[0, row["neuron_index"]])) < 1e-4
    # the rig left about a tenth of the images unscored (NaN) and the search went on
    unscored = 0
    for folder in folders:
        _, table = read_responses(exchange / folder / "responses.csv")
        unscored += sum(np.isnan(values["1"]) for values in table.values())  # channel = neuron id
    assert 10 <= unscored <= 60
    with h5py.File(out / "synthesis.h5") as f:
        assert f.attrs["method"] == "xdream"
        trace = f["trace"][()]
        assert trace.shape == (2, 1, 8) and (np.diff(trace, axis=2) >= 0).all()
        assert (trace[:, 0, -1] > trace[:, 0, 0]).all()  # the rig's neurons were driven harder over the session
        assert f["extras/codes"].shape == (2, 1, 36)
        assert np.isnan(f["extras/final_expected_score"][()]).all()  # a rig gives no noise-free score
        settings = json.loads(f.attrs["method_settings"])
        assert settings["scorer_resolved"]["scorer"] == "closed_loop"
    assert (out / "best_so_far.csv").exists() and (out / "best_so_far.png").exists()
