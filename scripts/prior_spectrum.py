#!/usr/bin/env python
"""Radially averaged power spectrum slopes of prior samples against the training crops.

Draws --count samples from the learned prior (default: the shipped one) and from the spectral
prior, and --count crops of the bundled photographs at the prior's size, and prints the
log-log slope of each radially averaged power spectrum (1 .. size/2 cycles per image, Hann
window, channel mean) and the differences to the crops. The issue's bar: within 0.25.

    OMP_NUM_THREADS=1 python scripts/prior_spectrum.py [--prior default] [--count 256] [--steps 50]
        [--out docs/] [--grid docs/prior_default_samples.png]

--out writes prior_spectrum.json and prior_spectrum.png (the radial spectra); --grid writes a
PNG grid of the learned prior's first 64 samples.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from egg_cli.diffusion import load_prior
from egg_cli.diffusion.data import CropBank
from egg_cli.diffusion.figures import save_image_grid
from egg_cli.diffusion.spectrum import power_spectrum, radial_profile, spectral_slope


def radial(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return radial_profile(power_spectrum(images.float().mean(dim=1, keepdim=True))[0].numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default="default", help="learned prior: default or a train-prior checkpoint")
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--steps", default="50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="folder for prior_spectrum.json / .png")
    parser.add_argument("--grid", type=Path, default=None, help="PNG grid of 64 learned-prior samples")
    args = parser.parse_args()

    learned = load_prior(args.prior, steps=args.steps, device="cpu")
    size, channels = learned.image_size, learned.channels
    spectral = load_prior("spectral", steps=args.steps, device="cpu", image_size=size, channels=channels)
    crops = CropBank("bundled", args.count, size, channels, seed=args.seed + 1).sample(args.count, seed=args.seed + 1)

    def draw(prior) -> tuple[torch.Tensor, float]:
        t0 = time.perf_counter()
        parts = [prior.sample(min(args.batch, args.count - k), seed=args.seed + k) for k in range(0, args.count, args.batch)]
        return torch.cat(parts), time.perf_counter() - t0

    sets = {"crops": (crops, 0.0)}
    sets["learned"] = draw(learned)
    sets["spectral"] = draw(spectral)
    slopes = {name: spectral_slope(images) for name, (images, _) in sets.items()}
    print(f"{args.count} images of {size}x{size}x{channels}, {args.steps}-step ancestral sampling, learned prior {args.prior!r}")
    print(f"{'':10s} {'slope':>8s} {'minus crops':>12s} {'pixel std':>10s}")
    for name, (images, _) in sets.items():
        print(f"{name:10s} {slopes[name]:8.3f} {slopes[name] - slopes['crops']:12.3f} {images.float().std().item():10.3f}")
    if args.grid:
        save_image_grid(sets["learned"][0][:64], args.grid, nrow=8, zoom=3)
        print(f"wrote {args.grid}")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from egg_cli.io import save_figure, write_json

        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        for name, (images, _) in sets.items():
            r, p = radial(images)
            ax.loglog(r, p, label=f"{name} (slope {slopes[name]:.2f})")
        ax.set_xlabel("spatial frequency (cycles/image)")
        ax.set_ylabel("power")
        ax.legend()
        save_figure(fig, args.out / "prior_spectrum.png")
        write_json(
            args.out / "prior_spectrum.json",
            {
                "count": args.count,
                "steps": args.steps,
                "prior": args.prior,
                "slopes": slopes,
                "seconds": {k: v[1] for k, v in sets.items()},
            },
        )
        print(f"wrote {args.out / 'prior_spectrum.png'} and prior_spectrum.json")


if __name__ == "__main__":
    main()
