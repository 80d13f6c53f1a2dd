"""The ``nima-lessons`` command: data generation, the pipeline and benchmarks.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nima_lessons import __version__

SUBCOMMANDS = ("data", "pipeline", "bench")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every subcommand attached."""
    parser = argparse.ArgumentParser(
        prog="nima-lessons",
        description="Lazy, parallel and tiled bio-image processing with dask: "
        "generate the lesson data, run the nima pipeline, measure performance.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"nima_lessons.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError) as error:
        print(f"nima-lessons {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
