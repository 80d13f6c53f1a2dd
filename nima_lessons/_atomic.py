"""Atomic, non-destructive writing of files and folders.

Outputs are written under a temporary sibling name and renamed into place, so an
interrupted run never leaves something that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def check_writable(target: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to replace existing data unless asked to.

    Parameters
    ----------
    target : path-like
        The file or folder about to be written.
    overwrite : bool
        Whether an existing ``target`` may be replaced.

    Returns
    -------
    pathlib.Path
        ``target`` as a path.

    Raises
    ------
    FileExistsError
        If ``target`` exists and ``overwrite`` is false.
    """
    path = Path(target)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    return path


def remove(path: str | os.PathLike) -> None:
    """Delete a file or a folder tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path that replaces ``target`` only on success.

    Parameters
    ----------
    target : path-like
        Final file or folder name.
    overwrite : bool
        Replace an existing ``target``; otherwise raise ``FileExistsError``
        before anything is written.

    Yields
    ------
    pathlib.Path
        A sibling of ``target`` (same folder, so the rename is atomic) that the
        caller writes to. On an exception it is removed and ``target`` is left
        untouched.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "out.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (folder / "out.txt").read_text()
    'done'
    """
    final = check_writable(target, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    move_into_place(tmp, final)


def move_into_place(partial: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename a finished ``partial`` file or folder onto ``target``.

    An existing ``target`` is first renamed aside and deleted only once the
    new one is in place, so at every moment ``target`` holds complete data.

    Parameters
    ----------
    partial : path-like
        The finished output, in the same folder as ``target``.
    target : path-like
        Its final name.
    """
    partial, target = Path(partial), Path(target)
    if target.exists():
        trash = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, trash)
        os.replace(partial, target)
        remove(trash)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, target)
