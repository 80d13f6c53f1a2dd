"""A stitched two-channel ratiometric plane, far larger than memory, written tile by tile.

A slide scanned field by field and stitched gives one plane of tens of thousands of
pixels a side. This generator makes such a plane (channels G and C, ratio G / C) without
ever holding it: cells sit one per square territory of the plane (the shapes and
signals of :func:`~nima_lessons.course.synthetic.ratiometric.ratiometric_timelapse`),
every camera field of the mosaic has the same dark frame and vignetting, and each tile
is drawn from its own random stream, so tiles can be made in any order, in parallel,
with identical results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr

from nima_lessons._atomic import atomic_path
from nima_lessons.config import data_dir, progress_enabled, size_name, size_preset
from nima_lessons.course.synthetic._ome import (
    create_ngff_array,
    open_ngff_group,
    write_tczyx_metadata,
)
from nima_lessons.course.synthetic._validate import check_seed, check_shape
from nima_lessons.course.synthetic.ratiometric import (
    BACKGROUND_PHOTONS,
    CHANNELS,
    READ_NOISE_SD,
    camera_frames,
    cell_parameters,
)

__all__ = [
    "STITCHED_CHANNELS",
    "StitchedPlane",
    "open_stitched",
    "stitched_cells",
    "write_stitched",
]

#: The channels of a stitched plane: the ratio is G / C.
STITCHED_CHANNELS = ("G", "C")


@dataclass(frozen=True)
class StitchedPlane:
    """A stitched plane opened lazily, with its calibration frames.

    Attributes
    ----------
    image : xarray.DataArray
        uint16 (T=1, C=2, Z=1, Y, X), chunked as stored (the tiles).
    dark, flat : xarray.DataArray
        float32 (C, Y, X), lazy: each camera field's frame repeated over the
        mosaic, in the image's tiles.
    n_cells : int
        Number of cells drawn.
    """

    image: xr.DataArray
    dark: xr.DataArray
    flat: xr.DataArray
    n_cells: int


def stitched_cells(shape: tuple[int, int], fill: float = 0.6, seed: int = 0) -> dict:
    """Draw the cells of a stitched plane: at most one per territory.

    Parameters
    ----------
    shape : tuple of int
        Plane shape (Y, X).
    fill : float
        Fraction of the territories holding a cell, in (0, 1].
    seed : int
        Random seed.

    Returns
    -------
    dict
        The arrays of :func:`~nima_lessons.course.synthetic.ratiometric.cell_parameters`
        for every territory (row-major over the grid of territories), and
        ``present`` (bool), ``grid`` (territories along Y and X).
    """
    shape = check_shape(shape, "shape", ndim=2)
    if not 0 < fill <= 1:
        raise ValueError(f"fill must be a fraction in (0, 1], got {fill}")
    rng = np.random.default_rng([check_seed(seed), 10])
    size = cell_parameters(0, rng)["territory_px"]
    grid = (shape[0] // size, shape[1] // size)
    cells = cell_parameters(grid[0] * grid[1], rng)
    cells["present"] = rng.random(grid[0] * grid[1]) < fill
    cells["grid"] = grid
    return cells


def render_tile(cells: dict, rows: slice, cols: slice) -> np.ndarray:
    """Label image of one tile: the territory number + 1 inside a cell, 0 outside.

    Parameters
    ----------
    cells : dict
        From :func:`stitched_cells`.
    rows, cols : slice
        The tile's pixels in the plane.

    Returns
    -------
    numpy.ndarray
        int64 (rows, cols).
    """
    size = cells["territory_px"]
    y = np.arange(rows.start, rows.stop)[:, None]
    x = np.arange(cols.start, cols.stop)[None, :]
    ty, tx = y // size, x // size
    inside_grid = (ty < cells["grid"][0]) & (tx < cells["grid"][1])
    territory = np.where(inside_grid, ty * cells["grid"][1] + tx, 0)
    dy = (y - ty * size) - cells["centre_y"][territory]
    dx = (x - tx * size) - cells["centre_x"][territory]
    angle = cells["angle"][territory]
    along = (dx * np.cos(angle) + dy * np.sin(angle)) / cells["semi_major"][territory]
    across = (-dx * np.sin(angle) + dy * np.cos(angle)) / cells["semi_minor"][territory]
    inside = inside_grid & cells["present"][territory] & (along**2 + across**2 <= 1.0)
    return np.where(inside, territory + 1, 0)


def camera_counts(
    cells: dict,
    labels: np.ndarray,
    channel: str,
    dark: np.ndarray,
    flat: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """uint16 counts of one tile of one channel: photons through the flat, dark, read noise."""
    photons = np.full(labels.shape, BACKGROUND_PHOTONS[channel], dtype=np.float64)
    inside = labels > 0
    photons[inside] += cells[channel][labels[inside] - 1]
    counts = rng.poisson(flat * photons) + dark + rng.normal(0.0, READ_NOISE_SD, labels.shape)
    return np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _field_frames(field_px: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    dark, flat = camera_frames((field_px, field_px), seed)
    chosen = [CHANNELS.index(name) for name in STITCHED_CHANNELS]
    return dark[chosen], flat[chosen]


def _tiled_frame(field: np.ndarray, shape: tuple[int, int], chunks) -> da.Array:
    """A (C, Y, X) lazy frame: the (C, field, field) frame repeated over the plane."""
    reps = (1, -(-shape[0] // field.shape[1]), -(-shape[1] // field.shape[2]))
    mosaic = da.tile(da.from_array(field, chunks=field.shape), reps)[:, : shape[0], : shape[1]]
    return mosaic.rechunk((1, *chunks))


def write_stitched(
    path: str | os.PathLike,
    shape: tuple[int, int] = (16384, 16384),
    chunks: tuple[int, int] = (2048, 2048),
    field_px: int = 2048,
    fill: float = 0.6,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write a stitched two-channel plane to OME-Zarr, tile by tile.

    The store holds the image at ``"0"`` (uint16, axes t, c, z, y, x, one chunk
    per tile and channel, channel names G and C), one camera field's dark and
    flat frames at ``"dark_field"`` and ``"flat_field"`` (float32, (C, field,
    field)), and ``attrs["nima_lessons"]`` (seed, cells, field size) written last.
    Memory use follows the tile size, whatever the plane's size.

    Parameters
    ----------
    path : path-like
        The ``.zarr`` folder to create (written under a temporary name, renamed
        when complete).
    shape : tuple of int
        Plane shape (Y, X), e.g. (50000, 50000).
    chunks : tuple of int
        Tile shape.
    field_px : int
        Side of one camera field of the mosaic.
    fill : float
        Fraction of the 48-px territories holding a cell.
    seed : int
        Random seed.
    overwrite : bool
        Replace an existing store.
    progress : bool, optional
        Show a progress bar; default :func:`nima_lessons.config.progress_enabled`.

    Returns
    -------
    pathlib.Path
        The store.

    Raises
    ------
    ValueError
        If a size is not positive or ``fill`` is not in (0, 1].
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> out = write_stitched(tempfile.mkdtemp() + "/plane.zarr", shape=(96, 128),
    ...                      chunks=(48, 64), field_px=64, progress=False)
    >>> open_stitched(out).image.shape
    (1, 2, 1, 96, 128)
    """
    shape = check_shape(shape, "shape", ndim=2)
    chunks = check_shape(chunks, "chunks", ndim=2)
    field_px = check_shape((field_px, field_px), "field_px", ndim=2)[0]
    seed = check_seed(seed)
    cells = stitched_cells(shape, fill, seed)
    dark, flat = _field_frames(field_px, seed)
    dark_plane = _tiled_frame(dark, shape, chunks)
    flat_plane = _tiled_frame(flat, shape, chunks)
    image = da.map_blocks(
        _image_tile,
        dark_plane[None, :, None],
        flat_plane[None, :, None],
        cells=cells,
        seed=seed,
        dtype=np.uint16,
        meta=np.empty((0,) * 5, dtype=np.uint16),
    )  # fmt: skip
    with atomic_path(path, overwrite=overwrite) as tmp:
        root = open_ngff_group(str(tmp))
        target = create_ngff_array(root, "0", image.shape, (1, 1, 1, *chunks))
        for name, frame in (("dark_field", dark), ("flat_field", flat)):
            root.create_array(name, shape=frame.shape, chunks=frame.shape, dtype=np.float32)[:] = (
                frame
            )
        _store(image, target, progress_enabled(progress))
        _write_metadata(root, seed, cells, field_px)
    return Path(path)


def _image_tile(dark, flat, cells, seed, block_info=None):
    """One (1, 1, 1, y, x) tile of one channel."""
    location = block_info[None]["array-location"]
    channel = location[1][0]
    rows, cols = slice(*location[3]), slice(*location[4])
    labels = render_tile(cells, rows, cols)
    tile = block_info[None]["chunk-location"]
    rng = np.random.default_rng([seed, 11, channel, tile[3], tile[4]])
    name = STITCHED_CHANNELS[channel]
    counts = camera_counts(cells, labels, name, dark[0, 0, 0], flat[0, 0, 0], rng)
    return counts[None, None, None]


def _store(image: da.Array, target, progress: bool) -> None:
    stored = da.store(image, target, lock=False, compute=False)
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            dask.compute(stored)
    else:
        dask.compute(stored)


def _write_metadata(root, seed: int, cells: dict, field_px: int) -> None:
    write_tczyx_metadata(root, "stitched", STITCHED_CHANNELS)
    # Written last: the record marks a complete store.
    root.attrs["nima_lessons"] = {
        "seed": seed,
        "n_cells": int(cells["present"].sum()),
        "field_px": field_px,
        "ratio": "G/C",
    }


def open_stitched(path: str | os.PathLike) -> StitchedPlane:
    """Open a store written by :func:`write_stitched`; nothing is read but the frames.

    Raises
    ------
    FileNotFoundError
        If ``path`` is missing or not a complete stitched store.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    root = zarr.open_group(str(path), mode="r")
    if "nima_lessons" not in root.attrs or "dark_field" not in root:
        raise FileNotFoundError(f"{path} is not a complete stitched plane (write_stitched)")
    image = da.from_zarr(root["0"])
    shape, chunks = image.shape[-2:], image.chunksize[-2:]
    coords = {"T": [0], "C": list(STITCHED_CHANNELS)}
    frames = {}
    for name in ("dark", "flat"):
        field = np.asarray(root[f"{name}_field"][:])
        frames[name] = xr.DataArray(
            _tiled_frame(field, shape, chunks), dims=("C", "Y", "X"),
            coords={"C": list(STITCHED_CHANNELS)}, name=name,
        )  # fmt: skip
    return StitchedPlane(
        image=xr.DataArray(image, dims=("T", "C", "Z", "Y", "X"), coords=coords, name="image"),
        dark=frames["dark"],
        flat=frames["flat"],
        n_cells=int(root.attrs["nima_lessons"]["n_cells"]),
    )


def ensure_stitched(
    size: str | None = None,
    root: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> Path:
    """Return the stitched plane of a size preset, writing it the first time.

    Parameters
    ----------
    size : str, optional
        Size preset (``small``: 4096^2, ``workshop``: 16,384^2, ``large``:
        50,000^2, all in 1024^2 tiles); default ``$NIMA_LESSONS_SIZE`` or
        ``"workshop"``.
    root : path-like, optional
        Data folder; default :func:`nima_lessons.config.data_dir`.
    seed : int
        Random seed.
    progress : bool, optional
        Show a progress bar while writing.

    Returns
    -------
    pathlib.Path
        ``root/<size>/stitched.zarr`` (``stitched-seed<n>.zarr`` for a seed).

    Raises
    ------
    FileExistsError
        If something else than this plane is at that path.
    """
    sizes = size_preset(size)["stitched"]
    folder = Path(root) if root is not None else data_dir()
    seed = check_seed(seed)
    path = folder / size_name(size) / (f"stitched-seed{seed}.zarr" if seed else "stitched.zarr")
    if path.exists():
        plane = open_stitched(path)
        same = (
            plane.image.shape[-2:] == tuple(sizes["shape"])
            and plane.image.data.chunksize[-2:] == tuple(sizes["chunks"])
            and zarr.open_group(str(path), mode="r").attrs["nima_lessons"]["seed"] == seed
        )
        if not same:
            raise FileExistsError(
                f"{path} holds another stitched plane than the {size_name(size)!r} preset's "
                f"{sizes['shape']} in {sizes['chunks']} tiles; remove it or choose another folder"
            )
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_stitched(
        path, tuple(sizes["shape"]), tuple(sizes["chunks"]), seed=seed, progress=progress
    )
