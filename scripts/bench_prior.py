#!/usr/bin/env python
"""Benchmark of diffusion priors: one UNet forward+backward and one 50-step sample, in one run.

CPU: the default prior (shipped weights; the train_prior.yaml architecture with random weights
if the weights are missing). With a GPU (or --device cuda): also the 256x256 ADM configuration
of the EGG paper with random weights, its convolutions in fp16 (as guided-diffusion runs it).

    OMP_NUM_THREADS=1 python scripts/bench_prior.py [--batch 1] [--steps 50] [--repeats 3]

Prints seconds per call and the ratio sample / (forward+backward) measured in the same run
(about the step count when sampling is dominated by UNet forwards, which cost about a third of
a forward+backward); absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time

import torch

from egg_cli.diffusion import (
    ADM256_FLAGS,
    DEFAULT_WEIGHTS,
    DiffusionConfig,
    GaussianDiffusion,
    LearnedPrior,
    UNetConfig,
    UNetModel,
    load_prior,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Best of ``repeats`` wall times after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def default_prior(device: torch.device, steps: str) -> tuple[LearnedPrior, str]:
    if DEFAULT_WEIGHTS.is_file():
        return load_prior("default", steps=steps, device=device), "default prior (shipped weights)"
    from omegaconf import OmegaConf

    from egg_cli.diffusion.training import spec_from_config

    cfg = OmegaConf.load(__file__.rsplit("/scripts/", 1)[0] + "/egg_cli/configs/train_prior.yaml")
    spec = spec_from_config(cfg)
    return LearnedPrior(
        UNetModel(spec.unet).to(device), GaussianDiffusion(spec.diffusion, steps), spec.image_size, spec.channels, device
    ), "default architecture (random weights: shipped weights missing)"


def adm256_prior(device: torch.device, steps: str, dtype: torch.dtype) -> LearnedPrior:
    with torch.device(device):
        model = UNetModel(UNetConfig.from_flags(ADM256_FLAGS))
    if dtype != torch.float32:
        model.convert_blocks(dtype)
    return LearnedPrior(model, GaussianDiffusion(DiffusionConfig.from_flags(ADM256_FLAGS), steps), 256, 3, device)


def bench(prior: LearnedPrior, label: str, batch: int, repeats: int) -> None:
    device = prior.device
    shape = (batch, prior.channels, prior.image_size, prior.image_size)
    model = prior.model
    for p in model.parameters():
        p.requires_grad_(True)
    x = torch.randn(shape, device=device)
    t = torch.full((batch,), 500, device=device, dtype=torch.long)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        model(x, t).float().square().mean().backward()

    def sample() -> None:
        gens = [torch.Generator(device=device).manual_seed(k) for k in range(batch)]
        for _ in prior.sample_progressive(torch.randn(shape, device=device), gens):
            pass

    fb = timed(forward_backward, device, repeats)
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.requires_grad_(False)
    smp = timed(sample, device, max(1, repeats // 3))
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{label}: {params / 1e6:.2f}M parameters, {prior.image_size}x{prior.image_size}x{prior.channels}, batch {batch}, {device}"
    )
    print(f"  UNet forward+backward   {fb * 1000:9.1f} ms")
    print(f"  {prior.num_steps}-step sample         {smp * 1000:9.1f} ms")
    print(f"  ratio sample / fwd+bwd  {smp / fb:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", default="50")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", help="auto: CPU always, plus CUDA when available")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    devices = [torch.device("cpu")]
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
    for device in devices:
        prior, label = default_prior(device, args.steps)
        bench(prior, label, args.batch, args.repeats)
        if device.type == "cuda":
            for dtype in (torch.float16, torch.float32):
                bench(
                    adm256_prior(device, args.steps, dtype),
                    f"adm256 random weights, blocks in {dtype}".replace("torch.", ""),
                    args.batch,
                    args.repeats,
                )
                torch.cuda.empty_cache()
            print(f"  peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
