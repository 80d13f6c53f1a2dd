"""Saving results to zarr or netCDF so that an interrupted save is resumed, never mistaken.

A zarr store is written region by region; a progress record lets ``resume=True``
skip what is already on disk, and a completion marker written last tells a finished
store from an interrupted one.

How a zarr save proceeds
------------------------
1. The store is built under a hidden sibling of the target, ``.<name>.partial``:
   a stable name, so that a later ``save(..., resume=True)`` finds it again.
2. The metadata (every array, its attributes and coordinates) and the variables
   held in memory are written first, then the progress record is created.
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

The record guards against an interrupted process (killed, out of memory, closed
notebook); it is not a journal against power loss. One process at a time may save
to a given path.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.local
import dask.multiprocessing
import xarray as xr

from nima_lessons._atomic import atomic_path, move_into_place, remove
from nima_lessons.config import progress_enabled

FORMATS = ("zarr", "netcdf")
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
MARKER_NAME = "nima_lessons_complete.json"
PROGRESS_NAME = "nima_lessons_progress.json"
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


class IncompleteStoreError(FileNotFoundError):
    """A result was asked for where only an interrupted (incomplete) save exists.

    A subclass of ``FileNotFoundError``: the complete result is not there yet.
    Call ``save(result, path, resume=True)`` to finish it.
    """


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
) -> Path:
    """Compute a lazy result and write it to a zarr store or a netCDF file.

    Zarr stores are written region by region with a progress record, so that an
    interrupted save is finished by calling ``save`` again with ``resume=True``;
    a completion marker is written last and checked by :func:`open_result`.
    NetCDF files are written whole under a temporary name and renamed into place.

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
        Replace an existing result at ``path``; it is replaced only once the new
        one is complete.
    resume : bool
        Zarr only: continue an interrupted save of the same result to ``path``,
        writing only the regions it did not record. Starts afresh when there is
        nothing to resume, and returns at once when ``path`` already holds this
        complete result.
    progress : bool or None
        Show a progress bar (regions written for zarr, tasks for netCDF);
        ``None`` lets ``$NIMA_LESSONS_PROGRESS`` decide (see
        :func:`nima_lessons.config.progress_enabled`).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        If ``result`` is not an xarray Dataset or DataArray.
    ValueError
        If ``format`` is unknown, ``resume`` is asked for a netCDF file, or the
        interrupted save to ``path`` was of a result with another layout.
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.

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
    progress = progress_enabled(progress)
    if kind == "netcdf":
        if resume:
            raise ValueError(
                f"resume=True is supported for zarr stores only, not for the netCDF file "
                f"{target}: netCDF files are written whole (an interrupted write leaves "
                "nothing behind), so save again without resume"
            )
        return _save_netcdf(dataset, target, overwrite, progress)
    return _save_zarr(dataset, target, overwrite, resume, progress)


