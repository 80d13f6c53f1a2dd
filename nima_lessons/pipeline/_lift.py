"""Lifting per-plane numpy functions onto lazy (Y, X)-chunked xarray images.

Every pipeline step is a plain numpy function of one plane; the functions here run
it on each plane of a numpy- or dask-backed DataArray without computing anything.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import dask.array as da
import numpy as np
import xarray as xr

PLANE_DIMS = ("Y", "X")


class PlaneRechunkWarning(UserWarning):
    """Y or X was split into chunks and has been merged into whole planes."""


def check_dims(im: xr.DataArray, name: str, required: Sequence[str] = PLANE_DIMS) -> None:
    """Raise a TypeError/ValueError unless ``im`` is a DataArray with ``required`` dims."""
    if not isinstance(im, xr.DataArray):
        raise TypeError(f"{name} must be an xarray.DataArray, got {type(im).__name__}")
    missing = [dim for dim in required if dim not in im.dims]
    if missing:
        raise ValueError(
            f"{name} must have dims {tuple(required)}; dims {missing} are missing "
            f"from {im.dims}"
        )


def is_lazy(im: xr.DataArray) -> bool:
    """Whether ``im`` is backed by a dask array."""
    return im.chunks is not None


def whole_planes(im: xr.DataArray, core_dims: Sequence[str] = PLANE_DIMS) -> xr.DataArray:
    """Return ``im`` with each of ``core_dims`` in a single chunk.

    A dask image whose Y or X is split into tiles would be filtered tile by
    tile, leaving artefacts at tile borders; it is merged into whole planes
    instead, with a :class:`PlaneRechunkWarning`. Numpy-backed images are
    returned unchanged.
    """
    if not is_lazy(im):
        return im
    split = [dim for dim in core_dims if len(im.chunksizes[dim]) > 1]
    if not split:
        return im
    warnings.warn(
        f"dims {split} are split into chunks {[im.chunksizes[d] for d in split]}; "
        "merging them into whole planes so that per-plane steps see no tile borders",
        PlaneRechunkWarning,
        stacklevel=3,
    )
    return im.chunk({dim: -1 for dim in split})


def _loop_planes(func: Callable, n_core: int, kwargs: dict):
    # apply_ufunc hands over blocks (..., *core); call ``func`` on every
    # core-shaped slab and stack the answers back.
    def looped(*arrays):
        lead = np.broadcast_shapes(*(a.shape[: a.ndim - n_core] for a in arrays))
        arrays = [np.broadcast_to(a, lead + a.shape[a.ndim - n_core :]) for a in arrays]
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


def _block_lifter(looped: Callable, n_core: int, keep_core: bool, dtype) -> Callable:
    """Wrap ``looped`` so that dask inputs are mapped block by block, without copies.

    The inputs arrive from ``apply_ufunc(dask="allowed")`` with the core dims
    last and length-1 axes for broadcast dims; every core dim is one chunk.
    """

    def lifted(*arrays):
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
    func: Callable,
    im: xr.DataArray,
    *others: xr.DataArray,
    kwargs: dict | None = None,
    core_dims: Sequence[str] = PLANE_DIMS,
    output_core_dims: Sequence[str] | None = None,
    output_dtype=None,
    name: str = "image",
    keep_attrs: bool = True,
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

    Returns
    -------
    xarray.DataArray
        Lazy when any input is dask-backed; nothing is computed here.
    """
    core_dims = list(core_dims)
    out_core = core_dims if output_core_dims is None else list(output_core_dims)
    arrays = []
    for index, array in enumerate((im, *others)):
        check_dims(array, name if index == 0 else f"{name} argument {index}", core_dims)
        arrays.append(whole_planes(array, core_dims))
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
