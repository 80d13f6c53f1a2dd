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

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import dask.array as da
import numpy as np
import scipy.ndimage as ndi
import skimage.filters
import skimage.filters.rank
import skimage.morphology
import skimage.util

from nima_lessons.pipeline import _background
from nima_lessons.pipeline import _tile_stats as stats
from nima_lessons.pipeline._background import _range_threshold
from nima_lessons.pipeline._lift import overlap_planes
from nima_lessons.pipeline._tiled_levels import TILED_NIMA_METHODS, histogram, li_threshold
from nima_lessons.pipeline._tiled_segment import keep_packed

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
        If a plane has both finite pixels and pixels that are not finite, or
        ``li_li`` is asked of a float plane other than float64.
    """
    refusal = dtype_refusal(method, data.dtype)
    if refusal:
        raise ValueError(f"background method {method!r} cannot run on tiled planes: {refusal}")
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
        mask = _MASKS[method](data, extents, varying, **{**_defaults(method), **options})
        for index, level in median_of_selected(data, mask, varying).items():
            levels[index] = level
    return levels


def _defaults(method: str) -> dict[str, Any]:
    """The options of the whole-plane mask function of ``method`` and their defaults."""
    whole_plane = getattr(_background, f"{method}_mask")
    parameters = inspect.signature(whole_plane).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def dtype_refusal(method: str, dtype: np.dtype) -> str | None:
    """Why ``method`` cannot run exactly on tiled planes of ``dtype`` (None: it can).

    Li's threshold of a float32 (or float16) plane takes means that numpy sums
    pairwise in that precision, in the order of the whole plane's pixels: no
    summary of tiles reproduces them bit for bit.
    """
    if method == "li_li" and dtype.kind == "f" and dtype != np.float64:
        return (
            f"Li's threshold of a {dtype} plane averages pixels in {dtype}, summed pairwise in "
            "the order of the whole plane, which tiles cannot reproduce exactly; convert the "
            "image to float64 (or keep it integer), or use whole planes (whole_planes)"
        )
    return None


def median_of_selected(
    data: da.Array, mask: da.Array, planes: list[PlaneIndex]
) -> dict[PlaneIndex, float]:
    """``numpy.median(plane[mask])`` of the listed planes, exactly, from per-tile summaries.

    The mask is computed once and kept at one bit per pixel (``keep_packed``):
    the rounds that follow read it instead of computing its filters again. The
    masked-out pixels become NaN, which the tiles' summaries leave out; the
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
    selected = da.where(keep_packed(mask), data.astype(np.float64), np.nan)
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


# ---------------------------------------------------------------- li_li


@dataclasses.dataclass(frozen=True)
class IntegerCounts(stats.Request):
    """How many pixels take each integer value from ``low`` to ``high`` (integer planes)."""

    low: float
    high: float

    def tile(self, values: np.ndarray) -> Any:
        offsets = (values - self.low).astype(np.int64)
        return np.bincount(offsets, minlength=int(self.high - self.low) + 1)

    def merge(self, parts: list[Any]) -> Any:
        return np.sum(parts, axis=0)


def li_of_integers(counts: np.ndarray) -> float:
    """``threshold_li`` of integer pixels from their histogram, minus their minimum.

    ``counts[k]``: the number of pixels equal to the minimum plus ``k``.
    scikit-image thresholds integer images on such a histogram (float32
    weights, tolerance 0.5), starting from the mean of the shifted pixels;
    the same arithmetic on the same arrays gives the same threshold.

    Examples
    --------
    >>> image = np.array([1, 1, 2, 9, 10, 10], dtype=np.uint16)
    >>> counts = np.bincount(image - image.min())
    >>> bool(li_of_integers(counts) + 1 == skimage.filters.threshold_li(image))
    True
    """
    levels = np.arange(counts.size)
    weights = counts.astype(np.float32)
    # The mean of integers: their sum is exact in float64 (below 2**53).
    t_next = np.float64(int(np.dot(counts.astype(np.int64), levels))) / int(counts.sum())
    tolerance = 0.5
    t_curr = -2 * tolerance
    while abs(t_next - t_curr) > tolerance:
        t_curr = t_next
        above = levels > t_curr
        mean_fore = np.average(levels[above], weights=weights[above])
        mean_back = np.average(levels[~above], weights=weights[~above])
        if mean_back == 0:
            break
        t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
    return float(t_next)


def _li_threshold(integers: bool) -> stats.Algorithm[float]:
    """``threshold_li`` of a plane of finite pixels (its value if it is constant)."""
    extent, (_, total) = yield [stats.Extent(), stats.SumCount()]
    count, low_key, high_key = extent
    low, high = stats.key_value(low_key), stats.key_value(high_key)
    if low == high:
        return low
    if not integers:
        return (yield from li_threshold(count, low, total))
    (counts,) = yield [IntegerCounts(low, high)]
    return li_of_integers(counts) + low


