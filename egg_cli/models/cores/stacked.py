"""Data-driven stacked convolutional core after the V4 EGG paper.

A 9x9 first layer without padding, then depth-separable 5x5 layers with "same" padding, each
followed by batch norm and ELU. Only the last layer feeds the readout. The first layer's filters
carry a Laplace smoothness penalty (squared Laplacian normalized by the filters' energy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from egg_cli.errors import require

_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplace_smoothness(weight: torch.Tensor) -> torch.Tensor:
    """Sum of squared 3x3 Laplacians of conv filters ``(out, in, k, k)`` over their squared norm."""
    out_c, in_c, kh, kw = weight.shape
    kernel = _LAPLACIAN.to(weight)[None, None]
    filters = weight.reshape(out_c * in_c, 1, kh, kw)
    lap = F.conv2d(filters, kernel, padding=1)
    return lap.pow(2).sum() / (filters.pow(2).sum() + 1e-8)


class DepthSeparableConv(nn.Sequential):
    """1x1 pointwise conv (mixing channels) followed by a depthwise kxk conv, no biases."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.Conv2d(out_channels, out_channels, kernel_size, padding=padding, groups=out_channels, bias=False),
        )


class StackedConvCore(nn.Module):
    """Stack of conv -> batch norm -> ELU layers; the last layer's output is the feature map."""

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 32,
        layers: int = 4,
        input_kernel: int = 9,
        hidden_kernel: int = 5,
        depth_separable: bool = True,
        gamma_input: float = 10.0,
        batch_norm_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        require(layers >= 1, f"model.core.layers={layers} is invalid; expected an integer >= 1")
        require(channels >= 1, f"model.core.channels={channels} is invalid; expected an integer >= 1")
        require(
            input_kernel % 2 == 1 and hidden_kernel % 2 == 1, f"model.core kernels ({input_kernel}, {hidden_kernel}) must be odd"
        )
        require(gamma_input >= 0, f"model.core.gamma_input={gamma_input} is invalid; expected >= 0")
        self.in_channels = in_channels
        self.out_channels = channels
        self.gamma_input = gamma_input
        blocks = [self._block(nn.Conv2d(in_channels, channels, input_kernel, bias=False), channels, batch_norm_momentum)]
        for _ in range(layers - 1):
            pad = hidden_kernel // 2
            conv = (
                DepthSeparableConv(channels, channels, hidden_kernel, pad)
                if depth_separable
                else nn.Conv2d(channels, channels, hidden_kernel, padding=pad, bias=False)
            )
            blocks.append(self._block(conv, channels, batch_norm_momentum))
        self.layers = nn.ModuleList(blocks)

    @staticmethod
    def _block(conv: nn.Module, channels: int, momentum: float) -> nn.Sequential:
        return nn.Sequential(conv, nn.BatchNorm2d(channels, momentum=momentum), nn.ELU())

    @property
    def input_filters(self) -> torch.Tensor:
        """Weights of the first (9x9) convolution, ``(channels, in_channels, k, k)``."""
        return self.layers[0][0].weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def regularizer(self) -> torch.Tensor:
        """Laplace smoothness penalty on the first layer, times ``gamma_input``."""
        return self.gamma_input * laplace_smoothness(self.input_filters)
