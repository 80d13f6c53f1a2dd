"""nima's background methods on planes split into tiles, giving the whole-plane levels.

Each method of ``_background`` (``inverse_yen``, ``li_li``, ``arcsinh``,
``entropy``) builds a background mask of the plane and takes the median of the
masked pixels. Here the mask is a lazy, tile-wise array: element-wise steps run
on each tile, local filters on tiles grown by the filter's reach (the plane's own
border rules apply at the plane's border, see ``overlap_planes``), and the global
quantities the mask needs (an inverse's maximum, a Yen or Li threshold, a range)
come from per-tile summaries (``_tile_stats``). The median of the masked pixels is
then found exactly, bin by bin over the tiles (:func:`median_of_selected`).

Planes with pixels that are not finite are refused: nima's masks treat them in
ways (NaN medians, NaN filters) that a tiled run would not reproduce faithfully.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dask.array as da
import numpy as np
import skimage.filters
import skimage.filters.rank
import skimage.morphology
import skimage.util

from nima_lessons.pipeline import _tile_stats as stats
from nima_lessons.pipeline._lift import overlap_planes
from nima_lessons.pipeline._tiled_levels import TILED_NIMA_METHODS, histogram

PlaneIndex = stats.PlaneIndex
Extents = Mapping[PlaneIndex, tuple[int, float | None, float | None]]


def nima_levels(data: da.Array, method: str, **options: Any) -> np.ndarray:
    """Background level of every (Y, X) plane of a tiled array, as ``background_level``.

    Parameters
    ----------
    data : dask.array.Array
        Image with (Y, X) as its last two axes, split into tiles.
    method : str
        One of :data:`TILED_NIMA_METHODS`.
    **options
        The method's options (see ``BACKGROUND_OPTIONS``).

    Returns
    -------
    numpy.ndarray
        float64 levels shaped like the leading axes: a constant plane's value,
        NaN for a plane without finite pixels or without background pixels.

    Raises
    ------
    ValueError
        If a plane has both finite pixels and pixels that are not finite.
    """
    pixels = int(np.prod(data.shape[-2:]))
    extents = stats.run_per_plane(data, lambda _: stats.extent())
    levels = np.full(data.shape[:-2], np.nan)
    varying = []
    for index, (count, low, high) in extents.items():
        if count == 0:
            continue  # no finite pixel: NaN, as on a whole plane
        if count < pixels:
            raise ValueError(
                f"background method {method!r} on tiles needs planes of finite pixels; "
                f"plane {index} has {pixels - count} NaN or infinite pixels: replace them, "
                "or compute it on whole planes (whole_planes)"
            )
        if low == high:
            levels[index] = low  # a constant plane is all background
        else:
            varying.append(index)
    if varying:
        mask = _MASKS[method](data, extents, varying, **options)
        for index, level in median_of_selected(data, mask, varying).items():
            levels[index] = level
    return levels


def median_of_selected(
    data: da.Array, mask: da.Array, planes: list[PlaneIndex]
) -> dict[PlaneIndex, float]:
    """``numpy.median(plane[mask])`` of the listed planes, exactly, from per-tile summaries.

    The masked-out pixels become NaN, which the tiles' summaries leave out; the
    order statistics of the pixels left are narrowed down bin by bin
    (:func:`_tile_stats.median`), the middle two of an even count averaged in
    the plane's dtype as numpy does.

    Parameters
    ----------
    data : dask.array.Array
        Image with (Y, X) last, finite pixels.
    mask : dask.array.Array
        Boolean array of the same shape and chunks.
    planes : list of tuple
        Leading indices of the planes wanted.

    Returns
    -------
    dict
        Plane index -> median (NaN where the mask selects nothing).
    """
    selected = da.where(mask, data.astype(np.float64), np.nan)
    pixels = int(np.prod(data.shape[-2:]))
    return _solve(
        selected, planes, lambda: stats.median(stats.Finite(), at_most=pixels, dtype=data.dtype)
    )


def _solve(
    data: da.Array, planes: list[PlaneIndex], make: Callable[[], stats.Algorithm[Any]]
) -> dict[PlaneIndex, Any]:
    """Run ``make()`` on the listed planes of ``data`` together (one pass per round)."""
    return stats.solve(data, {index: make() for index in planes}, {i: i for i in planes})


def _per_plane(data: da.Array, values: Mapping[PlaneIndex, Any], dtype: Any) -> da.Array:
    """One value per plane, shaped (..., 1, 1) to broadcast against the tiles of ``data``."""
    array = np.zeros((*data.shape[:-2], 1, 1), dtype=dtype)
    for index, value in values.items():
        array[index] = value
    return da.from_array(array, chunks=(*data.chunks[:-2], (1,), (1,)))


# ---------------------------------------------------------------- inverse_yen


def gaussian_reach(block_size: int, truncate: float = 4.0) -> int:
    """Pixels each side that ``threshold_local(image, block_size)`` (Gaussian) reads.

    scikit-image uses ``sigma = (block_size - 1) / 6`` and scipy's
    ``gaussian_filter`` truncates its kernel at ``int(truncate * sigma + 0.5)``.

    Examples
    --------
    >>> gaussian_reach(3)
    1
    """
    sigma = (block_size - 1) / 6.0
    return int(truncate * sigma + 0.5)


def _inverse(block: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.asarray(block, dtype=np.float64)


def _filled(inverse: np.ndarray, fill: np.ndarray) -> np.ndarray:
    # Pixels without a finite inverse (zeros) take the plane's largest finite one.
    return np.where(np.isfinite(inverse), inverse, fill)


def _yen_threshold() -> stats.Algorithm[float]:
    """``threshold_yen`` of the finite pixels, a constant plane included (its one-bin histogram)."""
    _, low, high = yield from stats.extent()
    counts, centres = yield from histogram(float(low), float(high))  # type: ignore[arg-type]
    return float(skimage.filters.threshold_yen(hist=(counts, centres)))


def inverse_yen_mask(data: da.Array, extents: Extents, planes: list[PlaneIndex]) -> da.Array:
    """Lazy ``inverse_yen_mask`` of every plane (meaningful for the listed ones)."""
    inverse = da.map_blocks(_inverse, data, dtype=np.float64)
    largest = _solve(inverse, planes, stats.extent)
    fill = {index: high if count else 0.0 for index, (count, _, high) in largest.items()}
    filled = da.map_blocks(_filled, inverse, _per_plane(data, fill, np.float64), dtype=np.float64)
    # threshold_local's default block (3): a Gaussian reaching one pixel each side.
    local = overlap_planes(skimage.filters.threshold_local, filled, gaussian_reach(3), np.float64)
    thresholds = _solve(local, planes, _yen_threshold)
    return da.map_blocks(np.greater, local, _per_plane(data, thresholds, np.float64), dtype=bool)


_MASKS: dict[str, Callable[..., da.Array]] = {
    "inverse_yen": inverse_yen_mask,
}

__all__ = ["TILED_NIMA_METHODS", "gaussian_reach", "median_of_selected", "nima_levels"]
