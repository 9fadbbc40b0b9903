"""Weights shipped with egg: default.pt, the default diffusion prior (see docs/prior.md)."""
