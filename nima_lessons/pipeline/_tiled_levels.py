"""Background levels and automatic thresholds of whole planes that are split into tiles.

Each method gives what its whole-plane version (``_background`` and ``_segment``)
gives on the same plane, computed from per-tile summaries (``_tile_stats``):
histogram methods (Otsu, Yen) from the global histogram binned as scikit-image bins
it, Li's threshold by iterating on global means, percentiles and medians exactly.
nima's background methods that have a tiled version (their masks built tile by
tile, then the median of the masked pixels) are in ``_tiled_nima``. The levels and
thresholds are computed when the graph is built (they decide what the later steps
do); the planes themselves stay lazy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import skimage.filters
import xarray as xr

from nima_lessons.pipeline import _tile_stats as stats
from nima_lessons.pipeline._lift import PLANE_DIMS, refuse_tiles

#: nima's background methods offered on tiled planes (see ``_tiled_nima``).
TILED_NIMA_METHODS = ("inverse_yen", "li_li", "arcsinh", "entropy")
#: Background methods offered on tiled planes.
TILED_BACKGROUND_METHODS = ("li", "percentile", "sigma", *TILED_NIMA_METHODS)
#: Threshold methods offered on tiled planes.
TILED_THRESHOLD_METHODS = ("yen", "li", "otsu")
#: Number of histogram bins of scikit-image's Otsu and Yen thresholds (their default).
HISTOGRAM_BINS = 256

_LOCAL_BLOCK = (
    "its local (Gaussian) threshold uses a block half the plane's width by default, so each "
    "pixel depends on pixels about a third of the plane away; an exact tiled version would "
    "need an overlap about as large as the plane"
)
#: Methods refused on tiled planes (nima's background methods among them), and why.
UNTILEABLE = {
    "li_adaptive": _LOCAL_BLOCK,
    "adaptive": _LOCAL_BLOCK,
}


def tiled_background(
    im: xr.DataArray, method: str = "li", **options: float
) -> tuple[xr.DataArray, xr.DataArray]:
    """Subtract a per-plane background level from a tiled image, as ``background`` does.

    Parameters
    ----------
    im : xarray.DataArray
        Dask-backed image with dims including ("Y", "X"), Y or X split into tiles.
    method : str
        One of :data:`TILED_BACKGROUND_METHODS`, as in
        :func:`nima_lessons.pipeline.background`: this project's ``"li"``,
        ``"percentile"``, ``"sigma"``, or nima's :data:`TILED_NIMA_METHODS`.
    **options
        The method's options, see ``BACKGROUND_OPTIONS``.

    Returns
    -------
    subtracted, levels : xarray.DataArray
        As :func:`nima_lessons.pipeline.background`; ``levels`` are already
        computed (from per-tile summaries), numpy-backed.

    Raises
    ------
    ValueError
        If ``method`` has no tiled version.
    """
    if method not in TILED_BACKGROUND_METHODS:
        refuse_tiles(im, f"background method {method!r}", refusal_reason(method))
    data, lead_dims = _planes_last(im)
    values = _levels(data, method, options)
    # Already computed: kept in memory (a saved result is then written in bands of
    # tiles rather than whole planes at a time).
    levels = xr.DataArray(
        values,
        dims=lead_dims,
        coords={name: im.coords[name] for name in lead_dims if name in im.coords},
        name="background",
    )
    dtype = np.result_type(im.dtype, np.float32)
    # The same arithmetic as on whole planes, tile by tile.
    subtracted = (im.astype(dtype) - levels.astype(dtype)).clip(min=0)
    return subtracted.transpose(*im.dims).rename("image"), levels


def _levels(data: da.Array, method: str, options: dict[str, Any]) -> np.ndarray:
    """float64 levels of every plane of ``data`` (Y, X last), shaped like its leading axes."""
    if method in TILED_NIMA_METHODS:
        from nima_lessons.pipeline._tiled_nima import nima_levels

        return nima_levels(data, method, **options)
    algorithms: dict[str, Callable[..., stats.Algorithm[float]]] = {
        "li": li_level,
        "percentile": percentile_level,
        "sigma": sigma_level,
    }
    pixels = int(np.prod(data.shape[-2:]))
    found = stats.run_per_plane(data, lambda _: algorithms[method](**options, at_most=pixels))
    values = np.zeros(data.shape[:-2], dtype=np.float64)
    for index, level in found.items():
        values[index] = level
    return values


def tiled_thresholds(data: da.Array, method: str = "yen") -> np.ndarray:
    """Automatic threshold of every (Y, X) plane of a tiled array, as ``threshold_mask`` uses.

    Parameters
    ----------
    data : dask.array.Array
        Float image with (Y, X) as its last two axes.
    method : {"yen", "li", "otsu"}
        scikit-image threshold computed on the plane's finite pixels.

    Returns
    -------
    numpy.ndarray
        float64 thresholds shaped like the leading axes; NaN for a plane
        without contrast (constant or without finite pixels), whose mask is
        empty (``pixel > NaN`` is never true).
    """
    algorithms: dict[str, Callable[[], stats.Algorithm[float | None]]] = {
        "li": li_threshold_of_plane,
        "otsu": otsu_threshold,
        "yen": yen_threshold,
    }
    found = stats.run_per_plane(data, lambda _: algorithms[method]())
    thresholds = np.full(data.shape[:-2], np.nan)
    for index, value in found.items():
        thresholds[index] = np.nan if value is None else value
    return thresholds


def refusal_reason(method: str) -> str:
    """Why ``method`` is refused on tiled planes."""
    return UNTILEABLE.get(method, "it has no tiled version yet")


def _planes_last(im: xr.DataArray) -> tuple[da.Array, tuple[str, ...]]:
    lead = tuple(str(dim) for dim in im.dims if dim not in PLANE_DIMS)
    return im.transpose(*lead, *PLANE_DIMS).data, lead


# ---------------------------------------------------------------- background levels


def percentile_level(
    percentile: float = 10.0, at_most: int | None = None
) -> stats.Algorithm[float]:
    """``percentile_level``: a low percentile of the finite pixels (0 if there are none)."""
    if at_most == 0:
        return 0.0
    try:
        return (yield from stats.percentile(stats.Finite(), percentile, at_most=at_most))
    except ValueError:  # no finite pixel
        return 0.0


def sigma_level(
    n_sigma: float = 2.0, max_iter: int = 20, at_most: int | None = None
) -> stats.Algorithm[float]:
    """``sigma_level``: iterative sigma clipping, then the median of the pixels kept.

    Each round computes the median, count and spread of the next selection
    together, before knowing whether the clipping goes on: one round fewer per
    step.
    """
    centre, (count, _, spread) = yield from stats.together(
        stats.median(stats.Finite(), at_most=at_most), stats.mean_and_std(stats.Finite())
    )
    if count == 0:
        return 0.0
    for _ in range(max_iter):
        selected = stats.Within(centre, n_sigma * spread)
        selected_centre, (selected_count, _, selected_spread) = yield from stats.together(
            stats.median(selected, at_most=count if count <= stats.GATHER_LIMIT else at_most),
            stats.mean_and_std(selected),
        )
        if selected_count in (0, count):
            break
        centre, count, spread = selected_centre, selected_count, selected_spread
    return centre


def li_level(at_most: int | None = None) -> stats.Algorithm[float]:
    """``li_level``: the median of the pixels below the plane's Li threshold."""
    extent, (_, total) = yield [stats.Extent(), stats.SumCount()]
    count, low, high = extent
    if count == 0:
        return 0.0
    minimum = stats.key_value(low)
    if minimum == stats.key_value(high):
        return minimum
    threshold = yield from li_threshold(count, minimum, total)
    # The pixels below the threshold lie between the minimum and the threshold.
    bounds = (low, int(stats.order_keys(np.array([threshold]))[0]))
    below = yield from stats.median(stats.Below(threshold), at_most=count, within_keys=bounds)
    if np.isnan(below):  # nothing below the threshold: the median of every pixel
        return (yield from stats.median(stats.Finite(), extent))
    return below


