"""Exponential moving average of model weights with warm-up."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow`` = EMA of a model's parameters (buffers copied).

    The decay at update ``n`` is ``min(decay, (1 + n) / (10 + n))`` when ``warmup`` is on, so the
    average follows the fast-changing early weights instead of remembering the random init.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        self.decay = float(decay)
        self.warmup = warmup
        self.updates = 0
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.lerp_(p.detach(), 1 - d)
        for s, b in zip(self.shadow.buffers(), model.buffers()):
            s.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"updates": self.updates, "weights": self.shadow.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.shadow.load_state_dict(state["weights"])
