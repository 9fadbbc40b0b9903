"""Encoding model = core + readout + output nonlinearity, built from config via ``_target_``.

The built module follows the "Response models" contract of docs/architecture.md:
``forward(images_z (B,C,H,W)) -> (B, n_neurons)`` non-negative rates, with ``input_shape``,
``n_neurons``, ``neuron_ids``, ``pixel_mean``, ``pixel_std``, ``test_correlation`` and
``dataset_path``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from egg_cli.errors import EggError


class EluPlusOne(nn.Module):
    """Output nonlinearity ``elu(y) + 1``: positive, linear above 1, exponential below."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.elu(y) + 1.0

    @staticmethod
    def inverse(rate: torch.Tensor) -> torch.Tensor:
        """Drive ``y`` with ``elu(y) + 1 = rate`` (rates clamped to >= 1e-3)."""
        rate = rate.clamp_min(1e-3)
        return torch.where(rate >= 1.0, rate - 1.0, torch.log(rate))


class EncodingModel(nn.Module):
    """Image -> predicted rates of recorded neurons (core, readout, output nonlinearity)."""

    def __init__(
        self,
        core: nn.Module,
        readout: nn.Module,
        output: nn.Module,
        input_shape: Sequence[int],
        neuron_ids: Sequence[Any],
        pixel_mean: float,
        pixel_std: float,
    ) -> None:
        super().__init__()
        self.core, self.readout, self.output = core, readout, output
        self.input_shape = tuple(int(s) for s in input_shape)
        self.neuron_ids = np.asarray(neuron_ids)
        self.n_neurons = len(self.neuron_ids)
        self.pixel_mean, self.pixel_std = float(pixel_mean), float(pixel_std)
        self.test_correlation: np.ndarray | None = None
        self.dataset_path: str | None = None  # the dataset the model was trained on (from its checkpoint)
        self.dataset_id: str | None = None  # that dataset's population_id (egg_cli.models.population)

    def forward(self, images_z: torch.Tensor) -> torch.Tensor:
        if tuple(images_z.shape[1:]) != self.input_shape:
            raise EggError(f"model input has shape {tuple(images_z.shape[1:])}; expected (C,H,W)={self.input_shape}")
        features = self.core(images_z)
        if features.requires_grad:
            # The attention readout's backward hands the core a channels-last gradient; for a batch
            # of one, PyTorch's CPU convolution backward (checked on 2.14) returns a wrong input
            # gradient for that layout (sign and size off against finite differences), which broke
            # single-image synthesis. A contiguous gradient is computed correctly for any batch.
            features.register_hook(torch.Tensor.contiguous)
        return self.output(self.readout(features))

    def regularizer(self) -> torch.Tensor:
        """Sum of the core's and the readout's penalties."""
        return self.core.regularizer() + self.readout.regularizer()


def _instantiate(cfg: Any, name: str, **kwargs: Any) -> nn.Module:
    from hydra.utils import instantiate

    if not isinstance(cfg, (Mapping, DictConfig)) or "_target_" not in cfg:
        raise EggError(f"config {name} has no _target_; expected a config group entry such as {name}=<option>")
    try:
        return instantiate(cfg, **kwargs)
    except EggError:
        raise
    except Exception as err:  # hydra wraps TypeError (unknown key) and the constructor's errors
        cause = err.__cause__ or err
        if isinstance(cause, EggError):
            raise cause from err
        detail = str(cause).splitlines()[-1] if str(cause) else type(cause).__name__
        raise EggError(f"config {name} could not be built ({type(cause).__name__}: {detail})") from err


def feature_shape(core: nn.Module, input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Shape (C,H,W) of the core's feature map for images of ``input_shape``."""
    was_training = core.training
    core.eval()
    with torch.no_grad():
        param = next(core.parameters(), None)
        probe = torch.zeros(1, *input_shape, device=param.device if param is not None else "cpu")
        try:
            shape = tuple(core(probe).shape[1:])
        except RuntimeError as err:
            raise EggError(
                f"the core cannot process images of shape {tuple(input_shape)} "
                f"({str(err).splitlines()[0]}); expected images large enough for its features of shape (C,H,W) >= 1"
            ) from err
    core.train(was_training)
    if len(shape) != 3 or min(shape) < 1:
        raise EggError(f"the core maps images of shape {tuple(input_shape)} to features of shape {shape}; expected (C,H,W) >= 1")
    return shape  # type: ignore[return-value]


def build_model(
    model_cfg: Mapping | DictConfig,
    input_shape: Sequence[int],
    neuron_ids: Sequence[Any],
    pixel_mean: float,
    pixel_std: float,
    mean_response: np.ndarray | None = None,
) -> EncodingModel:
    """Build core, output nonlinearity and readout from ``model_cfg`` (keys core, readout, output)."""
    if isinstance(model_cfg, Mapping) and not isinstance(model_cfg, DictConfig):
        model_cfg = OmegaConf.create(dict(model_cfg))
    for key in ("core", "readout", "output"):
        if key not in model_cfg:
            raise EggError(f"model config has no '{key}'; expected keys core, readout and output")
    input_shape = tuple(int(s) for s in input_shape)
    core = _instantiate(model_cfg.core, "model.core", in_channels=input_shape[0])
    output = _instantiate(model_cfg.output, "model.output")
    n_neurons = len(neuron_ids)
    bias = None
    if mean_response is not None:
        rates = torch.as_tensor(np.asarray(mean_response, dtype=np.float32))
        bias = output.inverse(rates) if hasattr(output, "inverse") else rates
    readout = _instantiate(
        model_cfg.readout, "model.readout", in_shape=feature_shape(core, input_shape), n_neurons=n_neurons, bias_init=bias
    )
    return EncodingModel(core, readout, output, input_shape, neuron_ids, pixel_mean, pixel_std)
