"""Symlink this environment's torch, torchvision and every distribution they require into a folder.

    python scripts/link_torch.py OUT

A fresh virtual environment given OUT on its path (a ``.pth`` file) sees the same torch build
without a second multi-gigabyte copy; scripts/wheel_smoke.sh uses it. Exits 1 when torch or
torchvision is not installed here, so the caller installs them instead.
"""

from __future__ import annotations

import importlib.metadata as metadata
import pathlib
import re
import sys

ROOTS = ("torch", "torchvision")


def canonical(name: str) -> str:
    """A distribution name in PEP 503 form."""
    return re.sub(r"[-_.]+", "-", name).lower()


REQUIREMENT = re.compile(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?")
EXTRA_MARKER = re.compile(r"extra\s*==\s*[\"']([^\"']+)[\"']")


def required_closure(roots: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, themselves included.

    A requirement's extras count (``cuda-toolkit[cublas]`` brings the cuBLAS wheels); a requirement
    that is not installed here is one whose marker excludes this platform and is skipped.
    """
    todo: list[tuple[str, set[str]]] = [(root, set()) for root in roots]
    extras_of: dict[str, set[str]] = {}
    found: dict[str, metadata.Distribution] = {}
    while todo:
        name, extras = todo.pop()
        name = canonical(name)
        if name in extras_of and extras <= extras_of[name]:
            continue
        wanted = extras_of.setdefault(name, set())
        wanted |= extras
        try:
            found[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in roots:
                raise
            continue
        for requirement in found[name].requires or []:
            extra = EXTRA_MARKER.search(requirement.partition(";")[2])
            if extra and extra.group(1) not in wanted:
                continue
            match = REQUIREMENT.match(requirement)
            todo.append((match.group(1), {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}))
    return list(found.values())


def link(dists: list[metadata.Distribution], out: pathlib.Path) -> int:
    """Symlink each distribution's top-level entries (packages, modules, .dist-info) into ``out``."""
    out.mkdir(parents=True)
    count = 0
    for dist in dists:
        tops = {pathlib.PurePath(str(f)).parts[0] for f in dist.files or []} - {"..", "__pycache__"}
        for top in sorted(tops):
            source = pathlib.Path(str(dist.locate_file(top)))
            if source.exists() and not (out / top).exists():
                (out / top).symlink_to(source)
                count += 1
    return count


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python scripts/link_torch.py OUT", file=sys.stderr)
        return 2
    try:
        dists = required_closure(ROOTS)
    except metadata.PackageNotFoundError as error:
        print(f"link_torch: {error} is not installed in {sys.prefix}", file=sys.stderr)
        return 1
    count = link(dists, pathlib.Path(sys.argv[1]))
    print(f"link_torch: {len(dists)} distributions, {count} entries linked into {sys.argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
