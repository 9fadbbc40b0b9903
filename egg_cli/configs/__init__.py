"""Hydra configs of every egg command, found through the package search path ``pkg://egg_cli.configs``."""

from pathlib import Path

CONFIG_MODULE = __name__
CONFIG_DIR = Path(__file__).parent
