"""Activations of named layers of torchvision or timm networks (GoogLeNet inception blocks by default).

The feature model takes images in [0, 1] (B, 3, H, W), applies the backbone's input
normalization and returns one flattened activation vector per image and layer. Weights come
from a local file; without one the network is randomly initialized (He-normal convolutions and
linear maps, so activations keep their scale through deep stacks: torchvision's own
truncated-normal(0.01) initialization of GoogLeNet shrinks inception5b activations to ~1e-12).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from egg_cli.errors import EggError
from egg_cli.io import read_state_dict

log = logging.getLogger(__name__)

GOOGLENET_INCEPTION_BLOCKS = (
    "inception3a",
    "inception3b",
    "inception4a",
    "inception4b",
    "inception4c",
    "inception4d",
    "inception4e",
    "inception5a",
    "inception5b",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_backbone(
    arch: str = "googlenet",
    source: str = "torchvision",
    weights: str | Path | None = None,
    seed: int = 0,
    kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Construct ``arch`` from torchvision or timm in eval mode, with weights from a local file or random init."""
    kwargs = dict(kwargs or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if source == "torchvision":
            import torchvision

            if arch not in torchvision.models.list_models():
                raise EggError(
                    f"model.arch={arch!r} is not a torchvision model; expected a name from torchvision.models.list_models()"
                )
            if arch == "googlenet":
                kwargs.setdefault("aux_logits", False)
                kwargs.setdefault("init_weights", False)
            net = torchvision.models.get_model(arch, weights=None, **kwargs)
        elif source == "timm":
            import timm

            if not timm.is_model(arch):
                raise EggError(f"model.arch={arch!r} is not a timm model; expected a name from timm.list_models()")
            net = timm.create_model(arch, pretrained=False, **kwargs)
        else:
            raise EggError(f"model.source={source!r} is not supported; expected torchvision or timm")
        if weights is None:
            he_initialize(net)
            log.info("model %s (%s): no weights file given, using random He-normal initialization (seed %d)", arch, source, seed)
        else:
            load_weights(net, weights)
    return net.eval()


def he_initialize(net: nn.Module) -> None:
    """He-normal (fan-in, ReLU gain) weights and zero biases for every convolution and linear map."""
    for module in net.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def load_weights(net: nn.Module, path: str | Path) -> None:
    """Load a state dict (plain, or under ``state_dict``/``model``) from a local file into ``net``.

    Keys of auxiliary heads the network was built without (e.g. GoogLeNet's ``aux1``) are skipped;
    any missing parameter is an error.
    """
    state = read_state_dict(path, "model.weights", "a local state dict of the network (.pt/.pth/.safetensors)")
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise EggError(
            f"model.weights={path} lacks {len(result.missing_keys)} parameters of the network "
            f"(first: {result.missing_keys[:3]}); expected weights of the same architecture"
        )
    if result.unexpected_keys:
        log.info(
            "model.weights=%s: skipped %d keys the network does not use (first: %s)",
            path,
            len(result.unexpected_keys),
            result.unexpected_keys[:3],
        )
    log.info("model weights loaded from %s", path)


class LayerFeatures(nn.Module):
    """Backbone plus forward hooks: images in [0, 1] -> {layer: (B, D) flattened activations}."""

    def __init__(
        self,
        backbone: nn.Module,
        layers: Sequence[str],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        named = dict(backbone.named_modules())
        unknown = [name for name in layers if name not in named]
        if unknown:
            sample = [n for n in named if n and "." not in n][:12]
            raise EggError(f"model.layers: {unknown} are not modules of the network; expected names such as {sample}")
        if len(set(layers)) != len(layers) or len(layers) < 2:
            raise EggError(f"model.layers={list(layers)} must name at least two distinct layers")
        self.backbone = backbone
        self.layers = list(layers)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self._store: dict[str, torch.Tensor] = {}
        for name in self.layers:
            named[name].register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def save(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, (tuple, list)):
                output = output[0]
            self._store[name] = output

        return save

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flattened activations of every layer for a batch of [0, 1] images."""
        if images.ndim != 4 or images.shape[1] != self.mean.shape[1]:
            raise EggError(f"images have shape {tuple(images.shape)}; expected (B, {self.mean.shape[1]}, H, W)")
        self._store = {}
        self.backbone((images - self.mean) / self.std)
        out = {name: self._store[name].flatten(1) for name in self.layers}
        self._store = {}
        return out


def feature_model(cfg: Mapping[str, Any], device: torch.device | str = "cpu") -> LayerFeatures:
    """Build a :class:`LayerFeatures` from a ``model`` config (arch, source, weights, layers, seed, kwargs)."""
    layers = list(cfg.get("layers") or (GOOGLENET_INCEPTION_BLOCKS if cfg.get("arch", "googlenet") == "googlenet" else []))
    if not layers:
        raise EggError(f"model.layers is empty for model.arch={cfg.get('arch')!r}; expected a list of module names")
    backbone = build_backbone(
        arch=cfg.get("arch", "googlenet"),
        source=cfg.get("source", "torchvision"),
        weights=cfg.get("weights"),
        seed=int(cfg.get("seed", 0)),
        kwargs=cfg.get("kwargs"),
    )
    for p in backbone.parameters():
        p.requires_grad_(False)
    return LayerFeatures(backbone, layers).to(device)


def seeded_feature_model(cfg: Mapping[str, Any]) -> tuple[LayerFeatures, dict[str, Any], int]:
    """Seed everything from ``cfg.seed`` and build ``cfg.model`` on ``cfg.device``: (model, model config, seed)."""
    from omegaconf import OmegaConf

    from egg_cli.runtime import resolve_device, seed_everything

    seed = int(cfg["seed"])
    seed_everything(seed)
    model_cfg = OmegaConf.to_container(cfg["model"], resolve=True) if OmegaConf.is_config(cfg["model"]) else dict(cfg["model"])
    return feature_model(model_cfg, resolve_device(str(cfg["device"]))), model_cfg, seed


@torch.no_grad()
def extract(model: LayerFeatures, images: torch.Tensor, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Features of many images in batches (no gradients), on the CPU as float64-ready tensors."""
    device = model.mean.device
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in model.layers}
    for start in range(0, len(images), batch_size):
        feats = model(images[start : start + batch_size].to(device))
        for name, value in feats.items():
            parts[name].append(value.float().cpu())
    return {name: torch.cat(value) for name, value in parts.items()}
