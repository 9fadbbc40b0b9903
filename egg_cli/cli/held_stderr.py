"""Hold stderr until a Hydra task starts, so a config error before it becomes one line.

Hydra reports a bad override or an unknown config group value on several lines (the options,
the search path, a hint about HYDRA_FULL_ERROR) and exits with 1. The dispatcher installs
:class:`HeldStderr`; once the task has started everything passes straight through, and if Hydra
exits before that, :meth:`HeldStderr.one_line` condenses what it wrote into a single line.
"""

from __future__ import annotations

import re
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
        text = "".join(self.held)
        if "Traceback (most recent call last):" in text:
            return _exception_line(text)
        parts: list[str] = []
        for raw in text.splitlines():
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


# the last line of a Python traceback: ``SomeError: message``
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception)): (.*)$")
# what Hydra does with the file system before a task starts: create the run folder and its log file
_RUN_FOLDER_ERRORS = ("FileExistsError", "NotADirectoryError", "PermissionError", "IsADirectoryError", "OSError")


def _exception_line(text: str) -> str:
    """The error of a traceback Hydra printed before the task started, as one line."""
    matches = [m for m in map(_EXCEPTION.match, text.splitlines()) if m]
    if not matches:
        return "invalid command line"
    name, message = matches[-1].groups()
    message = re.sub(r"^\[Errno \d+\] ", "", message)
    if name in _RUN_FOLDER_ERRORS:
        return (
            f"cannot create the run folder or its log: {message}; expected hydra.run.dir to be a folder egg can create and write"
        )
    return f"{name}: {message}"