# ---------------------------------------------------------------- thresholds


class Contrast(NamedTuple):
    """Count, minimum, maximum and sum of the finite pixels of a plane."""

    pixels: int
    minimum: float
    maximum: float
    total: float


def _contrast() -> stats.Algorithm[Contrast | None]:
    """(count, min, max, sum) of the finite pixels, or None for a plane without contrast."""
    extent, (_, total) = yield [stats.Extent(), stats.SumCount()]
    count, low, high = extent
    if count == 0 or stats.key_value(low) == stats.key_value(high):
        return None
    return Contrast(count, stats.key_value(low), stats.key_value(high), total)


def histogram(
    low: float, high: float, bins: int = HISTOGRAM_BINS
) -> stats.Algorithm[tuple[np.ndarray, np.ndarray]]:
    """Counts and bin centres of the finite pixels, binned as ``skimage.exposure.histogram``.

    scikit-image bins float images with ``numpy.histogram(image, bins)``, whose
    range is the image's min and max; the tiles use that range explicitly.
    """
    (counts,) = yield [stats.Histogram(low, high, bins)]
    # The edges depend only on the range and the number of bins.
    edges = np.histogram(np.array([low, high]), bins=bins, range=(low, high))[1]
    return counts, (edges[:-1] + edges[1:]) / 2.0


def otsu_threshold() -> stats.Algorithm[float | None]:
    """``skimage.filters.threshold_otsu`` of the finite pixels, from the global histogram."""
    return (yield from _histogram_threshold(skimage.filters.threshold_otsu))


