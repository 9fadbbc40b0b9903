"""The error contract as test helpers: run the real CLI, expect one ``egg: error:`` line, an unchanged folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from data_assets import EGG

# no traceback switches from the caller's environment: the tests check the default behaviour
ENV = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "EGG_DEBUG")} | {"OMP_NUM_THREADS": "1"}


def egg(*args: str, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``egg <args>`` in a subprocess, as a user runs it."""
    return subprocess.run([*EGG, *args], capture_output=True, text=True, env=env or ENV, timeout=timeout)


def snapshot(folder: Path) -> dict[str, str] | None:
    """Relative path -> SHA-256 of every file under ``folder`` (hidden ones included); None when absent."""
    if not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def existing_run_folder(folder: Path) -> dict[str, str] | None:
    """A run folder that already holds a file, so a refused run must leave it as it was; returns its snapshot."""
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("kept\n")
    return snapshot(folder)


def assert_one_error(proc: subprocess.CompletedProcess, expected: str, code: int = 2) -> str:
    """Exit ``code``, exactly one stderr line starting ``egg: error:`` that contains ``expected``, no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("egg: error:")]
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{proc.stderr[-3000:]}"
    assert len(lines) == 1, proc.stderr[-3000:]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and "full_key" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]
