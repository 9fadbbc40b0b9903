"""Hold stderr until a Hydra task starts, so a config error before it becomes one line.

Hydra reports a bad override or an unknown config group value on several lines (the options,
the search path, a hint about HYDRA_FULL_ERROR) and exits with 1. The dispatcher installs
:class:`HeldStderr`; once the task has started everything passes straight through, and if Hydra
exits before that, :meth:`HeldStderr.one_line` condenses what it wrote into a single line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO


class HeldStderr:
    """A stderr stand-in that keeps writes until ``started()`` is true, then passes them on."""

    def __init__(self, stream: TextIO, started: Callable[[], bool]):
        self.stream = stream
        self.started = started
        self.held: list[str] = []

    def write(self, text: str) -> int:
        if self.started():
            self.release()
            return self.stream.write(text)
        self.held.append(text)
        return len(text)

    def flush(self) -> None:
        if self.started():
            self.release()
        self.stream.flush()

    def release(self) -> None:
        """Write out what was held."""
        if self.held:
            self.stream.write("".join(self.held))
            self.held.clear()

    def one_line(self) -> str:
        """The held text as one line: list items joined with commas, search path and hints dropped."""
        parts: list[str] = []
        for raw in "".join(self.held).splitlines():
            line = raw.strip()
            if not line or "HYDRA_FULL_ERROR" in line:
                continue
            if line.startswith("Config search path"):
                break
            if raw.startswith("\t") and parts and parts[-1].endswith((":", ",")):
                parts[-1] = f"{parts[-1]} {line},"
            elif raw.startswith(" "):
                continue  # indented details (full_key, object_type)
            else:
                parts.append(line)
        return "; ".join(p.rstrip(",") for p in parts) or "invalid command line"

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self.stream, name)
