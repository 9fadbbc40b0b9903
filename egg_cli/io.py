"""Atomic writes of run outputs: nothing half-written is ever left on disk."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from egg_cli.errors import EggError

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, nbytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    ``nbytes``, the size the file will roughly take, is checked against the free space first,
    so a full disk is reported before the write starts (HDF5 cannot always close a file whose
    write failed). A write that runs out of space anyway is reported the same way, as an
    :class:`~egg_cli.errors.EggError` naming the path and the bytes needed; no partial file stays.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if nbytes is not None:
        free = shutil.disk_usage(path.parent).free
        if free < nbytes:
            raise EggError(_disk_full_message(path, f"about {nbytes} bytes", free))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files; give the user's usual permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except Exception as err:
        if not is_disk_full(err):
            raise
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        needed = f"about {nbytes} bytes" if nbytes is not None else f"more than the {written} bytes written"
        raise EggError(_disk_full_message(path, needed, shutil.disk_usage(path.parent).free)) from err
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_hdf5(path: str | os.PathLike) -> Iterator[Any]:
    """An ``h5py.File`` built in memory and written to ``path`` atomically when the block ends.

    HDF5 cannot close a file whose write failed (on a full disk the process crashed), so the file
    is assembled in memory and then written with ordinary writes, which fail cleanly.
    """
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        yield f
    data = buffer.getbuffer()
    with atomic_path(path, nbytes=len(data)) as tmp, open(tmp, "wb") as out:
        out.write(data)


def is_disk_full(err: BaseException) -> bool:
    """True when ``err`` (or an error it was raised from) says the disk or quota is full."""
    seen: set[int] = set()
    node: BaseException | None = err
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, OSError) and node.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(node)
        # h5py reports the HDF5 error text; torch.save's writer only says that the write ("file write
        # failed") or, when the failure comes at the stream's flush, the C++ stream ("iostream error") failed
        if any(
            s in text for s in ("No space left on device", "errno = 28", "file write failed", "basic_ios::clear: iostream error")
        ):
            return True
        node = node.__cause__ or node.__context__
    return False


def _disk_full_message(path: Path, needed: str, free: int) -> str:
    return (
        f"no space left on device to write {path}: it needs {needed}, {free} bytes are free; free some space or write elsewhere"
    )


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of atomic writes that were killed (``.<name>.<random>.tmp``) in ``folder``."""
    removed = []
    for tmp in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically, checking first that the disk has room for it."""
    write_bytes(path, text.encode())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` atomically, checking first that the disk has room for it."""
    with atomic_path(path, nbytes=len(data)) as tmp:
        tmp.write_bytes(data)


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a list of dicts as CSV (columns in first-seen order), atomically."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__} to JSON")


STATE_DICT_CONTAINERS = ("state_dict", "model", "model_state_dict")  # keys training scripts save a state dict under


def read_state_dict(path: str | os.PathLike, key: str, expected: str) -> dict[str, Any]:
    """The state dict (name -> tensor) in a local file: ``torch.save`` output (.pt/.pth) or .safetensors.

    A dict stored under one of :data:`STATE_DICT_CONTAINERS` is unwrapped. ``key`` is the setting
    that named the file and ``expected`` what it should hold, both for the one-line errors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise EggError(f"{key}={path} does not exist; expected {expected}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated, foreign or pickled-object file
        raise EggError(f"{key}={path} cannot be read as a state dict ({type(err).__name__}); expected {expected}") from err
    for name in STATE_DICT_CONTAINERS:
        if isinstance(state, dict) and isinstance(state.get(name), dict):
            state = state[name]
    if not isinstance(state, dict):
        raise EggError(f"{key}={path} holds a {type(state).__name__}; expected {expected}")
    return state
