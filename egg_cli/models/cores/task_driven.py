"""Task-driven core: a timm network cut at a named layer, frozen by default.

Weights come from a local file (``weights``), from timm's own download (``pretrained=True``,
which needs internet or timm's cache), or else the network is randomly initialized. Grayscale
input is repeated to three channels. An optional batch norm + ReLU after the cut adapts the
feature statistics for the readout.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from egg_cli.errors import EggError, require
from egg_cli.io import read_state_dict
from egg_cli.models.state import load_state_strict

log = logging.getLogger(__name__)

_PREFIXES = ("module.", "model.", "backbone.")
# egg's own task-driven backbone: timm resnet18 to layer2, trained on rotation prediction (scripts/train_backbone.py)
SHIPPED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "resnet18_rotation.pt"
SHIPPED = "shipped"


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local file, unwrapping common containers and key prefixes."""
    state = read_state_dict(path, "model.core.weights", "a local state dict of the backbone (.pt/.pth/.safetensors)")
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _download_pretrained(model_name: str) -> nn.Module:
    """timm's own pretrained weights (fetched from its hub; needs internet or timm's local cache)."""
    import timm

    try:
        return timm.create_model(model_name, pretrained=True)
    except (OSError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EggError(
            f"model.core.pretrained=true: timm could not fetch the weights of {model_name} ({first}); "
            f"expected internet access, or download them elsewhere and pass model.core.weights=<file>"
        ) from err


class TaskDrivenCore(nn.Module):
    """timm backbone ``model_name`` truncated after ``layer`` (a module name such as ``layer3.0``)."""

    def __init__(
        self,
        in_channels: int = 1,
        model_name: str = "resnet50",
        layer: str = "layer3.0",
        weights: str | None = None,
        pretrained: bool = False,
        frozen: bool = True,
        final_norm: bool = True,
    ) -> None:
        super().__init__()
        import timm
        from timm.models._features_fx import create_feature_extractor

        require(in_channels in (1, 3), f"task-driven core got {in_channels} input channels; expected 1 (grayscale) or 3")
        require(not (pretrained and weights), "model.core.pretrained=true and model.core.weights are exclusive; expected one")
        if weights == SHIPPED and (model_name, layer) != ("resnet18", "layer2"):
            raise EggError(
                f"model.core.weights=shipped is egg's resnet18 trunk to layer2; got model_name={model_name!r}, "
                f"layer={layer!r}: expected resnet18 and layer2, or weights=<file> for other timm networks"
            )
        try:
            net = timm.create_model(model_name, pretrained=False)
        except RuntimeError as err:
            raise EggError(f"model.core.model_name={model_name!r} is not a timm model ({err})") from err
        if pretrained:
            net = _download_pretrained(model_name)
        modules = dict(net.named_modules())
        if layer not in modules or layer == "":
            top = [n for n, _ in net.named_children()]
            raise EggError(f"model.core.layer={layer!r} is not a module of {model_name}; top-level modules: {', '.join(top)}")
        self.backbone = create_feature_extractor(net, return_nodes={layer: "features"})
        if weights:
            path = SHIPPED_WEIGHTS if weights == SHIPPED else Path(weights)
            trunk = self.backbone.state_dict()
            state = {k: v for k, v in _read_weights(path).items() if k in trunk}  # tensors beyond the cut are not used
            load_state_strict(self.backbone, state, f"model.core.weights={weights}")
            log.info("task-driven core %s to %s: loaded weights from %s", model_name, layer, path)
        elif not pretrained:
            log.warning("task-driven core %s: no weights given (model.core.weights=null): random initialization", model_name)
        self.in_channels = in_channels
        self.frozen = frozen
        if frozen:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        with torch.no_grad():
            self.backbone.eval()
            channels = self.backbone(torch.zeros(1, 3, 64, 64))["features"].shape[1]
        self.out_channels = channels
        self.norm = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU()) if final_norm else nn.Identity()
        self.model_name, self.layer = model_name, layer
        self.register_buffer("_zero", torch.zeros(()), persistent=False)

    def train(self, mode: bool = True) -> TaskDrivenCore:
        """A frozen backbone stays in evaluation mode (fixed batch-norm statistics)."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.norm(self.backbone(x)["features"])

    def regularizer(self) -> torch.Tensor:
        """No penalty on the task-driven core."""
        return self._zero
