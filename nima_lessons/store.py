"""Saving results to zarr or netCDF so that an interrupted save is resumed, never mistaken.

A zarr store is written region by region; a progress record lets ``resume=True``
skip what is already on disk, and a completion marker written last tells a finished
store from an interrupted one. One writer at a time: the whole save holds the
write lock of its target (``nima_lessons._atomic.write_lock``).

How a zarr save proceeds
------------------------
1. The lock beside the target, ``.<name>.lock``, is taken; a second writer fails
   at once. What an earlier, killed run left beside the target is removed.
2. The store is built under a hidden sibling of the target, ``.<name>.partial``:
   a stable name, so that a later ``save(..., resume=True)`` finds it again. It
   appears under that name only once it holds the metadata (every array, its
   attributes and coordinates, the variables held in memory) and the progress
   record, which names the writer, the layout of the result and its
   *fingerprint* (what it was made from and with which settings).
3. The lazy variables are written region by region (a region is a run of whole
   dask chunks along one dimension, for example one time point), in batches of
   regions computed at once by the active dask scheduler (threads, processes or
   a distributed cluster). Batches grow while they take under a second or so,
   which spreads the fixed cost of a write over many regions, and shrink beyond
   a few seconds, which bounds the work an interruption loses. A region is
   recorded only after the write of its batch has returned, so a region cut
   short by an interruption is not recorded and is written again on resume
   (rewriting whole chunks replaces any half-written chunk file).
4. The completion marker is written, the progress record removed and the store
   renamed to the target. Overwriting an existing result therefore replaces it only
   once the new one is complete.

What is ours
------------
``overwrite=True`` replaces only a result this module wrote: a zarr store with
its completion marker, or a netCDF file with its ``nima_lessons_result``
attribute; anything else at the target is refused (:class:`NotOurOutputError`).
``resume=True`` continues only the same save: same layout and same fingerprint
(input identity, settings, package version); otherwise
:class:`ResumeMismatchError` names what differs.

The record guards against an interrupted process (killed, out of memory, closed
notebook); it is not a journal against power loss.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import dask
import numpy as np
import numpy.typing as npt
import xarray as xr

from nima_lessons import __version__
from nima_lessons._atomic import (
    NotOurOutputError,
    atomic_path,
    check_parent_is_folder,
    move_into_place,
    remove,
    remove_leftovers,
    temporary_sibling,
    write_lock,
)
from nima_lessons.cluster import (
    active_client,
    compute_contained,
    contained_pool,
    scheduler_threads,
)
from nima_lessons.config import progress_enabled

if TYPE_CHECKING:
    from _hashlib import HASH

    from dask.delayed import Delayed

__all__ = [
    "FORMATS",
    "MARKER_NAME",
    "PROGRESS_NAME",
    "IncompleteStoreError",
    "NotOurOutputError",
    "ResumeMismatchError",
    "WriteError",
    "describe_input",
    "is_complete",
    "open_result",
    "partial_path",
    "save",
    "save_progress",
]

FORMATS = ("zarr", "netcdf")
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
MARKER_NAME = "nima_lessons_complete.json"
PROGRESS_NAME = "nima_lessons_progress.json"
# The global attribute that marks a netCDF file written by save.
NETCDF_ATTRIBUTE = "nima_lessons_result"
WRITER = "nima-lessons"
DATAARRAY_DEFAULT_NAME = "data"
# Wanted duration of one batch of regions: the most work an interruption loses.
BATCH_SECONDS = 2.0
# Encoding keys that describe values (kept) rather than the source's storage layout
# (dropped: chunks or compressors of the file a result was read from do not fit the
# new store).
VALUE_ENCODING_KEYS = (
    "dtype",
    "_FillValue",
    "missing_value",
    "scale_factor",
    "add_offset",
    "units",
    "calendar",
)
# Warnings zarr emits for every store xarray writes with zarr format 3 (consolidated
# metadata, fixed-length unicode coordinates such as channel names): noise for users.
QUIET_ZARR_WARNINGS = (
    "Consolidated metadata is currently not part",
    r"The data type \(.*\) does not have a Zarr V3 specification",
)
# Failures of the disk rather than of the computation.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
# What describe_input reads to fingerprint an input: bounded, so it stays cheap.
MAX_LISTED_FILES = 10_000
HEADER_BYTES = 65_536
ZARR_METADATA_FILES = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


class IncompleteStoreError(FileNotFoundError):
    """A result was asked for where only an interrupted (incomplete) save exists.

    A subclass of ``FileNotFoundError``: the complete result is not there yet.
    Call ``save(result, path, resume=True)`` to finish it.
    """


class ResumeMismatchError(ValueError):
    """A save to resume (or a complete result) was made from other inputs or settings.

    Attributes
    ----------
    differences : list of tuple
        ``(name, saved value, new value)`` for each entry of the fingerprint
        (or the layout) that differs.
    """

    def __init__(self, message: str, differences: list[tuple[str, object, object]]):
        super().__init__(message)
        self.differences = differences


class WriteError(OSError):
    """Writing to the disk failed (full, over quota, read-only, I/O error).

    Its message says where, how much space is left and what was kept; ``errno``
    is that of the failure.
    """

    def __init__(self, message: str, code: int = errno.EIO):
        super().__init__(message)
        self.errno = code


@dataclass(frozen=True)
class Region:
    """A run of whole dask chunks, ``start:stop`` along ``dim``, of some variables."""

    variables: tuple[str, ...]
    dim: str
    start: int
    stop: int

    def as_list(self) -> list:
        """Return the region as a JSON-friendly list."""
        return [list(self.variables), self.dim, self.start, self.stop]


def save(
    result: xr.Dataset | xr.DataArray,
    path: str | os.PathLike,
    format: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool | None = False,
    fingerprint: Mapping | None = None,
) -> Path:
    """Compute a lazy result and write it to a zarr store or a netCDF file.

    Zarr stores are written region by region with a progress record, so that an
    interrupted save is finished by calling ``save`` again with ``resume=True``;
    a completion marker is written last and checked by :func:`open_result`.
    NetCDF files are written whole under a temporary name and renamed into place.
    The whole save holds the write lock of ``path``: a second writer to the same
    path fails at once.

    Parameters
    ----------
    result : xarray.Dataset or xarray.DataArray
        The result, usually lazy (dask-backed). A DataArray is stored as the
        variable ``result.name`` (``"data"`` when unnamed).
    path : path-like
        Target store (folder) or file, on the local file system.
    format : {"zarr", "netcdf"}, optional
        Default: ``"netcdf"`` when ``path`` ends with ``.nc`` (``.nc4``,
        ``.netcdf``), ``"zarr"`` otherwise.
    overwrite : bool
        Replace a result that this function wrote at ``path`` (complete, or an
        interrupted save of it); it is replaced only once the new one is
        complete. Anything else at ``path`` is never replaced.
    resume : bool
        Continue an interrupted save of the same result (same layout and
        fingerprint) to ``path``, writing only the regions it did not record.
        Starts afresh when there is nothing to resume, and returns at once when
        ``path`` already holds this complete result. A netCDF file is written
        whole, so resuming one means writing it when it is not complete yet.
    progress : bool or None
        Show a progress bar (regions written for zarr, tasks for netCDF);
        ``None`` lets ``$NIMA_LESSONS_PROGRESS`` decide (see
        :func:`nima_lessons.config.progress_enabled`).
    fingerprint : mapping, optional
        What the result was made from and how (JSON-friendly: inputs, for
        example from :func:`describe_input`, and settings), recorded with the
        result; resuming requires the same. The package version and the
        result's attributes are always part of it.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        If ``result`` is not an xarray Dataset or DataArray.
    ValueError
        If ``format`` is unknown, or both ``overwrite`` and ``resume`` are set.
    ResumeMismatchError
        If ``resume`` meets a save (interrupted or complete) of another result,
        or made with another fingerprint.
    FileExistsError
        If ``path`` exists, or an interrupted save to it waits to be resumed,
        and neither ``overwrite`` nor ``resume`` is set.
    NotOurOutputError
        If ``path`` holds something that this function did not write.
    OutputLockedError
        If another writer holds the lock of ``path``.
    WriteError
        If the disk refuses the data (full, over quota, read-only).

    Examples
    --------
    >>> import tempfile
    >>> import dask.array as da
    >>> image = xr.DataArray(da.ones((4, 8, 8), chunks=(1, 8, 8)), dims=("T", "Y", "X"))
    >>> folder = Path(tempfile.mkdtemp())
    >>> store = save(image.rename("image"), folder / "result.zarr")
    >>> is_complete(store)
    True
    >>> float(open_result(store)["image"].sum())
    256.0
    """
    dataset = _as_dataset(result)
    target = Path(path)
    kind = _resolve_format(target, format)
    if overwrite and resume:
        raise ValueError(
            "choose one of overwrite=True (start over) and resume=True (finish the same save)"
        )
    progress = progress_enabled(progress)
    record = _fingerprint(dataset, fingerprint)
    check_parent_is_folder(target)
    with write_lock(target):
        remove_leftovers(target)
        if kind == "netcdf":
            return _save_netcdf(dataset, target, overwrite, resume, progress, record)
        return _save_zarr(dataset, target, overwrite, resume, progress, record)


def is_complete(path: str | os.PathLike) -> bool:
    """Tell whether ``path`` holds a complete result written by :func:`save`.

    Parameters
    ----------
    path : path-like
        A zarr store or netCDF file.

    Returns
    -------
    bool
        True for a zarr store carrying its completion marker and for a netCDF
        file carrying the attribute that :func:`save` writes; False otherwise,
        notably for a missing path, the store of an interrupted save, or a file
        written by other means.

    Examples
    --------
    >>> is_complete("no-such-result.zarr")
    False
    """
    return _complete_record(Path(path)) is not None


def open_result(path: str | os.PathLike) -> xr.Dataset:
    """Open a result written by :func:`save`, lazily.

    Parameters
    ----------
    path : path-like
        A zarr store or netCDF file.

    Returns
    -------
    xarray.Dataset
        Dask-backed variables; nothing is read until computed.

    Raises
    ------
    IncompleteStoreError
        If ``path`` is an interrupted save, or only an interrupted save to
        ``path`` exists; the message says how to resume it.
    FileNotFoundError
        If nothing was saved to ``path``.
    NotOurOutputError
        If ``path`` is a file that :func:`save` did not write.
    """
    target = Path(path)
    partial = partial_path(target)
    if not target.exists():
        if partial.exists():
            raise IncompleteStoreError(
                f"{target} is not complete: a save to it was interrupted and left {partial}; "
                f"finish it with save(result, {str(target)!r}, resume=True) (--resume)"
            )
        raise FileNotFoundError(f"no saved result at {target}")
    if target.is_file():
        if _netcdf_record(target) is None:
            raise NotOurOutputError(
                f"{target} is not a result written by nima-lessons (it lacks the "
                f"{NETCDF_ATTRIBUTE} attribute); open it with xarray.open_dataset"
            )
        opened = xr.open_dataset(target, chunks={})
        opened.attrs.pop(NETCDF_ATTRIBUTE, None)
        return opened
    if not is_complete(target):
        raise IncompleteStoreError(
            f"{target} is not a complete result: it lacks the completion marker "
            f"{MARKER_NAME} (a foreign or unfinished store); nima-lessons did not finish "
            "writing it"
        )
    with _quiet_zarr():
        return xr.open_zarr(target)


def partial_path(path: str | os.PathLike) -> Path:
    """Return where a zarr save to ``path`` is built until it is complete.

    Examples
    --------
    >>> partial_path("results/out.zarr").name
    '.out.zarr.partial'
    """
    target = Path(path)
    return target.with_name(f".{target.name}.partial")


def save_progress(path: str | os.PathLike) -> tuple[int, int] | None:
    """Regions saved so far by an interrupted zarr save to ``path``.

    Returns
    -------
    tuple of int or None
        ``(regions written, regions in all)``, or None when no interrupted
        save of this package waits at ``partial_path(path)``.
    """
    record = _partial_record(partial_path(path))
    if not record or "layout" not in record:
        return None
    total = len(record["layout"].get("regions", []))
    done = total if record.get("complete") else len(record.get("done", []))
    return done, total


def describe_input(
    path: str | os.PathLike[str], data: npt.ArrayLike | None = None, include_values: bool = False
) -> dict:
    """Describe an input for a fingerprint: where it is, its shape, and its metadata.

    The description is cheap: file names and sizes (at most
    ``MAX_LISTED_FILES``), the first bytes of one file (a TIFF header, say),
    zarr metadata documents and the coordinates and attributes of ``data``;
    pixel values are read only with ``include_values``, for small inputs such
    as dark and flat frames. It tells another file, shape, dtype or metadata,
    not every changed pixel of a large image.

    Parameters
    ----------
    path : path-like
        File, folder or glob pattern the input was read from.
    data : array-like or xarray.DataArray, optional
        The input as read.
    include_values : bool
        Add a digest of the values of ``data``.

    Returns
    -------
    dict
        JSON-friendly: ``path``, and ``shape``, ``dtype`` with ``data``, and
        ``metadata`` (a digest), ``values`` (a digest) as asked.

    Examples
    --------
    >>> entry = describe_input("no-such-image.tif", np.zeros((2, 3), np.uint16))
    >>> entry["shape"], entry["dtype"]
    ([2, 3], 'uint16')
    """
    text = os.fspath(path)
    entry: dict = {"path": os.path.abspath(text)}
    digest = hashlib.sha256()
    if data is not None:
        entry["shape"] = [int(size) for size in np.shape(data)]
        entry["dtype"] = str(data.dtype) if hasattr(data, "dtype") else str(np.asarray(data).dtype)
        if isinstance(data, xr.DataArray):
            digest.update(_array_metadata(data).encode())
    _digest_files(text, digest)
    entry["metadata"] = digest.hexdigest()[:16]
    if include_values and data is not None:
        values = np.ascontiguousarray(np.asarray(data))
        entry["values"] = hashlib.sha256(values.tobytes()).hexdigest()[:16]
    return entry


def _array_metadata(data: xr.DataArray) -> str:
    """Dims, coordinates and attributes of ``data`` as text (small coordinates in full)."""
    coords = {}
    for name, coord in data.coords.items():
        values = coord.values
        coords[str(name)] = values.tolist() if values.size <= 10_000 else list(values.shape)
    content = {"dims": list(map(str, data.dims)), "coords": coords, "attrs": data.attrs}
    return json.dumps(content, sort_keys=True, default=str)


def _digest_files(text: str, digest: HASH) -> None:
    """Add file names, sizes, one header and zarr metadata of an input to ``digest``."""
    path = Path(text)
    if path.is_file():
        files, root = [path], path.parent
    elif path.is_dir():
        files, root = _listed_files(path), path
    else:
        files = [Path(name) for name in sorted(glob.glob(text)) if Path(name).is_file()]
        root = Path(".")
        files = files[:MAX_LISTED_FILES]
    for file in files:
        relative = os.path.relpath(file, root)
        try:
            size = file.stat().st_size
        except OSError:
            continue
        digest.update(f"{relative}\0{size}\n".encode())
        if file.name in ZARR_METADATA_FILES and size <= 1 << 20:
            digest.update(file.read_bytes())
    first = next((file for file in files if file.name not in ZARR_METADATA_FILES), None)
    if first is not None:
        with contextlib.suppress(OSError), open(first, "rb") as handle:
            digest.update(handle.read(HEADER_BYTES))


def _listed_files(folder: Path) -> list[Path]:
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        files.extend(Path(root, name) for name in sorted(names))
        if len(files) >= MAX_LISTED_FILES:
            return files[:MAX_LISTED_FILES]
    return files


def _fingerprint(dataset: xr.Dataset, given: Mapping | None) -> dict:
    """The fingerprint recorded with a save: package version, attributes, and ``given``."""
    content = {
        "nima_lessons version": __version__,
        "result attributes": {str(k): v for k, v in dataset.attrs.items()},
        **dict(given or {}),
    }
    return json.loads(json.dumps(content, default=str))


def _differences(saved: Mapping, wanted: Mapping) -> list[tuple[str, object, object]]:
    """Entries of two fingerprints that differ, as (dotted name, saved, wanted)."""
    flat_saved, flat_wanted = _flatten(saved), _flatten(wanted)
    missing = object()
    found = []
    for key in sorted(set(flat_saved) | set(flat_wanted)):
        before, after = flat_saved.get(key, missing), flat_wanted.get(key, missing)
        if before != after:
            found.append(
                (key, None if before is missing else before, None if after is missing else after)
            )
    return found


def _flatten(content: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in content.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _check_same_save(
    saved: Mapping, layout: dict | None, fingerprint: dict, target: Path, complete: bool
) -> None:
    """Refuse to resume (or to accept as done) a save of another result."""
    differences = _differences(saved.get("fingerprint") or {}, fingerprint)
    # A result's attributes usually echo its settings: name them only when nothing
    # else differs.
    named = [entry for entry in differences if not entry[0].startswith("result attributes")]
    differences = named or differences
    if layout is not None and saved.get("layout") != layout:
        differences.append(("result layout", "other variables, shapes, dtypes or chunks", None))
    if not differences:
        return
    shown = "; ".join(_describe_difference(*difference) for difference in differences[:4])
    if len(differences) > 4:
        shown += f"; and {len(differences) - 4} more"
    if complete:
        message = (
            f"{target} is already complete but was made differently ({shown}); keep it, or "
            "replace it with overwrite=True (--overwrite) instead of resume=True (--resume)"
        )
    else:
        message = (
            f"cannot resume the interrupted save to {target}: it was started differently "
            f"({shown}); resume with the original inputs and settings, or start over with "
            "overwrite=True (--overwrite)"
        )
    raise ResumeMismatchError(message, differences)


def _describe_difference(name: str, saved: object, wanted: object) -> str:
    if wanted is None and name == "result layout":
        return f"the result has {saved}"
    return f"{name} was {_short(saved)}, now {_short(wanted)}"


def _short(value: object) -> str:
    text = "not recorded" if value is None else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _complete_record(target: Path) -> dict | None:
    """The record of a complete result of ours at ``target``, else None."""
    if target.is_dir():
        marker = _read_json(target / MARKER_NAME)
        return marker if marker.get("complete") is True else None
    if target.is_file():
        return _netcdf_record(target)
    return None


def _netcdf_record(target: Path) -> dict | None:
    try:
        with xr.open_dataset(target, decode_cf=False) as opened:
            text = opened.attrs.get(NETCDF_ATTRIBUTE)
        record = json.loads(text) if isinstance(text, str) else None
    except Exception:
        return None
    return record if isinstance(record, dict) and record.get("written_by") == WRITER else None


def _partial_record(partial: Path) -> dict:
    """The marker or progress record of an interrupted save, ``{}`` when none."""
    marker = _read_json(partial / MARKER_NAME)
    return marker or _read_json(partial / PROGRESS_NAME)


def _refuse_foreign(target: Path) -> None:
    if _complete_record(target) is None:
        kind = "folder" if target.is_dir() else "file"
        raise NotOurOutputError(
            f"{target} is a {kind} that nima-lessons did not write (no completion marker); "
            "it is never replaced: choose another output, or move it away yourself"
        )


def _as_dataset(result: xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(result, xr.DataArray):
        name = DATAARRAY_DEFAULT_NAME if result.name is None else result.name
        return result.to_dataset(name=name)
    if isinstance(result, xr.Dataset):
        return result
    raise TypeError(f"result must be an xarray Dataset or DataArray, got {type(result).__name__}")


def _resolve_format(target: Path, format: str | None) -> str:
    if format is None:
        return "netcdf" if target.suffix.lower() in NETCDF_SUFFIXES else "zarr"
    kind = str(format).lower()
    if kind not in FORMATS:
        raise ValueError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")
    return kind


def _save_netcdf(
    dataset: xr.Dataset,
    target: Path,
    overwrite: bool,
    resume: bool,
    progress: bool,
    fingerprint: dict,
) -> Path:
    layout = _variables_layout(dataset)
    if target.exists() or target.is_symlink():
        saved = _complete_record(target) if target.is_file() else None
        if saved is None:
            _refuse_foreign_file(target)
        if resume:
            _check_same_save(saved, layout, fingerprint, target, complete=True)
            return target
        if not overwrite:
            raise FileExistsError(
                f"{target} already exists; pass overwrite=True (--overwrite) to replace it"
            )
    dataset = _drop_storage_encoding(dataset)
    record = {"written_by": WRITER, "layout": layout, "fingerprint": fingerprint}
    dataset.attrs[NETCDF_ATTRIBUTE] = json.dumps(record)
    with atomic_path(target, overwrite=True) as tmp, _disk_errors(target, kept=None):
        delayed_write = dataset.to_netcdf(tmp, compute=False)
        _compute_with_progress(delayed_write, progress)
    return target


def _refuse_foreign_file(target: Path) -> NoReturn:
    if target.is_dir():
        raise NotOurOutputError(
            f"{target} is a folder, not a netCDF file written by nima-lessons; it is never "
            "replaced: choose another output"
        )
    raise NotOurOutputError(
        f"{target} is a file that nima-lessons did not write (no {NETCDF_ATTRIBUTE} "
        "attribute); it is never replaced: choose another output, or move it away yourself"
    )


def _save_zarr(
    dataset: xr.Dataset,
    target: Path,
    overwrite: bool,
    resume: bool,
    progress: bool,
    fingerprint: dict,
) -> Path:
    dataset = _prepare(dataset)
    regions = _plan_regions(dataset)
    layout = _layout(dataset, regions)
    if target.exists() or target.is_symlink():
        _refuse_foreign(target)
        if resume:
            saved = _read_json(target / MARKER_NAME)
            _check_same_save(saved, layout, fingerprint, target, complete=True)
            return target
        if not overwrite:
            raise FileExistsError(
                f"{target} already exists; pass overwrite=True (--overwrite) to replace it"
            )
    partial = partial_path(target)
    done = _resume_point(partial, layout, fingerprint, target, overwrite, resume)
    if done is None:
        remove(partial)
        _start_partial(dataset, partial, layout, fingerprint, target)
        done = set()
    with _disk_errors(target, kept=partial):
        _write_regions(dataset, partial, regions, done, layout, fingerprint, progress)
        marker = {"complete": True, "written_by": WRITER, "layout": layout}
        _write_json(partial / MARKER_NAME, {**marker, "fingerprint": fingerprint})
    remove(partial / PROGRESS_NAME)
    move_into_place(partial, target)
    return target


def _resume_point(
    partial: Path,
    layout: dict,
    fingerprint: dict,
    target: Path,
    overwrite: bool,
    resume: bool,
) -> set[int] | None:
    """Regions already written by an interrupted save, or None to start afresh."""
    if not (partial.exists() or partial.is_symlink()):
        return None
    record = _partial_record(partial)
    if not record:
        if partial.is_dir() and not any(partial.iterdir()):
            return None  # created, then killed before anything was written
        raise NotOurOutputError(
            f"{partial} is in the way of the save to {target}, and nima-lessons did not "
            "write it (no progress record); move it away"
        )
    if overwrite:
        return None
    if not resume:
        progress = save_progress(target)
        count = f" ({progress[0]} of {progress[1]} regions written)" if progress else ""
        raise FileExistsError(
            f"an interrupted save to {target} waits in {partial}{count}: finish it with "
            "resume=True (--resume), or discard it with overwrite=True (--overwrite)"
        )
    _check_same_save(record, layout, fingerprint, target, complete=False)
    if record.get("complete") is True:
        return set(range(len(layout["regions"])))
    return {int(index) for index in record.get("done", [])}


def _start_partial(
    dataset: xr.Dataset, partial: Path, layout: dict, fingerprint: dict, target: Path
) -> None:
    """Create the partial store: metadata and progress record, then its stable name.

    Built under a temporary name, so that ``.<name>.partial`` always carries its
    record; a run killed meanwhile leaves a leftover that the next save removes.
    """
    building = temporary_sibling(target)
    try:
        with _disk_errors(target, kept=None):
            _write_metadata(dataset, building)
            _record_progress(building, layout, fingerprint, set())
    except BaseException:
        remove(building)
        raise
    os.replace(building, partial)


@contextlib.contextmanager
def _disk_errors(target: Path, kept: Path | None) -> Iterator[None]:
    """Turn the disk's refusals (full, quota, read-only) into one clear WriteError."""
    try:
        yield
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        raise WriteError(_write_failure(target, error, kept), error.errno) from error
    except RuntimeError as error:
        # The netCDF library reports a full disk as "NetCDF: HDF error".
        if not str(error).startswith("NetCDF:"):
            raise
        raise WriteError(_write_failure(target, error, kept)) from error