def is_complete(path: str | os.PathLike) -> bool:
    """Tell whether ``path`` holds a complete saved result.

    Parameters
    ----------
    path : path-like
        A zarr store or netCDF file written by :func:`save`.

    Returns
    -------
    bool
        True for a netCDF file (written atomically) and for a zarr store
        carrying its completion marker; False otherwise, notably for a missing
        path or the store of an interrupted save.

    Examples
    --------
    >>> is_complete("no-such-result.zarr")
    False
    """
    target = Path(path)
    if target.is_file():
        return True
    return target.is_dir() and _read_json(target / MARKER_NAME).get("complete") is True


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
    """
    target = Path(path)
    partial = partial_path(target)
    if not target.exists():
        if partial.exists():
            raise IncompleteStoreError(
                f"{target} is not complete: a save to it was interrupted and left {partial}; "
                f"finish it with save(result, {str(target)!r}, resume=True)"
            )
        raise FileNotFoundError(f"no saved result at {target}")
    if target.is_file():
        return xr.open_dataset(target, chunks={})
    if not is_complete(target):
        raise IncompleteStoreError(
            f"{target} is not a complete result: it lacks the completion marker "
            f"{MARKER_NAME} (an interrupted or foreign write); save it again with "
            f"save(result, {str(target)!r}, overwrite=True)"
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
        name for name, var in dataset.data_vars.items() if var.chunks is not None and var.ndim
    ]
    dim_order = list(dataset.dims)
    regions: list[Region] = []
    while remaining:

        def score(dim: str) -> tuple[int, int, int]:
            sharing = sum(dim in dataset[name].dims for name in remaining)
            return (sharing, len(dataset.chunks[dim]), -dim_order.index(dim))

        candidates = {dim for name in remaining for dim in dataset[name].dims}
        dim = max(candidates, key=score)
        group = tuple(name for name in remaining if dim in dataset[name].dims)
        start = 0
        for size in dataset.chunks[dim]:
            regions.append(Region(group, str(dim), start, start + size))
            start += size
        remaining = [name for name in remaining if name not in group]
    return regions


def _as_dataset(result: xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(result, xr.DataArray):
        name = DATAARRAY_DEFAULT_NAME if result.name is None else result.name
        return result.to_dataset(name=name)
    if isinstance(result, xr.Dataset):
        return result
    raise TypeError(
        f"result must be an xarray Dataset or DataArray, got {type(result).__name__}"
    )


def _resolve_format(target: Path, format: str | None) -> str:
    if format is None:
        return "netcdf" if target.suffix.lower() in NETCDF_SUFFIXES else "zarr"
    kind = str(format).lower()
    if kind not in FORMATS:
        raise ValueError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")
    return kind


def _save_netcdf(dataset: xr.Dataset, target: Path, overwrite: bool, progress: bool) -> Path:
    dataset = _drop_storage_encoding(dataset)
    with atomic_path(target, overwrite) as tmp:
        delayed_write = dataset.to_netcdf(tmp, compute=False)
        _compute_with_progress(delayed_write, progress)
    return target


def _save_zarr(
    dataset: xr.Dataset, target: Path, overwrite: bool, resume: bool, progress: bool
) -> Path:
    exists_error = FileExistsError(
        f"{target} already exists; pass overwrite=True (--overwrite) to replace it"
    )
    if target.exists() and not (overwrite or resume):
        raise exists_error
    dataset = _prepare(dataset)
    regions = _plan_regions(dataset)
    layout = _layout(dataset, regions)
    if target.exists() and not overwrite:
        # resume=True on a finished save of this very result: nothing left to do.
        if _read_json(target / MARKER_NAME).get("layout") == layout:
            return target
        raise exists_error
    partial = partial_path(target)
    done = _resume_point(partial, layout) if resume else None
    if done is None:
        remove(partial)
        partial.parent.mkdir(parents=True, exist_ok=True)
        _write_metadata(dataset, partial)
        done = set()
        _record_progress(partial, layout, done)
    _write_regions(dataset, partial, regions, done, layout, progress)
    _write_json(partial / MARKER_NAME, {"complete": True, "layout": layout})
    remove(partial / PROGRESS_NAME)
    move_into_place(partial, target)
    return target


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


def _layout(dataset: xr.Dataset, regions: list[Region]) -> dict:
    """Describe what a save writes, to check that a resumed save is the same one."""
    variables = {
        str(name): {
            "dims": [str(dim) for dim in var.dims],
            "shape": list(var.shape),
            "dtype": str(var.dtype),
            "chunks": None if var.chunks is None else [list(c) for c in var.chunks],
        }
        for name, var in dataset.variables.items()
    }
    layout = {"variables": variables, "regions": [region.as_list() for region in regions]}
    return json.loads(json.dumps(layout))


def _resume_point(partial: Path, layout: dict) -> set[int] | None:
    """Regions already written by an interrupted save, or None to start afresh."""
    if not partial.exists():
        return None
    marker = _read_json(partial / MARKER_NAME)
    record = marker or _read_json(partial / PROGRESS_NAME)
    if not record:
        return None  # interrupted while writing the metadata
    if record.get("layout") != layout:
        raise ValueError(
            f"cannot resume into {partial}: the interrupted save there was of a result "
            "with other variables, shapes, dtypes or chunks; save with resume=False "
            "to start over"
        )
    if marker.get("complete") is True:
        return set(range(len(layout["regions"])))
    return {int(index) for index in record.get("done", [])}


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
    progress: bool,
) -> None:
    """Write the regions not in ``done`` batch by batch, recording each batch."""
    todo = [index for index in range(len(regions)) if index not in done]
    if not todo:
        return
    batch_size = _regions_per_batch(dataset, regions[todo[0]])
    from tqdm.auto import tqdm

    with (
        _one_process_pool(),
        tqdm(total=len(regions), initial=len(done), unit="region", disable=not progress) as bar,
    ):
        while todo:
            batch, todo = todo[:batch_size], todo[batch_size:]
            started = time.perf_counter()
            writes = [
                _region_write(dataset, partial, run) for run in _contiguous_runs(batch, regions)
            ]
            with _quiet_zarr():
                dask.compute(*writes)
            done.update(batch)
            _record_progress(partial, layout, done)
            bar.update(len(batch))
            batch_size = _next_batch_size(batch_size, time.perf_counter() - started)


def _one_process_pool():
    """Under the processes scheduler, one pool for all batches instead of one each."""
    if dask.base.get_scheduler() is dask.multiprocessing.get:
        from nima_lessons.cluster import process_pool

        return process_pool()
    return contextlib.nullcontext()


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


def _region_write(dataset: xr.Dataset, partial: Path, region: Region):
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
        sizes = [len(c) for dim, c in zip(var.dims, var.chunks, strict=True) if dim != region.dim]
        chunks_per_region += math.prod(sizes)
    return max(1, math.ceil(2 * _scheduler_threads() / max(chunks_per_region, 1)))


def _scheduler_threads() -> int:
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", scheduler)
    if "Client" in type(client).__name__ and hasattr(client, "nthreads"):
        return max(1, sum(client.nthreads().values()))
    if scheduler is dask.local.get_sync:
        return 1
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _compute_with_progress(delayed_write, progress: bool) -> None:
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", scheduler)
    if progress and "Client" in type(client).__name__:
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


def _record_progress(partial: Path, layout: dict, done: set[int]) -> None:
    _write_json(partial / PROGRESS_NAME, {"layout": layout, "done": sorted(done)})


def _write_json(path: Path, content: Mapping) -> None:
    """Write JSON atomically: readers see the old content or the new, never a part."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return {}
    return content if isinstance(content, dict) else {}


@contextlib.contextmanager
def _quiet_zarr() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in QUIET_ZARR_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield
