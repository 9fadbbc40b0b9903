"""Hydra configs of every egg command, found through the package search path ``pkg://egg_cli.configs``."""
