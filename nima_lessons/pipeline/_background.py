"""Per-plane background estimation and subtraction: this project's estimators and nima's.

Each (T, C, Z) plane gets its own background level, estimated from its pixels when the
plane is computed; the levels are returned as a lazy DataArray too. nima's methods
(``li_adaptive``, its command line's default, ``li_li``, ``arcsinh``, ``adaptive``,
``entropy``, ``inverse_yen``) follow nima 0.11's definitions: each selects the
background pixels of a plane and takes their median.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.ndimage as ndi
import skimage.filters
import skimage.filters.rank
import skimage.morphology
import skimage.util
import xarray as xr

from nima_lessons.pipeline._lift import apply_per_plane, check_dims

__all__ = [
    "BACKGROUND_METHODS",
    "BACKGROUND_OPTIONS",
    "background",
    "background_level",
]


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


# ---------------------------------------------------------------- nima's methods
# Each returns the boolean mask of the plane's background pixels; the level is their
# median (nima: the middle of their interquartile range).


def default_block_size(plane: np.ndarray) -> int:
    """Nima's local-threshold block: half the plane's width, made odd (257 for 512 px)."""
    half = int(plane.shape[1] // 2)
    return half + 1 if half % 2 == 0 else half


def _range_threshold(filtered: np.ndarray, range_percent: float) -> float:
    """The level ``range_percent`` % of the way from the minimum to the maximum."""
    fraction = range_percent / 100.0
    return (1 - fraction) * filtered.min() + fraction * filtered.max()


def li_adaptive_mask(plane: np.ndarray, block_size: int | None = None) -> np.ndarray:
    """Below the Li threshold, and below a local (Gaussian) threshold of what is left.

    The pixels above the plane's Li threshold are set to 0; of the others, those
    above the Gaussian-weighted local mean of that image (block ``block_size``,
    default :func:`default_block_size`) are dropped too: the dim halo of cells.
    """
    block_size = default_block_size(plane) if block_size is None else block_size
    below = plane < skimage.filters.threshold_li(plane)
    kept = plane * below  # the plane's own dtype, cells set to 0
    local = skimage.filters.threshold_local(kept, block_size)
    return below & ~(kept > local)


def li_li_mask(plane: np.ndarray) -> np.ndarray:
    """Below a second Li threshold, computed with the cells (above the first) set to the minimum."""
    below = plane < skimage.filters.threshold_li(plane)
    second = skimage.filters.threshold_li((plane * below).clip(np.min(plane)))
    return plane < second


def adaptive_mask(plane: np.ndarray, block_size: int | None = None) -> np.ndarray:
    """At or below the Gaussian-weighted local mean (block ``block_size``)."""
    block_size = default_block_size(plane) if block_size is None else block_size
    return ~(plane > skimage.filters.threshold_local(plane, block_size))


def arcsinh_mask(
    plane: np.ndarray,
    radius: int = 10,
    range_percent: float = 10.0,
    filter_percentile: float = 80.0,
) -> np.ndarray:
    """Low in the ``filter_percentile`` percentile filter (size ``radius``) of arcsinh(plane).

    Background pixels are below ``range_percent`` % of the filtered image's range.
    """
    filtered = ndi.percentile_filter(np.arcsinh(plane), filter_percentile, size=radius)
    return filtered < _range_threshold(filtered, range_percent)


def entropy_mask(plane: np.ndarray, radius: int = 10, range_percent: float = 10.0) -> np.ndarray:
    """Low local entropy (disk of ``radius``) of the plane as 8 bits: flat regions.

    Integer planes are reduced to 8 bits as nima does (scikit-image's
    ``img_as_ubyte``); float planes, which that refuses outside [-1, 1], are
    first divided by their maximum.
    """
    values = np.asarray(plane)
    if np.issubdtype(values.dtype, np.floating):
        top = np.nanmax(values)
        values = np.clip(values / top if top > 0 else values, 0, 1)
    as_8bit = skimage.util.img_as_ubyte(values)
    entropy = skimage.filters.rank.entropy(as_8bit, skimage.morphology.disk(radius))
    return entropy < _range_threshold(entropy, range_percent)


def inverse_yen_mask(plane: np.ndarray) -> np.ndarray:
    """Above Yen's threshold of the local (3 x 3 Gaussian) mean of 1 / plane.

    Zero pixels, which have no inverse, take the largest inverse of the plane.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / np.asarray(plane, dtype=np.float64)
    finite = np.isfinite(inverse)
    inverse[~finite] = inverse[finite].max() if finite.any() else 0.0
    local = skimage.filters.threshold_local(inverse)
    return local > skimage.filters.threshold_yen(local)


def _median_of_mask(mask_function: Callable[..., np.ndarray]) -> Callable[..., float]:
    def level(plane: np.ndarray, **options: Any) -> float:
        plane = np.asarray(plane)
        finite = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane
        if finite.size == 0:
            return float("nan")
        if finite.min() == finite.max():
            return float(finite.flat[0])  # a constant plane is all background
        selected = plane[mask_function(plane, **options)]
        return float(np.median(selected)) if selected.size else float("nan")

    level.__name__ = mask_function.__name__.replace("_mask", "_level")
    level.__doc__ = (
        f"Median of the background pixels of :func:`{mask_function.__name__}` "
        "(NaN if it finds none)."
    )
    return level


