"""Readouts: feature map (B,C,H,W) -> per-neuron linear drive (B, n_neurons) before the output nonlinearity."""

from egg_cli.models.readouts.attention import AttentionReadout, sinusoidal_position_encoding
from egg_cli.models.readouts.gaussian import GaussianReadout

__all__ = ["AttentionReadout", "GaussianReadout", "sinusoidal_position_encoding"]
