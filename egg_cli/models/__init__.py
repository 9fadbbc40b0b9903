"""Encoding models of neurons: cores, readouts, output nonlinearity, ensembles, checkpoints, training."""

from egg_cli.models.checkpoint import load_model, model_from_checkpoint, read_checkpoint, save_checkpoint
from egg_cli.models.encoding import EluPlusOne, EncodingModel, build_model
from egg_cli.models.ensemble import Ensemble

__all__ = [
    "EluPlusOne",
    "EncodingModel",
    "Ensemble",
    "build_model",
    "load_model",
    "model_from_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]
