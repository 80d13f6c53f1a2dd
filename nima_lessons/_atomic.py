"""Atomic, non-destructive writing of files and folders, one writer at a time.

Outputs are written under a temporary sibling name and renamed into place, while an
exclusive lock beside the output keeps a second writer out; so neither an interrupted
nor a concurrent run can leave something that looks complete but is not.

The lock
--------
``write_lock(target)`` holds ``.<name>.lock`` in the folder of ``target``: an
operating-system lock (``flock``) on that file, which the system releases when the
holding process dies, however it dies, plus a record of who holds it (process id,
host, start time, command). A second writer fails at once with
:class:`OutputLockedError` naming the holder. A lock file left by a process that
died is taken over, with a :class:`StaleLockWarning` naming that process, when its
record says it ran on this host and no such process runs any more; a lock file
recorded by another host is never taken over (this host cannot tell whether that
process still runs), and the error says which file to delete once it is known
dead. The lock is advisory: it keeps out writers that use it (every writer of this
package), on local file systems and on network file systems whose locks work
across machines; on platforms without ``fcntl`` only the record is checked.

Leftovers
---------
A run killed while writing leaves its temporary ``.<name>.partial-<hex>`` (and,
killed during the final swap, ``.<name>.old-<hex>``). The next write to the same
target removes them under the lock (:func:`remove_leftovers`);
``nima-lessons clean`` removes them in a whole folder.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import sys
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

try:  # POSIX; elsewhere the lock record alone guards the output
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms tested
    _HAS_FCNTL = False
else:
    _HAS_FCNTL = True

__all__ = [
    "NotOurOutputError",
    "OutputLockedError",
    "OverlappingPathsError",
    "StaleLockWarning",
    "atomic_path",
    "check_parent_is_folder",
    "check_separate",
    "check_writable",
    "find_leftovers",
    "holds_lock",
    "leftovers_in",
    "lock_path",
    "move_into_place",
    "remove",
    "remove_leftovers",
    "search_folders",
    "temporary_sibling",
    "write_lock",
]

LOCK_SUFFIX = ".lock"
TEMP_TAG = ".partial-"
TRASH_TAG = ".old-"
# Temporary siblings end with 8 hex digits (see temporary_sibling).
_LEFTOVER = re.compile(r"^\.(?P<name>.+)(?P<tag>\.partial-|\.old-)[0-9a-f]{8}$")
_LOCK_FILE = re.compile(rf"^\.(?P<name>.+){re.escape(LOCK_SUFFIX)}$")
_LOCK_ATTEMPTS = 20

# Locks this process holds: absolute target -> [thread id, depth], so that a
# command holding the lock of its output can call functions that lock it again.
_HELD: dict[str, list[int]] = {}
_HELD_GUARD = threading.Lock()


class OutputLockedError(RuntimeError):
    """Another writer holds the lock of the output (or may still hold it)."""


class StaleLockWarning(UserWarning):
    """A lock left by a process that is no longer running was taken over."""


class NotOurOutputError(FileExistsError):
    """The path holds something that this package did not write; it is never replaced."""


class OverlappingPathsError(ValueError):
    """An output would be written over, inside or around one of the inputs."""


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
    NotADirectoryError
        If a parent of ``target`` is a file.
    """
    path = Path(target)
    check_parent_is_folder(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    return path


def check_parent_is_folder(target: str | os.PathLike) -> None:
    """Check that ``target`` can be created: no parent of it is a file.

    Raises
    ------
    NotADirectoryError
        Naming the parent that is a file.

    Examples
    --------
    >>> check_parent_is_folder("results/new/out.zarr")  # missing folders are fine
    """
    for parent in Path(target).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {target}: {parent} is a file, not a folder")
            return


def check_separate(
    output: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None]
) -> None:
    """Refuse an output that is, lies inside, or contains one of the inputs.

    Writing there would replace, or mix with, the data being read. Paths are
    compared after resolving symbolic links.

    Parameters
    ----------
    output : path-like
        The file or folder to be written.
    inputs : mapping
        ``{label: path}`` of everything read, for example
        ``{"INPUT": "image.zarr", "--dark": "dark.tif"}``; ``None`` values are
        skipped. The labels name the inputs in the error.

    Raises
    ------
    OverlappingPathsError
        Naming the input and how the paths overlap.

    Examples
    --------
    >>> check_separate("out/result.zarr", {"INPUT": "data/image.zarr"})
    >>> check_separate("in.zarr/out.zarr", {"INPUT": "in.zarr"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nima_lessons._atomic.OverlappingPathsError: the output in.zarr/out.zarr lies inside INPUT ...
    """
    out = Path(output).resolve()
    for label, given in inputs.items():
        if given is None:
            continue
        path = Path(given).resolve()
        if out == path:
            how = "is"
        elif path in out.parents:
            how = "lies inside"
        elif out in path.parents:
            how = "contains"
        else:
            continue
        raise OverlappingPathsError(
            f"the output {output} {how} {label} {given}; write it elsewhere"
        )


