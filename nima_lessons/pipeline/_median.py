"""Exact median filtering of image planes: a fast numba kernel and its lazy lift.

The radius-1 disk (5-point cross) and the 3x3 square use sorting networks
compiled with numba; every other footprint uses ``scipy.ndimage.median_filter``.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.ndimage as ndi
import xarray as xr

from nima_lessons.pipeline._lift import apply_overlapped, apply_per_plane, is_tiled

FOOTPRINTS = ("disk", "square")

# Integer and float types the compiled kernels handle; anything else (bool,
# float16, complex, object) goes through scipy.
_KERNEL_DTYPES = frozenset(
    np.dtype(name)
    for name in (
        "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64",
        "float32", "float64",
    )
)


def make_footprint(footprint: str = "disk", radius: int = 1) -> np.ndarray:
    """Return the boolean footprint of a median filter.

    Parameters
    ----------
    footprint : {"disk", "square"}
        ``"disk"``: pixels whose distance to the centre is at most ``radius``
        (as ``skimage.morphology.disk``); ``"square"``: a (2r+1) x (2r+1) square.
    radius : int
        Radius in pixels, at least 0.

    Returns
    -------
    numpy.ndarray
        Boolean array of shape (2r+1, 2r+1).

    Raises
    ------
    ValueError
        If ``footprint`` is unknown or ``radius`` is negative or not an integer.

    Examples
    --------
    >>> make_footprint("disk", 1).astype(int)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]])
    """
    if footprint not in FOOTPRINTS:
        raise ValueError(f"footprint must be one of {FOOTPRINTS}, got {footprint!r}")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be an integer >= 0, got {radius!r}")
    offsets = np.arange(-radius, radius + 1)
    if footprint == "square":
        return np.ones((offsets.size, offsets.size), dtype=bool)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


@numba.njit
def _sort2(a, b):
    # ``a if a < b else b`` compiles to a branch-free select that vectorises.
    return (a if a < b else b), (b if a < b else a)


@numba.njit
def _median3(a, b, c):
    lo, hi = _sort2(a, b)
    mid = hi if hi < c else c
    return lo if lo > mid else mid


@numba.njit
def _median5(up, left, centre, right, down):
    # The pairwise minima's larger element and the pairwise maxima's smaller
    # element are the 2nd and 3rd of the four; the median of five is the
    # median of those two and the fifth value.
    lo1, hi1 = _sort2(up, down)
    lo2, hi2 = _sort2(left, right)
    second = lo1 if lo1 > lo2 else lo2
    third = hi1 if hi1 < hi2 else hi2
    return _median3(centre, second, third)


@numba.njit
def _row_has_nan(row):
    # Integers never differ from themselves; the check compiles away for them.
    found = False
    for value in row:
        found |= value != value
    return found


@numba.njit(cache=True, nogil=True)
def _cross_median(plane, out):
    """Fill ``out`` with the 5-point-cross median of ``plane``; return whether it holds NaN."""
    n_rows, n_cols = plane.shape
    has_nan = False
    for i in range(n_rows):
        # With radius 1, mode="reflect" repeats the edge pixel: a clamped index.
        above = plane[i - 1] if i > 0 else plane[0]
        below = plane[i + 1] if i < n_rows - 1 else plane[n_rows - 1]
        row = plane[i]
        # Checked row by row while the row is in cache: no second pass over memory.
        has_nan |= _row_has_nan(row)
        result = out[i]
        if n_cols == 1:
            result[0] = _median5(above[0], row[0], row[0], row[0], below[0])
            continue
        result[0] = _median5(above[0], row[0], row[0], row[1], below[0])
        for j in range(1, n_cols - 1):
            result[j] = _median5(above[j], row[j - 1], row[j], row[j + 1], below[j])
        last = n_cols - 1
        result[last] = _median5(above[last], row[last - 1], row[last], row[last], below[last])
    return has_nan


@numba.njit(cache=True, nogil=True)
def _square_median(plane, out):
    """Fill ``out`` with the 3x3 median of ``plane``; return whether it holds NaN."""
    # Sort each column triple once per row (low, middle, high); the median of
    # nine is then med3(max of lows, med3 of middles, min of highs).
    n_rows, n_cols = plane.shape
    has_nan = False
    low = np.empty(n_cols, plane.dtype)
    mid = np.empty(n_cols, plane.dtype)
    high = np.empty(n_cols, plane.dtype)
    for i in range(n_rows):
        above = plane[i - 1] if i > 0 else plane[0]
        below = plane[i + 1] if i < n_rows - 1 else plane[n_rows - 1]
        row = plane[i]
        has_nan |= _row_has_nan(row)
        for j in range(n_cols):
            a, b = _sort2(above[j], row[j])
            b, c = _sort2(b, below[j])
            a, b = _sort2(a, b)
            low[j] = a
            mid[j] = b
            high[j] = c
        result = out[i]
        # Interior columns without index clamping, so that the loop vectorises.
        for j in range(1, n_cols - 1):
            result[j] = _median9(low, mid, high, j - 1, j, j + 1)
        result[0] = _median9(low, mid, high, 0, 0, min(1, n_cols - 1))
        if n_cols > 1:
            last = n_cols - 1
            result[last] = _median9(low, mid, high, last - 1, last, last)
    return has_nan


@numba.njit
def _median9(low, mid, high, left, centre, right):
    max_low = max(max(low[left], low[centre]), low[right])
    min_high = min(min(high[left], high[centre]), high[right])
    mid_mid = _median3(mid[left], mid[centre], mid[right])
    return _median3(max_low, mid_mid, min_high)


# Dtypes scipy cannot filter but a kernel type holds exactly: a median only
# picks one of the values, so converting there and back changes nothing.
_WIDENED = {np.dtype("float16"): np.dtype("float32"), np.dtype("bool"): np.dtype("uint8")}


def _uses_kernel(plane: np.ndarray, radius: int) -> bool:
    return radius == 1 and plane.ndim == 2 and plane.dtype in _KERNEL_DTYPES


def median_plane(plane: np.ndarray, footprint: str = "disk", radius: int = 1) -> np.ndarray:
    """Median-filter one 2-D plane, identical to ``scipy.ndimage.median_filter``.

    The radius-1 disk and the 3x3 square run a compiled sorting network
    (many times faster than scipy and releasing the GIL, so threads filter
    planes in parallel); other footprints, dtypes without a kernel (complex,
    object) and float planes containing NaN are passed to
    ``scipy.ndimage.median_filter(plane, footprint=..., mode="reflect")``.
    bool and float16 planes, which scipy's radius-1 path does not take, are
    filtered as uint8 and float32 (exact: a median picks one of the values).

    Parameters
    ----------
    plane : numpy.ndarray
        2-D image (any shape, including 1 x N).
    footprint : {"disk", "square"}
        Neighbourhood shape, see :func:`make_footprint`.
    radius : int
        Neighbourhood radius in pixels; 0 returns a copy.

    Returns
    -------
    numpy.ndarray
        Filtered plane, same shape and dtype; borders follow scipy's
        ``mode="reflect"`` (the edge pixel is repeated).

    Notes
    -----
    The output holds the same values as scipy's; the only possible difference
    is the sign of a zero, where both -0.0 and 0.0 occur in a neighbourhood.

    Examples
    --------
    >>> plane = np.array([[1, 9, 2], [8, 3, 7], [4, 6, 5]], dtype=np.uint8)
    >>> median_plane(plane, "disk", 1)
    array([[1, 3, 2],
           [4, 7, 5],
           [4, 5, 5]], dtype=uint8)
    """
    shape = make_footprint(footprint, radius)
    plane = np.asarray(plane)
    if plane.ndim != 2:
        raise ValueError(f"plane must be 2-D (Y, X), got shape {plane.shape}")
    if plane.dtype in _WIDENED:
        widened = median_plane(plane.astype(_WIDENED[plane.dtype]), footprint, radius)
        return widened.astype(plane.dtype)
    if not _uses_kernel(plane, radius):
        return ndi.median_filter(plane, footprint=shape, mode="reflect")
    source = np.ascontiguousarray(plane)
    out = np.empty_like(source)
    kernel = _cross_median if footprint == "disk" else _square_median
    if kernel(source, out):
        # Sorting networks and scipy order NaN differently; scipy decides then.
        return ndi.median_filter(plane, footprint=shape, mode="reflect")
    return out


def median(im: xr.DataArray, footprint: str = "disk", radius: int = 1) -> xr.DataArray:
    """Median-filter every (Y, X) plane of an image, lazily.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims including ("Y", "X"), numpy- or dask-backed. Planes
        split into tiles (Y or X in several chunks) are filtered tile by tile
        with an overlap of ``radius`` pixels and give the same result as whole
        planes: no tile border shows.
    footprint : {"disk", "square"}
        Neighbourhood shape (nima uses a radius-1 disk).
    radius : int
        Neighbourhood radius in pixels.

    Returns
    -------
    xarray.DataArray
        Same dims, coordinates and dtype; dask-backed if ``im`` is.

    Examples
    --------
    >>> im = xr.DataArray(np.eye(4, dtype=np.uint8)[None], dims=("T", "Y", "X"))
    >>> int(median(im).sum())  # only the corners survive: they see themselves twice
    2
    """
    make_footprint(footprint, radius)
    if is_tiled(im):
        # Each output pixel sees only pixels within ``radius``: overlapping tiles are exact.
        return apply_overlapped(
            median_plane, im, int(radius), kwargs={"footprint": footprint, "radius": radius}
        )
    return apply_per_plane(
        median_plane, im, kwargs={"footprint": footprint, "radius": radius}, name="median"
    )
