"""The ``nima-lessons clean`` subcommand: remove what interrupted writes left behind.

Every write removes the leftovers of earlier, killed writes to the same output on its
next run; this command does it for whole folders, for outputs nobody writes again.
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path

from nima_lessons._atomic import (
    LOCK_SUFFIX,
    OutputLockedError,
    StaleLockWarning,
    leftovers_in,
    remove,
    remove_leftovers,
    search_folders,
    write_lock,
)
from nima_lessons.cli._exit import exit_codes_epilog, warn

__all__ = ["add_parser", "run"]

_RESUMABLE = re.compile(r"^\.(?P<name>.+)\.partial$")
_LOCK = re.compile(rf"^\.(?P<name>.+){re.escape(LOCK_SUFFIX)}$")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Attach ``clean`` to the ``nima-lessons`` subcommands."""
    parser = subparsers.add_parser(
        "clean",
        help="remove the leftovers of interrupted writes",
        description="Remove the hidden temporary files and folders that killed runs leave "
        "beside their outputs (.NAME.partial-XXXXXXXX, .NAME.old-XXXXXXXX) and lock files of "
        "processes that no longer run, in each FOLDER and its sub-folders (zarr stores are "
        "not searched). Outputs that a running process writes are left alone. Interrupted "
        "zarr saves (.NAME.partial), which --resume can finish, are kept unless --resumable "
        "is given.",
        epilog=exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "folders",
        nargs="*",
        metavar="FOLDER",
        type=Path,
        help="where to look (default: the data folder, $NIMA_LESSONS_DATA or data/)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
    parser.add_argument(
        "--resumable",
        action="store_true",
        help="also remove interrupted zarr saves that --resume could still finish",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Remove (or list) leftovers; return the exit status."""
    from nima_lessons.config import data_dir

    folders = args.folders or [data_dir(create=False)]
    for folder in folders:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
    targets = dict(leftovers_in(folders))
    if args.resumable:
        for target, found in _resumable_saves(folders).items():
            targets.setdefault(target, []).extend(found)
    removed = 0
    for target, found in sorted(targets.items()):
        if args.dry_run:
            for path in found:
                print(f"would remove {path}")
            continue
        removed += _clean(target, found)
    if not args.dry_run:
        plural = "s" if removed != 1 else ""
        print(f"removed {removed} leftover{plural} in {len(folders)} folder(s)")
    return 0


def _clean(target: Path, found: list[Path]) -> int:
    """Remove the leftovers of one output, holding its lock; 0 when it is busy."""
    try:
        with warnings.catch_warnings(record=True) as caught, write_lock(target):
            warnings.simplefilter("always", StaleLockWarning)
            gone = remove_leftovers(target)
            for path in found:
                if _RESUMABLE.match(path.name) and path.exists():
                    remove(path)
                    gone.append(path)
    except OutputLockedError as error:
        warn("clean", f"skipped {target}: {error}")
        return 0
    locks = [path for path in found if _LOCK.match(path.name)]
    for path in gone + locks:
        print(f"removed {path}")
    if caught:
        print(f"  (the lock of {target} was left by a process that no longer runs)")
    return len(gone) + len(locks)


def _resumable_saves(folders) -> dict[Path, list[Path]]:
    """Interrupted zarr saves of this package that --resume could finish, per output."""
    from nima_lessons.store import save_progress

    found: dict[Path, list[Path]] = {}
    for root, names in search_folders(folders):
        for name in names:
            match = _RESUMABLE.match(name)
            if match and save_progress(root / match["name"]) is not None:
                found.setdefault(root / match["name"], []).append(root / name)
    return found
