"""Flat-field (shading) correction: subtract the dark frame, divide by the flat.

Dark and flat frames become dask arrays with one chunk per channel, so each is a
single graph key however many planes use it.

Why a compiled kernel: the numpy expression (subtract into a float copy,
divide where the flat is positive, zero the rest, clip at 0) makes four passes
over memory for work that is memory-bound; the numba kernel makes one, with
the same float operations in the same order, so its result is bit-identical.
"""

from __future__ import annotations

import dask.array as da
import numba
import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from nima_lessons.pipeline._lift import apply_per_plane, check_dims, is_lazy, is_tiled

__all__ = ["as_constant", "shading", "shading_plane"]


def shading_plane(plane: np.ndarray, dark: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Return ``(plane - dark) / flat`` clipped at 0, in float.

    Pixels where ``flat`` is not positive give 0 rather than inf or NaN; NaN
    pixels stay NaN. The arithmetic is numpy's, in the float type
    ``np.result_type(plane, dark, flat, float32)``; for float32 and float64
    results with 2-D frames of one shape it runs as a single compiled pass over
    memory, bit-identical to the numpy expression.

    Parameters
    ----------
    plane, dark, flat : numpy.ndarray
        Image plane, dark frame and flat field, broadcastable to one shape.

    Returns
    -------
    numpy.ndarray
        Corrected plane in the float type above.

    Examples
    --------
    >>> shading_plane(np.array([[10, 3]]), np.array([[2, 5]]), np.array([[2.0, 1.0]]))
    array([[4., 0.]])
    """
    dtype = np.result_type(plane.dtype, dark.dtype, flat.dtype, np.float32)
    if (
        dtype in _KERNEL_DTYPES
        and plane.ndim == 2
        and plane.shape == dark.shape == flat.shape
        and all(_kernel_reads(frame.dtype) for frame in (plane, dark, flat))
    ):
        out = np.empty(plane.shape, dtype=dtype)
        _shading_kernel(plane, dark, flat, out)
        return out
    return _shading_numpy(plane, dark, flat, dtype)


def _shading_numpy(
    plane: np.ndarray, dark: np.ndarray, flat: np.ndarray, dtype: np.dtype
) -> np.ndarray:
    """The numpy expression the kernel replaces (and the path for other shapes)."""
    corrected = np.subtract(plane, dark, dtype=dtype)
    # Overflow to inf and inf / inf = NaN are the IEEE results the kernel gives silently.
    with np.errstate(over="ignore", invalid="ignore"):
        np.divide(corrected, flat, out=corrected, where=flat > 0)
    corrected[~(flat > 0)] = 0
    return np.maximum(corrected, 0, out=corrected)


_KERNEL_DTYPES = frozenset({np.dtype("float32"), np.dtype("float64")})


def _kernel_reads(dtype: np.dtype) -> bool:
    # numba has no float16 arrays; bool, integers and other floats it reads.
    return dtype.kind in "biuf" and dtype != np.float16


@numba.njit(cache=True, nogil=True)
def _shading_kernel(plane, dark, flat, out):  # pragma: no cover - compiled
    """Fill ``out`` with the shading of ``plane``, computing in ``out``'s float type.

    numba compiles one version per combination of input types; each converts
    every operand to the output type first, as ``np.subtract(..., dtype=)``
    and the in-place divide of the numpy expression do.
    """
    to_float = out.dtype.type
    zero = to_float(0)
    for i in range(plane.shape[0]):
        for j in range(plane.shape[1]):
            scale = to_float(flat[i, j])
            if scale > zero:
                value = (to_float(plane[i, j]) - to_float(dark[i, j])) / scale
                # NaN fails ``value <= 0`` and is kept, as np.maximum(value, 0)
                # keeps it; -0.0 becomes +0.0, as numpy's maximum returns it.
                out[i, j] = zero if value <= zero else value
            else:
                out[i, j] = zero


def as_constant(frame: ArrayLike | xr.DataArray, im: xr.DataArray, name: str) -> xr.DataArray:
    """Turn a dark or flat frame into a (C, Y, X) or (Y, X) DataArray matching ``im``.

    Parameters
    ----------
    frame : array-like or xarray.DataArray
        (Y, X) frame shared by all channels, or (C, Y, X) with one frame per
        channel (a DataArray with a C coordinate is aligned to ``im`` by
        channel name).
    im : xarray.DataArray
        The image it corrects.
    name : str
        ``"dark"`` or ``"flat"``, for error messages.

    Returns
    -------
    xarray.DataArray
        Dask-backed with one chunk per channel and the Y, X chunks of ``im``
        when ``im`` is lazy.

    Raises
    ------
    ValueError
        If the shape does not match ``im``'s Y, X (and C), or channel names
        of ``im`` are missing from ``frame``.
    """
    if not isinstance(frame, xr.DataArray):
        array = np.asarray(frame)
        dims = {2: ("Y", "X"), 3: ("C", "Y", "X")}.get(array.ndim)
        if dims is None:
            raise ValueError(f"{name} must be 2-D (Y, X) or 3-D (C, Y, X), got shape {array.shape}")
        frame = xr.DataArray(array, dims=dims)
    check_dims(frame, name)
    extra = set(frame.dims) - {"C", "Y", "X"}
    if extra:
        raise ValueError(f"{name} may only have dims (C, Y, X), got {frame.dims}")
    for dim in ("Y", "X"):
        if frame.sizes[dim] != im.sizes[dim]:
            raise ValueError(
                f"{name} has {dim} size {frame.sizes[dim]} but the image has {im.sizes[dim]}"
            )
    if "C" in frame.dims:
        frame = _align_channels(frame, im, name)
    frame = frame.transpose(*[d for d in ("C", "Y", "X") if d in frame.dims])
    if is_lazy(im):
        # One chunk per channel, and the image's tiles in Y and X (whole planes
        # for an image chunked by plane).
        frame = frame.chunk({dim: (1 if dim == "C" else im.chunksizes[dim]) for dim in frame.dims})
    return frame


def uniform_frame(im: xr.DataArray, value: float) -> xr.DataArray | np.ndarray:
    """A float32 (Y, X) frame of one value for ``im``: lazy, in its tiles, if ``im`` is tiled.

    A stitched plane can be far larger than memory; its default dark (0) or
    flat (1) frame must not be.

    Examples
    --------
    >>> im = xr.DataArray(np.zeros((1, 4, 6)), dims=("C", "Y", "X"))
    >>> uniform_frame(im, 1.0).shape
    (4, 6)
    """
    if not is_tiled(im):
        return np.full((im.sizes["Y"], im.sizes["X"]), value, np.float32)
    shape = (im.sizes["Y"], im.sizes["X"])
    chunks = (im.chunksizes["Y"], im.chunksizes["X"])
    return xr.DataArray(da.full(shape, value, dtype=np.float32, chunks=chunks), dims=("Y", "X"))


def _align_channels(frame: xr.DataArray, im: xr.DataArray, name: str) -> xr.DataArray:
    if "C" not in im.dims:
        raise ValueError(f"{name} has a C dim but the image has none")
    if "C" in frame.coords and "C" in im.coords:
        wanted = im.coords["C"].values.tolist()
        available = frame.coords["C"].values.tolist()
        missing = [c for c in wanted if c not in available]
        if missing:
            raise ValueError(f"{name} has no frame for channels {missing}; it has {available}")
        return frame.sel(C=wanted)
    if frame.sizes["C"] != im.sizes["C"]:
        raise ValueError(
            f"{name} has {frame.sizes['C']} channels but the image has {im.sizes['C']}"
        )
    if "C" in im.coords:
        frame = frame.assign_coords(C=im.coords["C"].values)
    return frame


def shading(
    im: xr.DataArray, dark: ArrayLike | xr.DataArray, flat: ArrayLike | xr.DataArray
) -> xr.DataArray:
    """Correct uneven illumination: ``(im - dark) / flat``, clipped at 0.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims including ("Y", "X"), usually (T, C, Z, Y, X).
    dark, flat : array-like or xarray.DataArray
        Dark-current frame and flat field (mean about 1), (Y, X) for all
        channels or (C, Y, X) per channel; see ``as_constant``.

    Returns
    -------
    xarray.DataArray
        Float image (float32 for integer images and float32 frames, float64
        otherwise), same dims and coordinates, lazy if ``im`` is.

    Examples
    --------
    >>> im = xr.DataArray(np.full((1, 2, 1, 2, 2), 12, np.uint16), dims=("T", "C", "Z", "Y", "X"))
    >>> out = shading(im, dark=np.full((2, 2), 2.0), flat=np.full((2, 2, 2), 2.0))
    >>> float(out.max())
    5.0
    """
    check_dims(im, "im")
    dark = as_constant(dark, im, "dark")
    flat = as_constant(flat, im, "flat")
    dtype = np.result_type(im.dtype, dark.dtype, flat.dtype, np.float32)
    result = apply_per_plane(
        shading_plane, im, dark, flat, output_dtype=dtype, name="im", tiles="elementwise"
    )
    return result.transpose(*im.dims).rename("image")
