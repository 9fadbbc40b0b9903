"""Attention readout from the EGG paper (Pierzchlewicz et al. 2023).

A fixed 2D sinusoidal position encoding is added to the core's features (with dropout); shared
bias-free linear maps give a key and a value per position; each neuron's learned query is
compared with every key (scaled dot product), a softmax over positions gives an image-dependent
pooling map, and the pooled value is projected on a per-neuron feature vector plus a bias.
Both linear maps are folded into the per-neuron vectors (exactly the same function), so the cost
grows with the core's channels rather than with the key/value size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from egg_cli.errors import require


def _axis_encoding(length: int, dim: int) -> torch.Tensor:
    """Sinusoidal encoding ``(length, dim)`` of positions 0..length-1 (sin and cos interleaved)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    n_freq = (dim + 1) // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(n_freq, dtype=torch.float32) * 2 / max(dim, 1))
    angles = pos * freq[None]
    enc = torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(length, 2 * n_freq)
    return enc[:, :dim]


def sinusoidal_position_encoding(channels: int, height: int, width: int) -> torch.Tensor:
    """Fixed 2D encoding ``(channels, height, width)``: half the channels code y, half code x."""
    dim_y = channels // 2
    dim_x = channels - dim_y
    ey = _axis_encoding(height, dim_y)[:, None, :].expand(height, width, dim_y)
    ex = _axis_encoding(width, dim_x)[None, :, :].expand(height, width, dim_x)
    return torch.cat([ey, ex], dim=-1).permute(2, 0, 1).contiguous()


class AttentionReadout(nn.Module):
    """One-head attention pooling per neuron over the positions of the feature map."""

    def __init__(
        self,
        in_shape: Sequence[int],
        n_neurons: int,
        bias_init: torch.Tensor | None = None,
        dim: int = 128,
        dropout: float = 0.1,
        init_query_std: float = 0.01,
        gamma_query: float = 0.001,
        gamma_features: float = 0.01,
    ) -> None:
        super().__init__()
        require(dim >= 1, f"model.readout.dim={dim} is invalid; expected an integer >= 1")
        require(0 <= dropout < 1, f"model.readout.dropout={dropout} is invalid; expected in [0, 1)")
        require(
            gamma_query >= 0 and gamma_features >= 0,
            f"model.readout gamma_query={gamma_query}, gamma_features={gamma_features} are invalid; expected >= 0",
        )
        channels, height, width = (int(s) for s in in_shape)
        self.in_shape = (channels, height, width)
        self.n_neurons = n_neurons
        self.gamma_query, self.gamma_features = gamma_query, gamma_features
        self.scale = 1.0 / math.sqrt(channels)
        self.register_buffer("position_encoding", sinusoidal_position_encoding(channels, height, width), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.key = nn.Linear(channels, dim, bias=False)
        self.value = nn.Linear(channels, dim, bias=False)
        self.query = nn.Parameter(torch.randn(n_neurons, dim) * init_query_std)
        self.features = nn.Parameter(torch.full((n_neurons, dim), 1.0 / dim))
        self.bias = nn.Parameter(
            torch.zeros(n_neurons) if bias_init is None else torch.as_tensor(bias_init, dtype=torch.float32).clone()
        )

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooling maps ``(B, positions, n)`` (softmax over positions) and the tokens ``(B, positions, C)``.

        The score of position p for neuron n is ``key(token_p) . query_n = token_p . (W_k^T query_n)``;
        folding the key map into the queries gives the same scores at a cost that scales with the
        number of channels instead of the key size.
        """
        tokens = self.dropout(x + self.position_encoding).flatten(2).transpose(1, 2)  # (B, P, C)
        queries = self.query @ self.key.weight  # (n, C)
        weights = torch.softmax(tokens @ queries.T * self.scale, dim=1)
        return weights, tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # sum_p w_pn value(token_p) . f_n = (sum_p w_pn token_p) . (W_v^T f_n): pool tokens, then project
        weights, tokens = self.attention(x)
        pooled = torch.einsum("bpn,bpc->bnc", weights, tokens)
        return torch.einsum("bnc,nc->bn", pooled, self.features @ self.value.weight) + self.bias

    def regularizer(self) -> torch.Tensor:
        """L1 penalties on the queries and on the feature vectors."""
        return self.gamma_query * self.query.abs().sum() + self.gamma_features * self.features.abs().sum()