def _write_failure(target: Path, error: BaseException, kept: Path | None) -> str:
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    message = f"could not write {target}: {reason}"
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(target.parent).free
        message += f" ({free / 2**20:.1f} MiB free on its disk)"
    if kept is not None and kept.exists():
        return message + (
            f"; what was written is kept in {kept}: free some space, then resume "
            "(resume=True, --resume)"
        )
    return message + "; nothing was kept: free some space, then save again"


def _plan_regions(dataset: xr.Dataset) -> list[Region]:
    """Split the lazy variables of ``dataset`` into regions written one at a time.

    The variables sharing a dimension are written together, one run of dask
    chunks along that dimension per region; the dimension shared by most lazy
    variables is taken first, then the one with most chunks. Variables held in
    memory, and lazy scalars (computed beforehand), are not part of any region:
    they are written with the metadata.

    Parameters
    ----------
    dataset : xarray.Dataset
        With consistent chunks (``dataset.unify_chunks()``).

    Returns
    -------
    list of Region
        In writing order.

    Examples
    --------
    >>> import dask.array as da
    >>> ds = xr.Dataset({"v": (("T", "X"), da.zeros((3, 4), chunks=(1, 4)))})
    >>> [(r.dim, r.start, r.stop) for r in _plan_regions(ds)]
    [('T', 0, 1), ('T', 1, 2), ('T', 2, 3)]
    """
    remaining = [
        str(name) for name, var in dataset.data_vars.items() if var.chunks is not None and var.ndim
    ]
    dim_order = [str(dim) for dim in dataset.dims]
    regions: list[Region] = []
    while remaining:

        def score(dim: str, names: tuple[str, ...] = tuple(remaining)) -> tuple[int, int, int]:
            sharing = sum(dim in dataset[name].dims for name in names)
            return (sharing, len(dataset.chunks[dim]), -dim_order.index(dim))

        candidates = {str(dim) for name in remaining for dim in dataset[name].dims}
        dim = max(candidates, key=score)
        group = tuple(name for name in remaining if dim in dataset[name].dims)
        start = 0
        for size in dataset.chunks[dim]:
            regions.append(Region(group, dim, start, start + size))
            start += size
        remaining = [name for name in remaining if name not in group]
    return regions


