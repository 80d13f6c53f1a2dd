"""The ``nima-lessons`` command: data generation, the pipeline, benchmarks and clean-up.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``. Every
failure ends with one line on standard error and a documented exit status
(:data:`nima_lessons.cli._exit.EXIT_CODES`), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator

from nima_lessons import __version__
from nima_lessons.cli._exit import EXIT_CODES, Terminated, exit_code, exit_codes_epilog

__all__ = ["EXIT_CODES", "SUBCOMMANDS", "build_parser", "main"]

SUBCOMMANDS = ("data", "pipeline", "bench", "clean")
TRACEBACK_ENV = "NIMA_LESSONS_TRACEBACK"


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every subcommand attached."""
    parser = argparse.ArgumentParser(
        prog="nima-lessons",
        description="Lazy, parallel and tiled bio-image processing with dask: "
        "generate the lesson data, run the nima pipeline, measure performance.",
        epilog=exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"nima_lessons.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status (see ``--help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _one_line_warnings(args.command), _sigterm_interrupts(), _quiet_distributed():
            return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as error:
        if os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
            raise
        print(f"nima-lessons {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return exit_code(error)


def _one_line(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    text = " ".join(str(error).split()) or type(error).__name__
    if exit_code(error) == 1:
        return f"unexpected {type(error).__name__}: {text} (set {TRACEBACK_ENV}=1 to see where)"
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        return f"{error.filename}: {text}"
    return text


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Show warnings as ``nima-lessons COMMAND: warning: ...`` lines."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"nima-lessons {command}: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM (a batch system's time limit) into an exception, so clean-up runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _quiet_distributed() -> Iterator[None]:
    """Keep dask.distributed's tracebacks about a lost connection off the terminal.

    The command reports a lost scheduler itself, in one line.
    """
    logger = logging.getLogger("distributed.client")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
