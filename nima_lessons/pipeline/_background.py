"""Per-plane background estimation and subtraction.

Each (T, C, Z) plane gets its own background level, estimated from its pixels
when the plane is computed; the levels are returned as a lazy DataArray too.
"""

from __future__ import annotations

import numpy as np
import skimage.filters
import xarray as xr

from nima_lessons.pipeline._lift import apply_per_plane, check_dims

BACKGROUND_METHODS = ("li", "percentile", "sigma")


def _finite(plane: np.ndarray) -> np.ndarray:
    values = np.asarray(plane, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def percentile_level(plane: np.ndarray, percentile: float = 10.0) -> float:
    """Background as a low percentile of the plane's pixels (robust to cells)."""
    values = _finite(plane)
    return float(np.percentile(values, percentile)) if values.size else 0.0


def sigma_level(plane: np.ndarray, n_sigma: float = 2.0, max_iter: int = 20) -> float:
    """Background by iterative sigma clipping.

    Pixels further than ``n_sigma`` standard deviations above the median of the
    kept pixels (cells are bright) are dropped until nothing changes; the level
    is the median of the pixels left.
    """
    values = _finite(plane)
    if values.size == 0:
        return 0.0
    kept = values
    for _ in range(max_iter):
        centre = np.median(kept)
        spread = kept.std()
        selected = values[np.abs(values - centre) <= n_sigma * spread]
        if selected.size == 0 or selected.size == kept.size:
            break
        kept = selected
    return float(np.median(kept))


def li_level(plane: np.ndarray) -> float:
    """Background as the median of the pixels below the plane's Li threshold.

    A constant plane has no threshold; its level is its value.
    """
    values = _finite(plane)
    if values.size == 0:
        return 0.0
    if values.min() == values.max():
        return float(values[0])
    threshold = skimage.filters.threshold_li(values)
    below = values[values < threshold]
    return float(np.median(below if below.size else values))


_LEVELS = {"li": li_level, "percentile": percentile_level, "sigma": sigma_level}


def background_level(plane: np.ndarray, method: str = "li", **options) -> np.ndarray:
    """Return the background level of one plane as a 0-d float64 array.

    Parameters
    ----------
    plane : numpy.ndarray
        2-D image.
    method : {"li", "percentile", "sigma"}
        See :func:`li_level`, :func:`percentile_level`, :func:`sigma_level`.
    **options
        Passed to the method (``percentile=``, ``n_sigma=``, ``max_iter=``).

    Examples
    --------
    >>> plane = np.zeros((10, 10)); plane[:3, :3] = 100
    >>> float(background_level(plane, "percentile", percentile=50))
    0.0
    """
    return np.asarray(_LEVELS[method](plane, **options), dtype=np.float64)


def background(
    im: xr.DataArray, method: str = "li", **options
) -> tuple[xr.DataArray, xr.DataArray]:
    """Subtract a per-plane background level, clipping at 0, lazily.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims including ("Y", "X").
    method : {"li", "percentile", "sigma"}
        How the level of each plane is estimated: the median of the pixels
        below the Li threshold, a low percentile (``percentile=10``), or
        iterative sigma clipping (``n_sigma=2``).
    **options
        Method options, see :func:`background_level`.

    Returns
    -------
    subtracted : xarray.DataArray
        Float image (at least float32), same dims, background removed.
    levels : xarray.DataArray
        float64 level of every plane, dims of ``im`` without Y and X (for
        a (T, C, Z, Y, X) image: (T, C, Z)).

    Raises
    ------
    ValueError
        If ``method`` or an option is unknown.

    Examples
    --------
    >>> im = xr.DataArray(np.full((2, 4, 4), 7.0), dims=("T", "Y", "X"))
    >>> subtracted, levels = background(im, "percentile")
    >>> levels.values.tolist(), float(subtracted.max())
    ([7.0, 7.0], 0.0)
    """
    check_dims(im, "im")
    if method not in _LEVELS:
        raise ValueError(f"method must be one of {BACKGROUND_METHODS}, got {method!r}")
    allowed = {"li": set(), "percentile": {"percentile"}, "sigma": {"n_sigma", "max_iter"}}
    unknown = set(options) - allowed[method]
    if unknown:
        raise ValueError(
            f"unknown options {sorted(unknown)} for method {method!r}; "
            f"it accepts {sorted(allowed[method]) or 'none'}"
        )
    from nima_lessons.pipeline._lift import is_tiled
    from nima_lessons.pipeline._tiled_levels import tiled_background

    if is_tiled(im):  # planes split into tiles: exact tile-wise version

        return tiled_background(im, method, **options)
    levels = apply_per_plane(
        background_level,
        im,
        kwargs={"method": method, **options},
        output_core_dims=(),
        output_dtype=np.float64,
        name="im",
        keep_attrs=False,
    ).rename("background")
    dtype = np.result_type(im.dtype, np.float32)
    # Elementwise, so plain (lazy) xarray arithmetic; each plane task shares
    # its level task with the ``levels`` output.
    subtracted = (im.astype(dtype) - levels.astype(dtype)).clip(min=0)
    return subtracted.transpose(*im.dims).rename("image"), levels