def remove(path: str | os.PathLike) -> None:
    """Delete a file or a folder tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def temporary_sibling(target: str | os.PathLike) -> Path:
    """Return a new hidden name beside ``target`` to build it under.

    The name, ``.<name>.partial-<8 hex digits>``, is recognised by
    :func:`find_leftovers` when a killed run leaves it behind.

    Examples
    --------
    >>> temporary_sibling("out/result.nc").name.startswith(".result.nc.partial-")
    True
    """
    final = Path(target)
    return final.with_name(f".{final.name}{TEMP_TAG}{uuid.uuid4().hex[:8]}")


def lock_path(target: str | os.PathLike) -> Path:
    """Return the lock file of ``target``: ``.<name>.lock`` in the same folder.

    Examples
    --------
    >>> lock_path("results/out.zarr").name
    '.out.zarr.lock'
    """
    final = Path(target)
    return final.with_name(f".{final.name}{LOCK_SUFFIX}")


@contextlib.contextmanager
def write_lock(target: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive write lock of ``target`` for the enclosed block.

    The lock is released on exit, on an error too; a process that dies holding
    it leaves a lock file that the next writer recognises as stale (see the
    module's notes). The same thread may take the lock of a target it already
    holds (the inner block then does nothing more).

    Parameters
    ----------
    target : path-like
        The file or folder about to be written. Its folder is created if needed.

    Yields
    ------
    pathlib.Path
        The lock file.

    Raises
    ------
    OutputLockedError
        If another process (or another thread of this one) writes ``target``,
        or a lock recorded by another host may still be held.
    NotADirectoryError
        If a parent of ``target`` is a file.

    Warns
    -----
    StaleLockWarning
        When a lock left by a dead process of this host is taken over.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with write_lock(target) as lock:
    ...     lock.exists()
    True
    >>> lock.exists()
    False
    """
    final = Path(target)
    key = str(final.absolute())
    lock = lock_path(final)
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None and held[0] == threading.get_ident():
            held[1] += 1
            nested = True
        elif held is not None:
            raise OutputLockedError(f"{final} is being written by another thread of this process")
        else:
            nested = False
    if nested:
        try:
            yield lock
        finally:
            with _HELD_GUARD:
                _HELD[key][1] -= 1
        return
    check_parent_is_folder(final)
    lock.parent.mkdir(parents=True, exist_ok=True)
    descriptor = _acquire(lock, final)
    with _HELD_GUARD:
        _HELD[key] = [threading.get_ident(), 1]
    try:
        yield lock
    finally:
        with _HELD_GUARD:
            del _HELD[key]
        _release(lock, descriptor)


def holds_lock(target: str | os.PathLike) -> bool:
    """Tell whether this process holds the write lock of ``target``."""
    return str(Path(target).absolute()) in _HELD


def _acquire(lock: Path, target: Path) -> int:
    for _ in range(_LOCK_ATTEMPTS):
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_os_lock(descriptor):
                raise OutputLockedError(_held_message(target, lock, _read_record(descriptor)))
            if not _is_current(descriptor, lock):
                # Its holder released and deleted it between our open and lock:
                # lock the file now at that name instead.
                os.close(descriptor)
                continue
            previous = _read_record(descriptor)
            if previous:
                _check_stale(previous, target, lock)
            _write_record(descriptor)
            return descriptor
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(descriptor)
            raise
    raise OutputLockedError(f"could not take the lock {lock} of {target}: it kept being replaced")


def _release(lock: Path, descriptor: int) -> None:
    try:
        # Only our own file: someone may have deleted it by hand and a new
        # writer created another under the same name.
        if _is_current(descriptor, lock):
            lock.unlink()
    finally:
        os.close(descriptor)


def _try_os_lock(descriptor: int) -> bool:
    if not _HAS_FCNTL:  # pragma: no cover
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _is_current(descriptor: int, lock: Path) -> bool:
    try:
        on_disk = os.stat(lock)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _this_process() -> dict:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:300],
    }
    started = _process_start_time(os.getpid())
    if started is not None:
        record["process_started"] = started
    return record


def _process_start_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def _write_record(descriptor: int) -> None:
    content = json.dumps(_this_process()).encode()
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, content, 0)
    os.fsync(descriptor)