li_adaptive_level = _median_of_mask(li_adaptive_mask)
li_li_level = _median_of_mask(li_li_mask)
adaptive_level = _median_of_mask(adaptive_mask)
arcsinh_level = _median_of_mask(arcsinh_mask)
entropy_level = _median_of_mask(entropy_mask)
inverse_yen_level = _median_of_mask(inverse_yen_mask)

_LEVELS: dict[str, Callable[..., float]] = {
    "li": li_level,
    "percentile": percentile_level,
    "sigma": sigma_level,
    "li_adaptive": li_adaptive_level,
    "li_li": li_li_level,
    "arcsinh": arcsinh_level,
    "adaptive": adaptive_level,
    "entropy": entropy_level,
    "inverse_yen": inverse_yen_level,
}
BACKGROUND_METHODS = tuple(_LEVELS)
#: Options each method accepts (keyword arguments of :func:`background`).
BACKGROUND_OPTIONS: dict[str, tuple[str, ...]] = {
    "li": (),
    "percentile": ("percentile",),
    "sigma": ("n_sigma", "max_iter"),
    "li_adaptive": ("block_size",),
    "li_li": (),
    "arcsinh": ("radius", "range_percent", "filter_percentile"),
    "adaptive": ("block_size",),
    "entropy": ("radius", "range_percent"),
    "inverse_yen": (),
}


def background_level(plane: np.ndarray, method: str = "li", **options: Any) -> np.ndarray:
    """Return the background level of one plane as a 0-d float64 array.

    Parameters
    ----------
    plane : numpy.ndarray
        2-D image.
    method : str
        One of :data:`BACKGROUND_METHODS`, see :func:`background`.
    **options
        Passed to the method, see :data:`BACKGROUND_OPTIONS`.

    Examples
    --------
    >>> plane = np.zeros((10, 10)); plane[:3, :3] = 100
    >>> float(background_level(plane, "percentile", percentile=50))
    0.0
    """
    return np.asarray(_LEVELS[method](plane, **options), dtype=np.float64)


def _check_options(method: str, options: dict[str, Any]) -> None:
    if method not in _LEVELS:
        raise ValueError(f"method must be one of {BACKGROUND_METHODS}, got {method!r}")
    allowed = BACKGROUND_OPTIONS[method]
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(
            f"unknown options {sorted(unknown)} for method {method!r}; "
            f"it accepts {sorted(allowed) or 'none'}"
        )
    block = options.get("block_size")
    if block is not None and (
        isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 3
        or block % 2 == 0
    ):  # fmt: skip
        raise ValueError(f"block_size must be None or an odd integer >= 3, got {block!r}")
    radius = options.get("radius", 1)
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 1:
        raise ValueError(f"radius must be an integer >= 1, got {radius!r}")
    for name in ("percentile", "range_percent", "filter_percentile"):
        if name in options and not 0 <= options[name] <= 100:
            raise ValueError(f"{name} must be in [0, 100], got {options[name]}")


def background(
    im: xr.DataArray, method: str = "li", **options: Any
) -> tuple[xr.DataArray, xr.DataArray]:
    """Subtract a per-plane background level, clipping at 0, lazily.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims including ("Y", "X").
    method : str
        How the level of each plane is estimated. This project's:

        * ``"li"``: median of the pixels below the Li threshold;
        * ``"percentile"``: a low percentile (``percentile=10``);
        * ``"sigma"``: iterative sigma clipping (``n_sigma=2``, ``max_iter=20``).

        nima's, each the median of the background pixels it selects:

        * ``"li_adaptive"`` (nima's command-line default): below the Li
          threshold and below the local Gaussian threshold (``block_size``,
          default half the plane's width, odd) of the image with the cells
          zeroed, see ``li_adaptive_mask``;
        * ``"li_li"``: below a second Li threshold computed without the cells;
        * ``"adaptive"``: below the local Gaussian threshold (``block_size``);
        * ``"arcsinh"``: low in a percentile filter of arcsinh(image)
          (``radius=10``, ``filter_percentile=80``, ``range_percent=10``);
        * ``"entropy"``: low local entropy (``radius=10``, ``range_percent=10``);
        * ``"inverse_yen"``: above Yen's threshold of the local mean of 1/image.
    **options
        Method options, see :data:`BACKGROUND_OPTIONS`.

    Returns
    -------
    subtracted : xarray.DataArray
        Float image (at least float32), same dims, background removed.
    levels : xarray.DataArray
        float64 level of every plane, dims of ``im`` without Y and X (for
        a (T, C, Z, Y, X) image: (T, C, Z)). A constant plane's level is its
        value; a plane in which a nima method finds no background is NaN.

    Raises
    ------
    ValueError
        If ``method`` or an option is unknown, or an option is out of range;
        on planes split into tiles, if the method has no exact tiled version.

    Notes
    -----
    On planes split into tiles every method except ``"li_adaptive"`` and
    ``"adaptive"`` (whose local block spans a third of the plane) gives the
    whole-plane levels, computed from per-tile summaries; nima's methods there
    need planes of finite pixels, and ``"li_li"`` integer or float64 planes.

    Examples
    --------
    >>> im = xr.DataArray(np.full((2, 4, 4), 7.0), dims=("T", "Y", "X"))
    >>> subtracted, levels = background(im, "percentile")
    >>> levels.values.tolist(), float(subtracted.max())
    ([7.0, 7.0], 0.0)
    """
    check_dims(im, "im")
    _check_options(method, options)
    from nima_lessons.pipeline._lift import is_tiled
    from nima_lessons.pipeline._tiled_levels import tiled_background

    if is_tiled(im):  # planes split into tiles: exact tile-wise version, or a clear refusal
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