def _prepare(dataset: xr.Dataset) -> xr.Dataset:
    """Return a copy ready for region writes: one chunking, eager coordinates."""
    dataset = _drop_storage_encoding(dataset).unify_chunks()
    # Zarr needs regular chunks (all equal but the last); regions follow them.
    irregular = {
        dim: max(sizes)
        for dim, sizes in dataset.chunks.items()
        if len(set(sizes[:-1])) > 1 or (len(sizes) > 1 and sizes[-1] > sizes[0])
    }
    if irregular:
        dataset = dataset.chunk(irregular)
    # Coordinates and scalars go with the metadata, so they must be in memory.
    eager = [
        name
        for name, var in dataset.variables.items()
        if var.chunks is not None and (name in dataset.coords or var.ndim == 0)
    ]
    for name in eager:
        computed = dataset[name].variable.compute()
        if name in dataset.coords:
            dataset = dataset.assign_coords({name: computed})
        else:
            dataset[name] = computed
    return dataset


def _drop_storage_encoding(dataset: xr.Dataset) -> xr.Dataset:
    dataset = dataset.copy()
    dataset.encoding = {}
    for var in dataset.variables.values():
        var.encoding = {
            key: value for key, value in var.encoding.items() if key in VALUE_ENCODING_KEYS
        }
    return dataset