def _read_record(descriptor: int) -> dict:
    try:
        size = os.fstat(descriptor).st_size
        content = json.loads(os.pread(descriptor, max(size, 1), 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _describe_holder(record: Mapping) -> str:
    if not record.get("pid"):
        return "another process (it has not recorded itself yet)"
    since = f", since {record['since']}" if record.get("since") else ""
    return f"process {record['pid']} on host {record.get('host', '?')}{since}"


def _held_message(target: Path, lock: Path, record: Mapping) -> str:
    command = f" ({record['command']})" if record.get("command") else ""
    return (
        f"{target} is being written by {_describe_holder(record)}{command}; only one "
        f"writer at a time: wait for it to finish, or write to another output"
        f" (lock file {lock})"
    )


def _check_stale(record: Mapping, target: Path, lock: Path) -> None:
    """Decide about a lock file whose operating-system lock nobody holds."""
    host, pid = record.get("host"), record.get("pid")
    if host != socket.gethostname():
        raise OutputLockedError(
            f"{target} is locked by {_describe_holder(record)}, another machine; this one "
            f"cannot tell whether that process still runs: if it does not, delete {lock} "
            "and run again"
        )
    if isinstance(pid, int) and _is_running(pid, record.get("process_started")):
        raise OutputLockedError(_held_message(target, lock, record))
    warnings.warn(
        f"{target}: took over the lock left by {_describe_holder(record)}, which is no "
        "longer running (it was interrupted or killed)",
        StaleLockWarning,
        stacklevel=4,
    )


def _is_running(pid: int, started: float | None) -> bool:
    if pid == os.getpid():
        return False  # this process holds no lock of that target (checked above)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    now_started = _process_start_time(pid)
    if started is None or now_started is None:
        return True  # cannot prove a reused process id: assume it is the holder
    return abs(now_started - float(started)) < 1.0


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path that replaces ``target`` only on success.

    The write lock of ``target`` is held throughout, and what an earlier,
    interrupted write to ``target`` left behind is removed first.

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

    Raises
    ------
    FileExistsError
        If ``target`` exists and ``overwrite`` is false.
    OutputLockedError
        If another writer holds the lock of ``target``.

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
    with write_lock(final):
        remove_leftovers(final)
        check_writable(final, overwrite)
        tmp = temporary_sibling(final)
        try:
            yield tmp
        except BaseException:
            remove(tmp)
            raise
        move_into_place(tmp, final)


def move_into_place(partial: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename a finished ``partial`` file or folder onto ``target``.

    An existing ``target`` is first renamed aside and deleted only once the
    new one is in place, so at every moment ``target`` or its renamed copy
    holds complete data.

    Parameters
    ----------
    partial : path-like
        The finished output, in the same folder as ``target``.
    target : path-like
        Its final name.
    """
    partial, target = Path(partial), Path(target)
    if target.exists() or target.is_symlink():
        trash = target.with_name(f".{target.name}{TRASH_TAG}{uuid.uuid4().hex[:8]}")
        os.replace(target, trash)
        os.replace(partial, target)
        remove(trash)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, target)


def find_leftovers(target: str | os.PathLike) -> list[Path]:
    """List what interrupted writes to ``target`` left beside it.

    Parameters
    ----------
    target : path-like
        A file or folder written with :func:`atomic_path` or
        :func:`nima_lessons.store.save`.

    Returns
    -------
    list of pathlib.Path
        Temporary siblings ``.<name>.partial-<hex>`` and ``.<name>.old-<hex>``.
        A resumable zarr save (``.<name>.partial``) is not a leftover.
    """
    final = Path(target)
    if not final.parent.is_dir():
        return []
    found = []
    for entry in final.parent.iterdir():
        match = _LEFTOVER.match(entry.name)
        if match and match["name"] == final.name:
            found.append(entry)
    return sorted(found)


def remove_leftovers(target: str | os.PathLike) -> list[Path]:
    """Delete what interrupted writes to ``target`` left behind.

    Call it holding the write lock of ``target`` (:func:`write_lock`): then no
    other writer can be using those files. A previous ``target`` that a run
    killed in the middle of :func:`move_into_place` left renamed aside is put
    back rather than deleted, when ``target`` itself is missing.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    final = Path(target)
    leftovers = find_leftovers(final)
    trash = [path for path in leftovers if TRASH_TAG in path.name]
    if trash and not (final.exists() or final.is_symlink()):
        restored = max(trash, key=lambda path: path.stat().st_mtime)
        os.replace(restored, final)
        leftovers.remove(restored)
    for path in leftovers:
        remove(path)
    return leftovers


def leftovers_in(folders: Iterable[str | os.PathLike]) -> dict[Path, list[Path]]:
    """Find what interrupted writes left in folders and their sub-folders.

    Returns
    -------
    dict
        ``{target: [leftover, ...]}``: temporary siblings (see
        :func:`find_leftovers`) and lock files (which a live writer may hold:
        take the lock with :func:`write_lock` to find out).
    """
    found: dict[Path, list[Path]] = {}
    for root, names in search_folders(folders):
        for name in names:
            match = _LEFTOVER.match(name) or _LOCK_FILE.match(name)
            if match:
                found.setdefault(root / match["name"], []).append(root / name)
    return found


def search_folders(folders: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, list[str]]]:
    """Yield each folder below ``folders`` with the names of its entries, sorted.

    Zarr stores and hidden folders are not entered: outputs and their
    leftovers lie beside a store, never inside one.
    """
    for folder in folders:
        for root, dirs, files in os.walk(os.fspath(folder)):
            yield Path(root), sorted(dirs + files)
            dirs[:] = [
                name
                for name in sorted(dirs)
                if not name.startswith(".") and not _is_zarr_store(Path(root, name))
            ]


def _is_zarr_store(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))
