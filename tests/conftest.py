"""Shared fixtures: tests run on CPU, single-threaded where determinism matters."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
