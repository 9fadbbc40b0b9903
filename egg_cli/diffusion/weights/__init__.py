"""Weights shipped with egg: default.pt (the default diffusion prior, bundled photograph crops) and
mixed.pt (the prior of the V4-like world's images), both 32x32 grayscale (see docs/prior.md)."""