def _variables_layout(dataset: xr.Dataset) -> dict:
    """Names, dims, shapes and dtypes of every variable, JSON-friendly."""
    return {
        str(name): {
            "dims": [str(dim) for dim in var.dims],
            "shape": list(var.shape),
            "dtype": str(var.dtype),
        }
        for name, var in dataset.variables.items()
    }


def _layout(dataset: xr.Dataset, regions: list[Region]) -> dict:
    """Describe what a save writes, to check that a resumed save is the same one."""
    variables = _variables_layout(dataset)
    for name, var in dataset.variables.items():
        variables[str(name)]["chunks"] = (
            None if var.chunks is None else [list(c) for c in var.chunks]
        )
    layout = {"variables": variables, "regions": [region.as_list() for region in regions]}
    return json.loads(json.dumps(layout))


def _write_metadata(dataset: xr.Dataset, partial: Path) -> None:
    # compute=False creates every array and writes the in-memory variables only;
    # the lazy variables are written later, region by region.
    with _quiet_zarr():
        dataset.to_zarr(partial, mode="w", compute=False)


def _write_regions(
    dataset: xr.Dataset,
    partial: Path,
    regions: list[Region],
    done: set[int],
    layout: dict,
    fingerprint: dict,
    progress: bool,
) -> None:
    """Write the regions not in ``done`` batch by batch, recording each batch."""
    todo = [index for index in range(len(regions)) if index not in done]
    if not todo:
        return
    batch_size = _regions_per_batch(dataset, regions[todo[0]])
    from tqdm.auto import tqdm

    with (
        contained_pool(),
        tqdm(total=len(regions), initial=len(done), unit="region", disable=not progress) as bar,
    ):
        while todo:
            batch, todo = todo[:batch_size], todo[batch_size:]
            started = time.perf_counter()
            writes = [
                _region_write(dataset, partial, run) for run in _contiguous_runs(batch, regions)
            ]
            with _quiet_zarr():
                compute_contained(*writes)
            done.update(batch)
            _record_progress(partial, layout, fingerprint, done)
            bar.update(len(batch))
            batch_size = _next_batch_size(batch_size, time.perf_counter() - started)