def yen_threshold() -> stats.Algorithm[float | None]:
    """``skimage.filters.threshold_yen`` of the finite pixels, from the global histogram."""
    return (yield from _histogram_threshold(skimage.filters.threshold_yen))


def _histogram_threshold(method: Callable[..., Any]) -> stats.Algorithm[float | None]:
    """A scikit-image threshold that reads only a histogram (its ``hist=`` argument).

    None when the finite pixels have no contrast (none, or all equal).
    """
    contrast = yield from _contrast()
    if contrast is None:
        return None
    hist = yield from histogram(contrast.minimum, contrast.maximum)
    return float(method(hist=hist))


def li_threshold_of_plane() -> stats.Algorithm[float | None]:
    """``skimage.filters.threshold_li`` of the finite pixels of a float plane."""
    contrast = yield from _contrast()
    if contrast is None:
        return None
    count, minimum, _, total = contrast
    return (yield from li_threshold(count, minimum, total))


def li_threshold(count: int, minimum: float, total: float) -> stats.Algorithm[float]:
    """Li's minimum cross-entropy threshold of the finite pixels, as scikit-image computes it.

    scikit-image (float images) shifts the pixels by their minimum, starts from
    their mean and repeats ``t = (m_b - m_f) / (log m_b - log m_f)``, with the
    means of the pixels above ``t`` and not above it, until ``t`` moves by no
    more than half the smallest difference between two distinct pixel values.
    The means come from per-tile sums (one pass per step). The stopping rule
    is decided exactly without that smallest difference in all but rare
    cases: when no pixel lies between two successive thresholds, stopping and
    going on give the same threshold; when two distinct ones do, the
    difference is smaller than the step. Only when a single distinct value lies
    between them is the smallest difference looked for, first between the value
    and its neighbours, then within tiles, and last among all distinct values
    of the plane.

    Parameters
    ----------
    count : int
        Number of finite pixels (more than one distinct value).
    minimum : float
        Their minimum.
    total : float
        Their sum (the starting mean of the shifted pixels is
        ``(total - count * minimum) / count``).

    Returns
    -------
    float
        The threshold, equal to scikit-image's to floating-point rounding of
        the means.
    """
    shift = np.float64(minimum)
    t_next = (np.float64(total) - count * shift) / count
    ((sums),) = yield [stats.SplitSums(float(shift), float(t_next))]
    while True:
        t_curr = t_next
        n_fore, sum_fore, n_back, sum_back = sums
        mean_fore = np.float64(sum_fore) / n_fore if n_fore else np.float64(np.nan)
        mean_back = np.float64(sum_back) / n_back if n_back else np.float64(np.nan)
        if mean_back == 0.0:
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
        # The next step's sums and what lies between the two thresholds, in one pass.
        low, high = sorted((float(t_curr), float(t_next))) if np.isfinite(t_next) else (0, 0)
        fetched = yield [
            stats.SplitSums(float(shift), float(t_next)),
            stats.ShiftedBetween(float(shift), low, high),
        ]
        going_on = yield from _li_goes_on(shift, t_curr, t_next, fetched)
        if not going_on:
            break
        sums = fetched[0]
    return float(t_next + shift)


def _li_goes_on(
    shift: float, t_curr: float, t_next: float, fetched: list[Any]
) -> stats.Algorithm[bool]:
    """Whether scikit-image's Li loop runs another step: ``|t_next - t_curr| > tolerance``.

    ``fetched`` holds the next step's sums and what lies between the thresholds.
    """
    step = abs(t_next - t_curr)
    if not step > 0:  # zero or NaN: the loop ends whatever the tolerance
        return False
    count, lowest, highest = fetched[1]
    if count == 0:
        # Same pixels on each side: another step gives the same threshold again.
        return False
    if lowest != highest:
        # Two distinct values closer than the step: the tolerance is below it.
        return True
    # One distinct value v between the thresholds: go on only if some two
    # distinct values are closer than twice the step.
    ((below, above),) = yield [stats.ShiftedNeighbours(float(shift), lowest)]
    gaps = [lowest - below if below is not None else np.inf]
    gaps.append(above - lowest if above is not None else np.inf)
    if min(np.float64(gap) for gap in gaps) < 2 * step:
        return True
    (tile_gap,) = yield [stats.ShiftedMinGap(float(shift))]
    if tile_gap < 2 * step:
        return True
    (distinct,) = yield [stats.ShiftedDistinct(float(shift))]
    tolerance = np.min(np.diff(distinct)) / 2
    return bool(step > tolerance)


__all__ = [
    "HISTOGRAM_BINS",
    "TILED_BACKGROUND_METHODS",
    "TILED_NIMA_METHODS",
    "TILED_THRESHOLD_METHODS",
    "UNTILEABLE",
    "refusal_reason",
    "tiled_background",
    "tiled_thresholds",
]
