#!/usr/bin/env python
"""Learned diffusion priors side by side on one image distribution: spectra, held-out loss, samples.

For every --prior (shipped names default / mixed, or egg train-prior files) and the spectral prior
fitted to the same images, draws --count samples (--steps ancestral steps) and prints the log-log
slope of each radially averaged power spectrum (1 .. size/2 cycles per image, Hann window,
channel mean) against --count images of --source (bundled photograph crops, dead_leaves, mixed:
the V4-like world's images, or a folder), the pixel std, and for the learned priors the held-out
denoising loss (diffusion/validation.py: min-SNR-5 v-loss and x0 MSE on --heldout unseen images
of --source, the same noise and 50 timesteps for every prior).

    OMP_NUM_THREADS=1 python scripts/compare_priors.py --prior default --prior mixed --source mixed
        [--count 256] [--heldout 256] [--steps 50] [--out docs/prior_mixed]

--out writes compare_priors.json, spectra.png (the radial spectra) and samples_<prior>.png (the
first 64 samples of each prior, and of the images).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from egg_cli.diffusion import load_prior
from egg_cli.diffusion.checkpoint import ema_denoiser, read_checkpoint
from egg_cli.diffusion.data import CropBank
from egg_cli.diffusion.figures import save_image_grid
from egg_cli.diffusion.loading import prior_file
from egg_cli.diffusion.spectrum import power_spectrum, radial_profile, spectral_slope
from egg_cli.diffusion.validation import denoising_loss

IMAGE_SEED = 1000  # images never drawn by a training run (train-prior draws its bank with seed 0, held-out with 1)


def radial(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return radial_profile(power_spectrum(images.float().mean(dim=1, keepdim=True))[0].numpy())


def label(name: str) -> str:
    return Path(name).parent.name if name.endswith(".pt") else Path(name).name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", action="append", help="learned prior: default, mixed or a train-prior checkpoint (repeat)")
    parser.add_argument("--source", default="bundled", help="images: bundled | dead_leaves | mixed | a folder")
    parser.add_argument("--count", type=int, default=256, help="samples per prior and images for the spectra")
    parser.add_argument("--heldout", type=int, default=256, help="unseen images for the denoising loss (0: skip)")
    parser.add_argument("--steps", default="50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="folder for compare_priors.json, spectra.png, samples_*.png")
    args = parser.parse_args()
    names = args.prior or ["default"]

    learned = {label(n): load_prior(n, steps=args.steps, device="cpu") for n in names}
    first = next(iter(learned.values()))
    size, channels = first.image_size, first.channels
    if any((p.image_size, p.channels) != (size, channels) for p in learned.values()):
        parser.error("every --prior must have the same image size and channels")
    images = CropBank(args.source, args.count + args.heldout, size, channels, seed=IMAGE_SEED + args.seed).all()
    spectrum_images, heldout = images[: args.count], images[args.count :]
    spectral = load_prior(
        "spectral", steps=args.steps, device="cpu", image_size=size, channels=channels, source=args.source, seed=IMAGE_SEED
    )

    def draw(prior) -> tuple[torch.Tensor, float]:
        t0 = time.perf_counter()
        parts = [prior.sample(min(args.batch, args.count - k), seed=args.seed + k) for k in range(0, args.count, args.batch)]
        return torch.cat(parts), time.perf_counter() - t0

    sets = {"images": (spectrum_images, 0.0)}
    for name, prior in learned.items():
        sets[name] = draw(prior)
    sets["spectral"] = draw(spectral)
    slopes = {name: spectral_slope(x) for name, (x, _) in sets.items()}
    losses = {}
    if args.heldout > 0:
        for name, path in zip(learned, names):
            model, diffusion = ema_denoiser(read_checkpoint(prior_file(path)))
            losses[name] = denoising_loss(model, diffusion, heldout, "min_snr", 5.0, timesteps=50, seed=args.seed)

    print(f"{args.count} images of {args.source} at {size}x{size}x{channels}; samples: {args.steps}-step ancestral sampling")
    print(f"{'':12s} {'slope':>8s} {'minus images':>13s} {'pixel std':>10s} {'held-out loss':>14s} {'x0 MSE':>8s}")
    for name, (x, _) in sets.items():
        loss = losses.get(name)
        held = f"{loss['loss']:14.5f} {loss['x0_mse']:8.4f}" if loss else f"{'':14s} {'':8s}"
        print(f"{name:12s} {slopes[name]:8.3f} {slopes[name] - slopes['images']:13.3f} {x.float().std().item():10.3f} {held}")
    if args.heldout > 0:
        print(f"held-out: {args.heldout} unseen images of {args.source}, 50 timesteps, the same noise for every prior")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from egg_cli.io import save_figure, write_json

        for name, (x, _) in sets.items():
            save_image_grid(x[:64], args.out / f"samples_{name}.png", nrow=8, zoom=3)
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        for name, (x, _) in sets.items():
            r, p = radial(x)
            ax.loglog(r, p, label=f"{name} (slope {slopes[name]:.2f})")
        ax.set_xlabel("spatial frequency (cycles/image)")
        ax.set_ylabel("power")
        ax.set_title(f"{args.source} images and prior samples")
        ax.legend()
        save_figure(fig, args.out / "spectra.png")
        write_json(
            args.out / "compare_priors.json",
            {
                "source": args.source,
                "count": args.count,
                "heldout": args.heldout,
                "steps": args.steps,
                "priors": names,
                "slopes": slopes,
                "pixel_std": {name: x.float().std().item() for name, (x, _) in sets.items()},
                "heldout_loss": losses,
                "seconds": {k: v[1] for k, v in sets.items()},
            },
        )
        print(f"wrote {args.out}/compare_priors.json, spectra.png and samples_*.png")


if __name__ == "__main__":
    main()
