"""Settings of ``egg rsm map`` and ``egg rsm residual`` (configs/rsm_map.yaml), typed and range-checked."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from egg_cli.errors import EggError


@dataclass
class GroupSettings:
    """Group maps over several subjects: one-sample sign-flip permutation test (``group.*``)."""

    n_permutations: int = 1000  # sign flips (all 2^S when that is fewer)
    max_over: str = "voxels"  # max statistic over voxels per layer | all
    tfce: bool = False  # threshold-free cluster enhancement of the t maps
    alpha: float = 0.05


@dataclass
class MappingSettings:
    """Inputs and options of a searchlight mapping (the keys of configs/rsm_map.yaml)."""

    data: str | list[str] | None = None  # 4D NIfTI, a glob, or a list of 3D files ... or bids.root
    mask: str | None = None
    events: str | None = None
    rdms: str | None = None  # layer RDM file ...
    images: str | None = None  # ... or images whose features (model) give the layer RDMs
    model: dict[str, Any] = field(default_factory=dict)  # feature model of images: arch, source, weights, layers, ...
    layers: list[str] | None = None  # subset / order of layers (None: all)
    radius: float = 9.0
    radius_unit: str = "mm"  # mm | voxels
    threshold: float = 0.5  # fraction of a centre's sphere inside the mask
    min_voxels: int = 10
    distance: str = "correlation"  # correlation | euclidean | crossnobis
    comparison: str = "spearman"  # spearman | pearson | tau-a
    n_permutations: int = 1000  # condition-label permutations; 0 = no test
    max_over: str = "voxels"  # voxels | all
    alpha: float = 0.05
    overlap_threshold: float | None = None  # a statistic threshold for overlaps instead of FWER significance
    chunk_size: int = 2000
    truth: str | None = None
    seed: int = 0
    bids: dict[str, Any] = field(default_factory=dict)  # BidsSelection keys (root, subjects, task, ...)
    glm: dict[str, Any] = field(default_factory=dict)  # GlmConfig keys
    group: GroupSettings = field(default_factory=GroupSettings)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MappingSettings:
        """The settings among ``values`` (a command's whole config: other keys are not read)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names}
        group = dict(kwargs.pop("group", None) or {})
        known = {f.name for f in dataclasses.fields(GroupSettings)}
        unknown = sorted(set(group) - known)
        if unknown:
            raise EggError(f"group.{unknown[0]} is not a setting; expected one of {', '.join(sorted(known))}")
        for key in ("bids", "glm", "model"):
            kwargs[key] = dict(kwargs.get(key) or {})
        return cls(**kwargs, group=GroupSettings(**group))

    @property
    def has_data(self) -> bool:
        """True when condition patterns (``data``) are given."""
        return self.data not in (None, "", "???")

    def check(self) -> None:
        """Range checks of the searchlight and permutation settings, before any data is read."""
        checks = {
            "radius": (float(self.radius) > 0, "a positive radius"),
            "threshold": (0 <= float(self.threshold) <= 1, "a fraction between 0 and 1"),
            "min_voxels": (int(self.min_voxels) >= 1, "a positive integer"),
            "n_permutations": (int(self.n_permutations) >= 0, "0 (no test) or a positive integer"),
            "alpha": (0 < float(self.alpha) < 1, "a level between 0 and 1"),
            "chunk_size": (int(self.chunk_size) >= 1, "a positive integer"),
        }
        for key, (ok, expected) in checks.items():
            if not ok:
                raise EggError(f"{key}={getattr(self, key)}: expected {expected}")
        if self.radius_unit not in ("mm", "voxels"):
            raise EggError(f"radius_unit={self.radius_unit!r} is not supported; expected mm or voxels")
