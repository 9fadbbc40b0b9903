"""Load a state dict and report every incompatibility in one line."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from egg_cli.errors import EggError

_MAX_LISTED = 6


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" (+{len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def state_incompatibilities(module: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable problems (missing keys, unexpected keys, shape mismatches); empty if it fits."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs expected {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_listing(shapes)}")
    return problems


def load_state_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` or raise one-line :class:`EggError` naming ``source``."""
    problems = state_incompatibilities(module, state)
    if problems:
        raise EggError(f"{source} does not fit the model built from its config: {'; '.join(problems)}")
    module.load_state_dict(state)
