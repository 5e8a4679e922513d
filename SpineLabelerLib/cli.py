"""``spinelabeler`` command line: one sub-command per module under ``SpineLabelerLib.commands``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func`` (taking the parsed args, returning an exit code). Heavy imports (torch, vtk) stay
inside the command functions so that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from SpineLabelerLib import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "info",
    "evaluate",
    "segment",
    "train",
    "fit_level_head",
    "phantom",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinelabeler",
        description="Find, segment and name every vertebra (C1-L6) in a CT.",
    )
    parser.add_argument("--version", action="version", version=f"spinelabeler {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"SpineLabelerLib.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
