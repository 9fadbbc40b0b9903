"""A small fixed-contrast gradient ascent, for checking what drives ground-truth neurons.

Each image of the batch maximizes one neuron's response under a fixed L2 norm (contrast) in
z-scored units: projected gradient ascent on the sphere, with the gradient normalized per image
and a step size that decays linearly. Nothing couples the images of a batch. (The full GA of
``egg synth`` lives in egg_cli.synthesis.)
"""

from __future__ import annotations

import torch
from torch import nn


def rescale_to_norm(images: torch.Tensor, norm: float) -> torch.Tensor:
    """Scale each image (B, C, H, W) to L2 norm ``norm``."""
    flat = images.flatten(1).norm(dim=1).clamp_min(1e-12)
    return images * (norm / flat).view(-1, 1, 1, 1)


def fixed_norm_ascent(
    model: nn.Module,
    neurons: torch.Tensor,
    norm: float,
    steps: int = 200,
    step_size: float = 0.1,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image per entry of ``neurons`` (B,) maximizing that neuron's response at L2 norm ``norm``.

    ``step_size`` is the step length relative to ``norm``. Returns the images (B, C, H, W) and
    the responses of the returned images (B,).
    """
    neurons = torch.as_tensor(neurons, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    shape = (len(neurons), *model.input_shape)
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    x = rescale_to_norm(torch.randn(shape, generator=generator), norm).to(device)
    rows = torch.arange(len(neurons), device=device)
    for step in range(steps):
        x.requires_grad_(True)
        score = model(x)[rows, neurons.to(device)]
        (grad,) = torch.autograd.grad(score.sum(), x)
        with torch.no_grad():
            grad = rescale_to_norm(grad, 1.0)
            lr = step_size * norm * (1 - step / steps)
            x = rescale_to_norm(x + lr * grad, norm)
    with torch.no_grad():
        final = model(x)[rows, neurons.to(device)]
    return x.detach(), final
