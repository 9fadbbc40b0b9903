"""The natural-image reference: each problem's best images of a dataset, at the synthesis contrast.

An MEI is judged against the best natural image *at the same contrast*: every dataset image is
z-scored with the model's pixel statistics, adapted to the model's input (resize, channels) and
rescaled to the synthesis norm, then scored by the objective. The top images per problem are
kept (for MENIs they are shown next to the synthesized images); the best score at the images'
own contrast is kept too, for reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from egg_cli.synthesis.adapter import ImageAdapter, image_norms, project_norm
from egg_cli.synthesis.objectives import Objective


@torch.no_grad()
def natural_reference(
    objective: Objective,
    images_raw: np.ndarray,
    norm: float | None,
    device: torch.device,
    indices: Sequence[int] | None = None,
    top_k: int = 4,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Top ``top_k`` natural images per problem by objective score at L2 norm ``norm``.

    ``images_raw`` (N, C, H, W) are in raw pixel units; ``indices`` are their dataset indices
    (default 0..N-1). Returns arrays with problems first: ``index`` and ``score`` (P, K),
    ``images`` (P, K, C, H, W) as the model saw them, ``native_best_index`` /
    ``native_best_score`` (P,) at the images' own contrast, plus ``norm``, ``n_images`` and
    ``native_norm_median`` (median L2 norm of the z-scored natural images).
    """
    model = objective.model
    n = len(images_raw)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    top_k = int(min(top_k, n))
    adapter = ImageAdapter.for_dataset_images(images_raw.shape[1:], model).to(device)
    fixed_scores, native_scores, norms = [], [], []
    for i in tqdm(range(0, n, batch_size), desc="natural images", disable=not progress, leave=False):
        raw = torch.as_tensor(images_raw[i : i + batch_size], dtype=torch.float32, device=device)
        native = adapter.from_raw(raw)
        norms.append(image_norms(native).cpu())
        native_scores.append(objective.score_all(native).float().cpu())
        fixed = native if norm is None else project_norm(native, norm)
        fixed_scores.append(objective.score_all(fixed).float().cpu())
    fixed_all = torch.cat(fixed_scores).numpy().T  # (P, N)
    native_all = torch.cat(native_scores).numpy().T
    order = np.argsort(-fixed_all, axis=1, kind="stable")[:, :top_k]
    top_images = []
    for row in order:
        raw = torch.as_tensor(images_raw[row], dtype=torch.float32, device=device)
        native = adapter.from_raw(raw)
        top_images.append((native if norm is None else project_norm(native, norm)).cpu().numpy())
    native_best = np.argmax(native_all, axis=1)
    return {
        "index": indices[order].astype(np.int64),
        "score": np.take_along_axis(fixed_all, order, axis=1).astype(np.float32),
        "images": np.stack(top_images).astype(np.float32),
        "native_best_index": indices[native_best].astype(np.int64),
        "native_best_score": native_all[np.arange(len(native_all)), native_best].astype(np.float32),
        "norm": float("nan") if norm is None else float(norm),
        "n_images": int(n),
        "native_norm_median": float(torch.cat(norms).median()),
    }
