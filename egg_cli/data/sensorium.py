"""Read the neuralpredictors / Sensorium folder layout (FileTreeDataset) without conversion.

::

    <root>/data/images/<trial>.npy       one image per trial, (C, H, W) or (H, W)
    <root>/data/responses/<trial>.npy    (n_neurons,) responses of that trial
    <root>/meta/trials/tiers.npy         (T,) train / validation / test / final_test
    <root>/meta/neurons/unit_ids.npy     (n_neurons,)
    <root>/meta/trials/frame_image_id.npy  optional (T,): trials with equal ids showed one image

With ``frame_image_id`` each distinct image is stored once and its repeats become trials
that share an image index; without it every trial has its own image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egg_cli.data.dataset import NeuralDataset
from egg_cli.data.schema import pixel_statistics, validate_arrays
from egg_cli.errors import EggError

IMAGES_DIR = Path("data/images")
RESPONSES_DIR = Path("data/responses")
TIERS_FILE = Path("meta/trials/tiers.npy")
UNIT_IDS_FILE = Path("meta/neurons/unit_ids.npy")
FRAME_ID_FILE = Path("meta/trials/frame_image_id.npy")


def is_sensorium_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder with the ``data/`` and ``meta/`` subfolders of the layout."""
    path = Path(path)
    return path.is_dir() and (path / "data").is_dir() and (path / "meta").is_dir()


def _load_npy(root: Path, rel: Path) -> np.ndarray:
    file = root / rel
    if not file.exists():
        raise EggError(
            f"{root}: {rel} is missing; expected the Sensorium folder layout (data/images, data/responses, meta/trials/tiers.npy, meta/neurons/unit_ids.npy)"
        )
    try:
        return np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise EggError(f"{file} cannot be read as a .npy array ({err}); expected a numpy .npy file") from err


def _trial_files(root: Path, rel: Path, n_trials: int) -> list[Path]:
    folder = root / rel
    if not folder.is_dir():
        raise EggError(f"{root}: folder {rel} is missing; expected one <trial>.npy file per trial there")
    files = {p.stem: p for p in folder.glob("*.npy")}
    expected = [str(i) for i in range(n_trials)]
    missing = [name for name in expected if name not in files]
    if missing or len(files) != n_trials:
        extra = sorted(set(files) - set(expected))
        detail = f"missing {missing[0]}.npy" if missing else f"unexpected file {extra[0]}.npy"
        raise EggError(
            f"{root}: {rel} holds {len(files)} files ({detail}) but meta/trials/tiers.npy lists {n_trials} trials; "
            f"expected files 0.npy..{n_trials - 1}.npy"
        )
    return [files[name] for name in expected]


def read_sensorium_folder(root: str | Path) -> NeuralDataset:
    """Load and validate a Sensorium / neuralpredictors folder dataset."""
    root = Path(root)
    trial_tiers = _load_npy(root, TIERS_FILE).astype(str)
    if trial_tiers.ndim != 1:
        raise EggError(f"{root}: {TIERS_FILE} has shape {trial_tiers.shape}; expected (trials,)")
    n_trials = len(trial_tiers)
    neuron_ids = _load_npy(root, UNIT_IDS_FILE)
    image_files = _trial_files(root, IMAGES_DIR, n_trials)
    response_files = _trial_files(root, RESPONSES_DIR, n_trials)

    if (root / FRAME_ID_FILE).exists():
        frame_ids = _load_npy(root, FRAME_ID_FILE)
        if frame_ids.shape != (n_trials,):
            raise EggError(f"{root}: {FRAME_ID_FILE} has shape {frame_ids.shape}; expected ({n_trials},), one id per trial")
        unique_ids, first_trial, trial_image = np.unique(frame_ids, return_index=True, return_inverse=True)
    else:
        first_trial = np.arange(n_trials)
        trial_image = np.arange(n_trials)

    images = _stack(root, IMAGES_DIR, [_load_trial(image_files[t], image=True) for t in first_trial])
    responses = _stack(root, RESPONSES_DIR, [_load_trial(f, image=False) for f in response_files]).astype(np.float32)
    if responses.shape[1] != len(neuron_ids):
        raise EggError(
            f"{root}: data/responses/*.npy hold {responses.shape[1]} neurons but {UNIT_IDS_FILE} lists {len(neuron_ids)}; "
            "expected one response per unit id"
        )
    tiers = trial_tiers[first_trial]
    disagree = np.flatnonzero(trial_tiers != tiers[trial_image])
    if len(disagree):
        t = int(disagree[0])
        raise EggError(
            f"{root}: trial {t} is in tier {trial_tiers[t]!r} but its image (frame_image_id) is also shown in tier "
            f"{tiers[trial_image[t]]!r}; expected each image in one tier"
        )
    validate_arrays(str(root), images, responses, trial_image.astype(np.int64), tiers, neuron_ids)
    stats = pixel_statistics(images, tiers)
    return NeuralDataset(
        path=root,
        images=images.astype(np.float32),
        responses=responses,
        trial_image=trial_image.astype(np.int64),
        tiers=tiers,
        neuron_ids=neuron_ids,
        pixel_mean=stats["pixel_mean"],
        pixel_std=stats["pixel_std"],
        attrs={"format": "sensorium-folder", "source": str(root)},
    )


def _load_trial(file: Path, image: bool) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise EggError(f"{file} cannot be read as a .npy array ({err}); expected a numpy .npy file") from err
    if not image:
        return array.reshape(-1)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise EggError(f"{file}: image has shape {array.shape}; expected (C, H, W) or (H, W)")
    return array


def _stack(root: Path, rel: Path, arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        raise EggError(f"{root}: {rel} holds no trials; expected at least one <trial>.npy file")
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise EggError(
            f"{root}: {rel}/*.npy have different shapes {shapes[0]} and {shapes[1]}; expected one shape for all trials"
        )
    return np.stack(arrays)
