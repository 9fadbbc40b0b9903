"""Train egg's task-driven backbone: a timm ResNet-18 trunk (to layer2) that predicts image rotation.

Self-supervised rotation prediction (Gidaris et al. 2018): each grayscale natural image is shown
at 0, 90, 180 or 270 degrees and the network names the angle; to do so it must learn oriented
edges, contours and object parts. The trunk (conv1 ... layer2) is what `model/core=task_driven`
uses; the 4-way head is dropped when the weights are saved.

Images: random crops of the bundled photographs (rotation is only defined for images with an
upright; dead-leaves images have none), z-scored with the crops' statistics, at 64x64.
Resumable: ``--state`` keeps the optimizer and step; rerun to continue where it stopped.

    python scripts/train_backbone.py --minutes 20          # writes egg_cli/models/weights/resnet18_rotation.pt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from egg_cli.data.natural import load_photographs, random_crops
from egg_cli.io import atomic_path
from egg_cli.models.cores.task_driven import SHIPPED_WEIGHTS

TRUNK = ("conv1.", "bn1.", "layer1.", "layer2.")
MEAN, STD = 0.45, 0.25  # z-scoring of [0, 1] crops, close to the bundled photographs' statistics


class RotationNet(nn.Module):
    """ResNet-18 trunk to layer2, global average pooling, a linear 4-way rotation classifier."""

    def __init__(self) -> None:
        super().__init__()
        import timm

        self.net = timm.create_model("resnet18", pretrained=False, num_classes=0)
        self.head = nn.Linear(128, 4)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        return n.layer2(n.layer1(n.maxpool(n.act1(n.bn1(n.conv1(x))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).mean((2, 3)))


def batch(photos: list[np.ndarray], size: int, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` crops, each rotated by a random multiple of 90 degrees, and the rotation labels."""
    crops = torch.from_numpy((random_crops(photos, n, size, rng) - MEAN) / STD)
    labels = torch.from_numpy(rng.integers(0, 4, size=n))
    rotated = torch.stack([torch.rot90(c, int(k), dims=(1, 2)) for c, k in zip(crops, labels)])
    return rotated.expand(-1, 3, -1, -1).contiguous(), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--state", type=Path, default=Path("outputs/backbone/state.pt"))
    parser.add_argument("--out", type=Path, default=SHIPPED_WEIGHTS)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = RotationNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, history = 0, []
    if args.state.is_file():
        saved = torch.load(args.state, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        step, history = saved["step"], saved["history"]
        print(f"resumed at step {step}")
    photos = load_photographs("bundled")
    rng = np.random.default_rng(args.seed + step)
    held_out = batch(photos, args.size, 512, np.random.default_rng(12345))
    start = time.perf_counter()
    model.train()
    while time.perf_counter() - start < args.minutes * 60:
        x, y = batch(photos, args.size, args.batch, rng)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 50 == 0:
            model.eval()
            with torch.no_grad():
                accuracy = float((model(held_out[0]).argmax(1) == held_out[1]).float().mean())
            model.train()
            history.append({"step": step, "loss": loss.item(), "held_out_accuracy": accuracy})
            print(f"step {step} loss {loss.item():.3f} held-out rotation accuracy {accuracy:.3f}", flush=True)
            args.state.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(args.state) as tmp:
                torch.save(
                    {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "history": history}, tmp
                )
    trunk = {k: v.clone() for k, v in model.net.state_dict().items() if k.startswith(TRUNK)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        torch.save(
            {
                "state_dict": trunk,
                "model_name": "resnet18",
                "layer": "layer2",
                "task": "rotation",
                "steps": step,
                "held_out_accuracy": history[-1]["held_out_accuracy"] if history else None,
            },
            tmp,
        )
    print(f"wrote {args.out} ({sum(v.numel() for v in trunk.values())} values, {step} steps)")


if __name__ == "__main__":
    main()
