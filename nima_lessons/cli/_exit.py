"""Exit statuses of the ``nima-lessons`` command and the one-line messages of failures.

Each failure maps to one documented status, so that scripts and batch systems can
tell a bad option from a busy output, a full disk, a lost scheduler or Ctrl-C.
"""

from __future__ import annotations

import sys
import textwrap

from nima_lessons._atomic import NotOurOutputError, OutputLockedError, OverlappingPathsError
from nima_lessons.cluster import SchedulerLostError
from nima_lessons.store import ResumeMismatchError, WriteError

__all__ = [
    "EXIT_CODES",
    "CommandInterrupted",
    "Terminated",
    "exit_code",
    "exit_codes_epilog",
    "warn",
]

#: Exit status -> what it means; printed by ``--help`` and listed in the README.
EXIT_CODES = {
    0: "success, or the result was already complete with the same inputs and settings",
    1: "unexpected error, a bug (NIMA_LESSONS_TRACEBACK=1 shows where)",
    2: "bad option or input: missing, unreadable or invalid file, wrong shape or value",
    3: "output refused: it exists (no --overwrite), is not a nima-lessons result, "
    "overlaps an input, or was started with other inputs or settings (--resume)",
    4: "another process is writing the same output (its lock is held)",
    5: "writing failed: disk full, over quota, read-only or I/O error; what can be resumed is kept",
    6: "the dask scheduler was lost; what was saved is kept: rerun with --resume",
    130: "interrupted by Ctrl-C; what was saved is kept: rerun with --resume",
    143: "stopped by SIGTERM (a batch system's time limit); as for 130",
}


class CommandInterrupted(Exception):
    """Ctrl-C or SIGTERM, with a message saying what was kept and how to go on."""

    def __init__(self, message: str, status: int = 130):
        super().__init__(message)
        self.status = status


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an exception, so that locks are released and files closed."""


# Most specific first: several are subclasses of ValueError or OSError.
_STATUS_OF = (
    (OutputLockedError, 4),
    ((NotOurOutputError, OverlappingPathsError, ResumeMismatchError, FileExistsError), 3),
    (SchedulerLostError, 6),
    (WriteError, 5),
    ((ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError), 2),
    (OSError, 5),
)


def exit_code(error: BaseException) -> int:
    """Return the exit status of a failure (see :data:`EXIT_CODES`)."""
    if isinstance(error, CommandInterrupted):
        return error.status
    if isinstance(error, Terminated):
        return 143
    if isinstance(error, KeyboardInterrupt):
        return 130
    for kinds, status in _STATUS_OF:
        if isinstance(error, kinds):
            return status
    return 1


def exit_codes_epilog() -> str:
    """The exit statuses as text for the end of ``--help``."""
    lines = ["exit status:"]
    for status, meaning in EXIT_CODES.items():
        lines.append(
            textwrap.fill(
                meaning, width=78, initial_indent=f"  {status:>3}  ", subsequent_indent=" " * 7
            )
        )
    return "\n".join(lines)


def warn(command: str, message: str) -> None:
    """Print a one-line warning of ``command`` on standard error."""
    print(f"nima-lessons {command}: warning: {message}", file=sys.stderr)
