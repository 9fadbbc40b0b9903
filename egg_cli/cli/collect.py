"""``egg collect <sweep folder>``: one table of a sweep's jobs (overrides, status, headline metrics).

Writes ``jobs.csv`` and ``jobs.md`` into the sweep folder (or ``--out``) and prints the Markdown.
Not a Hydra app: it reads a folder that Hydra runs wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from egg_cli.errors import EggError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="egg collect", description="One table of a sweep's jobs: overrides, status and headline metrics (CSV + Markdown)."
    )
    parser.add_argument("sweep", type=Path, help="sweep folder (hydra.sweep.dir of `egg <command> -m ...`)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=[],
        metavar="PATTERN",
        help="keep only these summary.json entries (glob over dotted keys, e.g. '*correlation*')",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for jobs.csv and jobs.md (default: the sweep folder)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Collect the sweep named on the command line."""
    from egg_cli.cli.app import fail
    from egg_cli.sweeps.collect import collect_sweep
    from egg_cli.sweeps.table import markdown, write_tables

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results = collect_sweep(args.sweep, args.metrics)
    except EggError as err:
        fail(str(err))
        return
    out = args.out or args.sweep
    try:
        csv_path, md_path = write_tables(results, args.sweep, out)
    except OSError as err:  # e.g. a read-only sweep folder
        fail(f"{out}: cannot write jobs.csv/jobs.md ({err.strerror}); expected a writable folder (--out DIR)")
        return
    print(markdown(results, args.sweep), end="")
    print(f"\ntables: {csv_path} {md_path}")
