"""Layer RDM files: the model side of searchlight RSA, written by ``rsm synth``/``rsm simulate``.

HDF5 layout: ``layers`` (L,) strings; ``rsms`` (L, K, K) Pearson correlation between the K
images' feature vectors; ``rdms`` (L, K, K) = 1 - rsms (correlation distance); optional
``conditions`` (K,) image names (what BIDS ``trial_type`` values refer to; default
``image_00`` ...); attrs ``model`` (architecture), ``image_set`` (what the images were) and ``n_conditions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from egg_cli.errors import EggError
from egg_cli.io import atomic_hdf5
from egg_cli.rsm.features import LayerFeatures, extract
from egg_cli.rsm.matrices import layer_rsms, upper


@dataclass
class LayerRdms:
    """RDMs of L layers over the same K conditions."""

    layers: list[str]
    rdms: np.ndarray  # (L, K, K)
    attrs: dict
    conditions: list[str] = field(default_factory=list)

    @property
    def condition_names(self) -> list[str]:
        """Image names of the K conditions (``image_00`` ... when the file has none)."""
        return self.conditions or default_condition_names(self.n_conditions)

    @property
    def vectors(self) -> np.ndarray:
        """(L, K(K-1)/2) upper triangles."""
        return upper(self.rdms)

    @property
    def n_conditions(self) -> int:
        return self.rdms.shape[-1]

    def select(self, layers: list[str] | None) -> LayerRdms:
        """Subset (and order) of layers; all when ``layers`` is empty or None."""
        if not layers:
            return self
        missing = [name for name in layers if name not in self.layers]
        if missing:
            raise EggError(f"layers {missing} are not in the layer RDM file; expected some of {self.layers}")
        index = [self.layers.index(name) for name in layers]
        return LayerRdms(list(layers), self.rdms[index], self.attrs, self.conditions)


def default_condition_names(k: int) -> list[str]:
    """``image_00``, ``image_01``, ...: the names ``rsm simulate`` gives its K images."""
    return [f"image_{i:02d}" for i in range(k)]


def compute_layer_rdms(model: LayerFeatures, images: torch.Tensor, image_set: str, model_name: str = "") -> LayerRdms:
    """Correlation-distance RDMs of every layer of ``model`` for (K, 3, H, W) images in [0, 1]."""
    feats = extract(model, images)
    rsms = layer_rsms({k: v.double() for k, v in feats.items()}, model.layers).numpy()
    return LayerRdms(model.layers, 1.0 - rsms, {"model": model_name, "image_set": image_set, "n_conditions": len(images)})


def write_layer_rdms(path: str | Path, rdms: LayerRdms) -> None:
    """Write the HDF5 layout above, atomically."""
    with atomic_hdf5(path) as f:
        f.create_dataset("layers", data=np.array(rdms.layers, dtype=h5py.string_dtype()))
        f.create_dataset("rdms", data=rdms.rdms)
        f.create_dataset("rsms", data=1.0 - rdms.rdms)
        if rdms.conditions:
            f.create_dataset("conditions", data=np.array(rdms.conditions, dtype=h5py.string_dtype()))
        for key, value in rdms.attrs.items():
            f.attrs[key] = value


def read_layer_rdms(path: str | Path) -> LayerRdms:
    """Read and validate a layer RDM file."""
    path = Path(path)
    if not path.is_file():
        raise EggError(f"rdms={path} does not exist; expected a layer RDM file (layer_rdms.h5 from rsm synth or rsm simulate)")
    try:
        with h5py.File(path, "r") as f:
            if "rdms" not in f or "layers" not in f:
                raise EggError(f"rdms={path} lacks the 'rdms' or 'layers' dataset; expected the layer RDM layout")
            layers = [x.decode() if isinstance(x, bytes) else str(x) for x in f["layers"][()]]
            rdms = np.asarray(f["rdms"][()], dtype=np.float64)
            conditions = (
                [x.decode() if isinstance(x, bytes) else str(x) for x in f["conditions"][()]] if "conditions" in f else []
            )
            attrs: Mapping = dict(f.attrs)
    except OSError as err:
        raise EggError(f"rdms={path} cannot be read as HDF5: {err}") from err
    if rdms.ndim != 3 or rdms.shape[1] != rdms.shape[2] or rdms.shape[0] != len(layers):
        raise EggError(f"rdms={path}: 'rdms' has shape {rdms.shape}; expected (L={len(layers)}, K, K)")
    if not np.isfinite(rdms).all():
        raise EggError(f"rdms={path}: 'rdms' contains NaN or infinite values; expected finite dissimilarities")
    if conditions and len(conditions) != rdms.shape[1]:
        raise EggError(f"rdms={path}: {len(conditions)} condition names for {rdms.shape[1]} conditions; expected one name each")
    return LayerRdms(layers, rdms, {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items()}, conditions)