def _next_batch_size(batch_size: int, seconds: float) -> int:
    # Bigger batches spread the fixed cost of a write over more regions; smaller
    # ones lose less work to an interruption. Aim at a few seconds per batch.
    if seconds < BATCH_SECONDS / 2:
        return batch_size * 2
    if seconds > BATCH_SECONDS * 2:
        return max(1, batch_size // 2)
    return batch_size


def _contiguous_runs(batch: list[int], regions: list[Region]) -> list[Region]:
    """Merge adjacent regions of a batch, each run becoming one write."""
    runs: list[Region] = []
    for index in batch:
        region = regions[index]
        last = runs[-1] if runs else None
        if last is not None and (last.variables, last.dim, last.stop) == (
            region.variables,
            region.dim,
            region.start,
        ):
            runs[-1] = Region(last.variables, last.dim, last.start, region.stop)
        else:
            runs.append(region)
    return runs


def _region_write(dataset: xr.Dataset, partial: Path, region: Region) -> Delayed:
    where = {region.dim: slice(region.start, region.stop)}
    part = dataset[list(region.variables)].isel(where)
    # Coordinates were written with the metadata; writing them again from several
    # regions at once would race on their single chunk.
    part = part.drop_vars(list(part.coords))
    with _quiet_zarr():
        return part.to_zarr(partial, region=where, mode="r+", compute=False)


def _regions_per_batch(dataset: xr.Dataset, region: Region) -> int:
    """Regions of the first batch: enough chunks to keep every worker thread busy."""
    chunks_per_region = 0
    for name in region.variables:
        var = dataset[name]
        if var.chunks is None:  # in memory, written with the metadata: not in any region
            continue
        sizes = [len(c) for dim, c in zip(var.dims, var.chunks, strict=True) if dim != region.dim]
        chunks_per_region += math.prod(sizes)
    return max(1, math.ceil(2 * scheduler_threads() / max(chunks_per_region, 1)))


def _compute_with_progress(delayed_write: Delayed, progress: bool) -> None:
    client = active_client()
    if progress and client is not None:
        from distributed import progress as distributed_progress

        future = client.compute(delayed_write)
        distributed_progress(future)
        future.result()
        return
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            dask.compute(delayed_write)
        return
    dask.compute(delayed_write)


def _record_progress(partial: Path, layout: dict, fingerprint: dict, done: set[int]) -> None:
    content = {"written_by": WRITER, "layout": layout, "fingerprint": fingerprint}
    _write_json(partial / PROGRESS_NAME, {**content, "done": sorted(done)})


def _write_json(path: Path, content: Mapping) -> None:
    """Write JSON atomically: readers see the old content or the new, never a part."""
    tmp = temporary_sibling(path)
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return content if isinstance(content, dict) else {}


@contextlib.contextmanager
def _quiet_zarr() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in QUIET_ZARR_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield
