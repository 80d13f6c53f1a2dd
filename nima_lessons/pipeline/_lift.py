"""Lifting per-plane numpy functions onto lazy xarray images, whole or in tiles.

Every pipeline step is a plain numpy function of one plane (or of one tile); the
functions here run it on each plane of a numpy- or dask-backed DataArray without
computing anything. Planes whose Y or X is split into chunks (tiles) are processed
tile by tile: element-wise steps directly, neighbourhood steps with an overlap
(:func:`apply_overlapped`); a whole-plane step refuses tiles unless asked to merge
them (:func:`whole_planes`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import dask.array as da
import numpy as np
import numpy.typing as npt
import xarray as xr

PLANE_DIMS = ("Y", "X")


#: How :func:`apply_per_plane` treats planes split into tiles: run the function on
#: each tile (it must be element-wise), merge the tiles into whole planes, or refuse.
TileHandling = Literal["elementwise", "merge", "refuse"]
TILE_HANDLING = ("elementwise", "merge", "refuse")


def check_dims(im: xr.DataArray, name: str, required: Sequence[str] = PLANE_DIMS) -> None:
    """Raise a TypeError/ValueError unless ``im`` is a DataArray with ``required`` dims."""
    if not isinstance(im, xr.DataArray):
        raise TypeError(f"{name} must be an xarray.DataArray, got {type(im).__name__}")
    missing = [dim for dim in required if dim not in im.dims]
    if missing:
        raise ValueError(
            f"{name} must have dims {tuple(required)}; dims {missing} are missing from {im.dims}"
        )


def is_lazy(im: xr.DataArray) -> bool:
    """Whether ``im`` is backed by a dask array."""
    return im.chunks is not None


def is_tiled(im: xr.DataArray, dims: Sequence[str] = PLANE_DIMS) -> bool:
    """Whether ``im`` is dask-backed with any of ``dims`` split into several chunks.

    Examples
    --------
    >>> im = xr.DataArray(np.zeros((4, 6)), dims=("Y", "X"))
    >>> is_tiled(im), is_tiled(im.chunk({"X": 3})), is_tiled(im.chunk({"X": 6}))
    (False, True, False)
    """
    if not is_lazy(im):
        return False
    return any(len(im.chunksizes[dim]) > 1 for dim in dims if dim in im.dims)


def whole_planes(im: xr.DataArray, core_dims: Sequence[str] = PLANE_DIMS) -> xr.DataArray:
    """Return ``im`` with each of ``core_dims`` in a single chunk.

    The explicit way to give a whole-plane step whole planes: each plane then
    has to fit in memory. Numpy-backed images are returned unchanged.

    Examples
    --------
    >>> im = xr.DataArray(np.zeros((4, 6)), dims=("Y", "X")).chunk(2)
    >>> whole_planes(im).chunks
    ((4,), (6,))
    """
    if not is_lazy(im):
        return im
    split = [dim for dim in core_dims if len(im.chunksizes[dim]) > 1]
    return im.chunk({dim: -1 for dim in split}) if split else im


def refuse_tiles(im: xr.DataArray, step: str, reason: str) -> None:
    """Raise a ValueError naming ``step`` if ``im`` has planes split into tiles.

    Parameters
    ----------
    im : xarray.DataArray
        The image the step would process.
    step : str
        What is refused, e.g. ``"background method 'xyz'"``.
    reason : str
        Why it cannot run tile by tile.

    Raises
    ------
    ValueError
        If Y or X of ``im`` is split into several chunks.
    """
    if is_tiled(im):
        chunks = {dim: im.chunksizes[dim] for dim in PLANE_DIMS if dim in im.dims}
        raise ValueError(
            f"{step} cannot run on planes split into tiles (chunks {_short(chunks)}): "
            f"{reason}. Merge the tiles first with whole_planes(im) (each plane must "
            "then fit in memory) or choose a method offered on tiles"
        )


def _short(chunks: Mapping[str, tuple[int, ...]]) -> str:
    parts = []
    for dim, sizes in chunks.items():
        shown = sizes if len(sizes) <= 4 else (*sizes[:3], "...")
        parts.append(f"{dim}: {len(sizes)} chunks {shown}")
    return "; ".join(parts)


def apply_overlapped(
    func: Callable[..., npt.ArrayLike],
    im: xr.DataArray,
    depth: int,
    kwargs: dict[str, Any] | None = None,
    output_dtype: npt.DTypeLike | None = None,
    keep_attrs: bool = True,
) -> xr.DataArray:
    """Run ``func(tile, **kwargs)`` on overlapping tiles of every plane, lazily.

    Each tile is extended by ``depth`` pixels of its neighbours in Y and X
    (``dask.array.map_overlap`` with ``boundary="none"``): at the image border
    nothing is added, so ``func`` treats the border with its own rules exactly
    as it does on a whole plane. Output pixels of a tile are exact whenever
    they depend only on input pixels within ``depth`` of them.

    Parameters
    ----------
    func : callable
        Numpy function of a 2-D array returning an array of the same shape.
    im : xarray.DataArray
        Dask-backed image with dims including ("Y", "X").
    depth : int
        Overlap in pixels, at least 0.
    kwargs : dict, optional
        Keyword arguments of ``func``.
    output_dtype : dtype, optional
        Default the dtype of ``im``.
    keep_attrs : bool
        Copy the attributes of ``im``.

    Returns
    -------
    xarray.DataArray
        Same dims, coordinates and chunks as ``im``.
    """
    check_dims(im, "im")
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise ValueError(f"depth must be an integer >= 0 pixels, got {depth!r}")
    dtype = np.dtype(output_dtype) if output_dtype is not None else im.dtype
    # Y and X last, so that the function sees (Y, X) planes.
    ordered = im.transpose(*[d for d in im.dims if d not in PLANE_DIMS], *PLANE_DIMS)
    result = overlap_planes(func, ordered.data, int(depth), dtype, **(kwargs or {}))
    out = xr.DataArray(
        result,
        dims=ordered.dims,
        coords=ordered.coords,
        attrs=dict(im.attrs) if keep_attrs else {},
        name=im.name,
    )
    return out.transpose(*im.dims)


def overlap_planes(
    func: Callable[..., npt.ArrayLike],
    data: da.Array,
    depth: int,
    dtype: npt.DTypeLike,
    **kwargs: Any,
) -> da.Array:
    """``func(plane, **kwargs)`` on every (Y, X) plane of ``data``, in tiles grown by ``depth``.

    The dask layer of :func:`apply_overlapped`: ``data`` has Y and X as its
    last two axes; the result has the chunks of ``data``.
    """
    out_dtype = np.dtype(dtype)
    looped = _loop_planes(func, len(PLANE_DIMS), kwargs)
    axes = {axis: (depth if axis >= data.ndim - 2 else 0) for axis in range(data.ndim)}
    result = da.map_overlap(
        looped, data, depth=axes, boundary="none", dtype=out_dtype,
        meta=np.empty((0,) * data.ndim, dtype=out_dtype),
    )  # fmt: skip
    # map_overlap merges chunks thinner than the depth; give back the input's.
    return result if result.chunks == data.chunks else result.rechunk(data.chunks)


def _loop_planes(
    func: Callable[..., npt.ArrayLike], n_core: int, kwargs: dict[str, Any]
) -> Callable[..., np.ndarray]:
    # apply_ufunc hands over blocks (..., *core); call ``func`` on every
    # core-shaped slab and stack the answers back.
    def looped(*blocks: np.ndarray) -> np.ndarray:
        lead = np.broadcast_shapes(*(a.shape[: a.ndim - n_core] for a in blocks))
        arrays = [np.broadcast_to(a, lead + a.shape[a.ndim - n_core :]) for a in blocks]
        indices = list(np.ndindex(*lead))
        if not indices:
            raise ValueError("cannot apply a per-plane function to an empty image")
        first = np.asarray(func(*(a[indices[0]] for a in arrays), **kwargs))
        if len(indices) == 1:
            # The usual case, one plane per chunk: no copy of the answer.
            return first.reshape(lead + first.shape)
        out = np.empty(lead + first.shape, dtype=first.dtype)
        out[indices[0]] = first
        for index in indices[1:]:
            out[index] = func(*(a[index] for a in arrays), **kwargs)
        return out

    return looped


def _block_lifter(
    looped: Callable[..., np.ndarray], n_core: int, keep_core: bool, dtype: np.dtype
) -> Callable[..., np.ndarray | da.Array]:
    """Wrap ``looped`` so that dask inputs are mapped block by block, without copies.

    The inputs arrive from ``apply_ufunc(dask="allowed")`` with the core dims
    last and length-1 axes for broadcast dims; every core dim is one chunk, or
    the function is element-wise and map_blocks aligns the inputs' tiles.
    """

    def lifted(*arrays: np.ndarray | da.Array) -> np.ndarray | da.Array:
        if not any(isinstance(array, da.Array) for array in arrays):
            return looped(*arrays)
        ndim = max(array.ndim for array in arrays)
        lead = ndim - n_core
        # A numpy input becomes one chunk; map_blocks splits it to match.
        blocks = [
            array if isinstance(array, da.Array) else da.from_array(array, chunks=-1)
            for array in arrays
        ]
        drop = [] if keep_core else list(range(lead, ndim))
        return da.map_blocks(
            looped,
            *blocks,
            dtype=dtype,
            drop_axis=drop,
            meta=np.empty((0,) * (ndim - len(drop)), dtype=dtype),
        )

    return lifted


def apply_per_plane(
    func: Callable[..., npt.ArrayLike],
    im: xr.DataArray,
    *others: xr.DataArray,
    kwargs: dict[str, Any] | None = None,
    core_dims: Sequence[str] = PLANE_DIMS,
    output_core_dims: Sequence[str] | None = None,
    output_dtype: npt.DTypeLike | None = None,
    name: str = "image",
    keep_attrs: bool = True,
    tiles: TileHandling = "refuse",
) -> xr.DataArray:
    """Run ``func(plane, *other_planes, **kwargs)`` on every plane, lazily.

    Parameters
    ----------
    func : callable
        Numpy function of arrays shaped like ``core_dims``.
    im, *others : xarray.DataArray
        Images holding ``core_dims``; the other dims broadcast by name (a
        (C, Y, X) dark frame is reused for every T and Z).
    kwargs : dict, optional
        Keyword arguments of ``func``.
    core_dims : sequence of str
        Dims ``func`` sees whole, merged into single chunks if needed.
    output_core_dims : sequence of str, optional
        Dims of ``func``'s output; default ``core_dims`` (same shape).
        ``()`` for a scalar per plane.
    output_dtype : dtype, optional
        Output dtype; default the dtype of ``im``.
    name : str
        Argument name used in error messages.
    keep_attrs : bool
        Copy the attributes of ``im`` (units...) to the result; off for
        results of another kind (labels, levels).
    tiles : {"refuse", "elementwise", "merge"}
        What to do when Y or X of an input is split into chunks (tiles):
        ``"elementwise"`` runs ``func`` on each tile (only right for
        element-wise functions, whose output has the input's shape);
        ``"merge"`` merges the tiles into whole planes first (each plane must
        fit in memory); ``"refuse"`` raises a ValueError.

    Returns
    -------
    xarray.DataArray
        Lazy when any input is dask-backed; nothing is computed here.

    Raises
    ------
    ValueError
        If an input lacks a core dim, or has tiled planes and ``tiles`` is
        ``"refuse"``.
    """
    if tiles not in TILE_HANDLING:
        raise ValueError(f"tiles must be one of {TILE_HANDLING}, got {tiles!r}")
    core_dims = list(core_dims)
    out_core = core_dims if output_core_dims is None else list(output_core_dims)
    if tiles == "elementwise" and out_core != core_dims:
        raise ValueError("tiles='elementwise' needs an output with the input's core dims")
    split = [array for array in (im, *others) if is_tiled(array, core_dims)]
    if split and tiles == "refuse":
        refuse_tiles(
            split[0],
            f"the per-plane step {getattr(func, '__name__', func)!r}",
            "it needs each plane whole",
        )
    arrays = []
    for index, array in enumerate((im, *others)):
        check_dims(array, name if index == 0 else f"{name} argument {index}", core_dims)
        arrays.append(array if tiles == "elementwise" else whole_planes(array, core_dims))
    looped = _loop_planes(func, len(core_dims), kwargs or {})
    dtype = np.dtype(output_dtype) if output_dtype is not None else im.dtype
    sizes = {dim: im.sizes[dim] for dim in out_core if dim in im.sizes}
    if out_core in (core_dims, []):
        # Whole planes in, a plane or a scalar out: lift block by block with
        # map_blocks. apply_ufunc(dask="parallelized") would glue each block's
        # core dims together first, which copies every input block once more.
        result = xr.apply_ufunc(
            _block_lifter(looped, len(core_dims), keep_core=bool(out_core), dtype=dtype),
            *arrays,
            input_core_dims=[core_dims] * len(arrays),
            output_core_dims=[out_core],
            dask="allowed",
            keep_attrs=keep_attrs,
        )
    else:
        result = xr.apply_ufunc(
            looped,
            *arrays,
            input_core_dims=[core_dims] * len(arrays),
            output_core_dims=[out_core],
            dask="parallelized",
            output_dtypes=[dtype],
            dask_gufunc_kwargs={"output_sizes": sizes} if sizes else {},
            keep_attrs=keep_attrs,
        )
    # apply_ufunc moves the core dims last; give back the input's order.
    if set(result.dims) == set(im.dims):
        result = result.transpose(*im.dims)
    return result