def _below(block: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    return block < threshold


def _cells_to_minimum(block: np.ndarray, threshold: np.ndarray, minimum: np.ndarray) -> np.ndarray:
    # li_li's second image: the pixels above the first threshold set to 0, then
    # everything raised to at least the plane's minimum, in the plane's dtype.
    return (block * (block < threshold)).clip(minimum)


def li_li_mask(data: da.Array, extents: Extents, planes: list[PlaneIndex]) -> da.Array:
    """Lazy ``li_li_mask``: below Li's threshold of the plane with its cells at the minimum."""
    integers = data.dtype.kind in "iub"
    first = _per_plane(data, _solve(data, planes, lambda: _li_threshold(integers)), np.float64)
    minimum = _per_plane(data, {i: extents[i][1] for i in planes}, data.dtype)
    second_image = da.map_blocks(_cells_to_minimum, data, first, minimum, dtype=data.dtype)
    second = _solve(second_image, planes, lambda: _li_threshold(integers))
    return da.map_blocks(_below, data, _per_plane(data, second, np.float64), dtype=bool)


# ---------------------------------------------------------------- arcsinh and entropy


def percentile_reach(size: int) -> int:
    """Pixels each side that ``ndi.percentile_filter(..., size=size)`` reads.

    A centred footprint of an even size reaches one pixel further before the
    pixel than after it (``size // 2`` and ``size // 2 - 1``).

    Examples
    --------
    >>> percentile_reach(10), percentile_reach(5)
    (5, 2)
    """
    return size // 2


def _arcsinh_percentile(plane: np.ndarray, percentile: float, size: int) -> np.ndarray:
    return ndi.percentile_filter(np.arcsinh(plane), percentile, size=size)


def _as_8bit(block: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``entropy_mask``'s 8-bit conversion of a tile of a plane whose extent is (low, high).

    Float planes are divided by their maximum (when it is positive) and clipped
    to [0, 1], then converted element-wise. scikit-image scales integers
    down only if the image's maximum does not fit in 8 bits: the tile is
    converted with the plane's minimum and maximum appended, so that the same
    choice is made for it as for the whole plane.
    """
    if block.dtype.kind == "f":
        divisor = np.where(high > 0, high, 1).astype(block.dtype)
        return skimage.util.img_as_ubyte(np.clip(block / divisor, 0, 1))
    extended = np.concatenate([block.ravel(), low.ravel(), high.ravel()])
    return skimage.util.img_as_ubyte(extended)[: block.size].reshape(block.shape)


def _local_entropy(plane: np.ndarray, radius: int) -> np.ndarray:
    # scikit-image's rank filters refuse read-only buffers (which dask may hand over).
    writable = plane if plane.flags.writeable else plane.copy()
    return skimage.filters.rank.entropy(writable, skimage.morphology.disk(radius))


def _below_range_threshold(
    filtered: da.Array, planes: list[PlaneIndex], range_percent: float
) -> da.Array:
    """``filtered < _range_threshold(filtered, range_percent)`` of every listed plane.

    The threshold is computed by ``_range_threshold`` itself on the plane's
    minimum and maximum (found over the tiles), in the filtered image's dtype.
    """
    ranges = _solve(filtered, planes, stats.extent)
    thresholds = {
        index: _range_threshold(np.array([low, high], dtype=filtered.dtype), range_percent)
        for index, (_, low, high) in ranges.items()
    }
    dtype = np.asarray(next(iter(thresholds.values()))).dtype
    return da.map_blocks(_below, filtered, _per_plane(filtered, thresholds, dtype), dtype=bool)


def arcsinh_mask(
    data: da.Array,
    extents: Extents,
    planes: list[PlaneIndex],
    radius: int,
    range_percent: float,
    filter_percentile: float,
) -> da.Array:
    """Lazy ``arcsinh_mask``: a local percentile of arcsinh(plane), globally thresholded."""
    dtype = np.arcsinh(np.zeros(1, dtype=data.dtype)).dtype
    filtered = overlap_planes(
        _arcsinh_percentile, data, percentile_reach(radius), dtype,
        percentile=filter_percentile, size=radius,
    )  # fmt: skip
    return _below_range_threshold(filtered, planes, range_percent)


def entropy_mask(
    data: da.Array,
    extents: Extents,
    planes: list[PlaneIndex],
    radius: int,
    range_percent: float,
) -> da.Array:
    """Lazy ``entropy_mask``: local entropy (a disk reaching ``radius``), globally thresholded."""
    low, high = ({i: extents[i][end] for i in planes} for end in (1, 2))
    as_8bit = da.map_blocks(
        _as_8bit,
        data,
        _per_plane(data, low, data.dtype),
        _per_plane(data, high, data.dtype),
        dtype=np.uint8,
    )
    dtype = _local_entropy(np.zeros((1, 1), np.uint8), radius).dtype
    entropy = overlap_planes(_local_entropy, as_8bit, radius, dtype, radius=radius)
    return _below_range_threshold(entropy, planes, range_percent)


_MASKS: dict[str, Callable[..., da.Array]] = {
    "inverse_yen": inverse_yen_mask,
    "li_li": li_li_mask,
    "arcsinh": arcsinh_mask,
    "entropy": entropy_mask,
}

__all__ = [
    "TILED_NIMA_METHODS",
    "dtype_refusal",
    "gaussian_reach",
    "li_of_integers",
    "median_of_selected",
    "nima_levels",
    "percentile_reach",
]
