"""Filtering in overlapping tiles: how much overlap a filter needs, measured and predicted.

`tile_error` measures what tiling changes, `minimal_overlap` searches the smallest exact
overlap, `overlap_for` gives it from the filter's parameters, `overlap_sweep` tabulates both.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, get_args, overload

import dask.array as da
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, DTypeLike

from nima_lessons._search import first_passing

#: What ``map_overlap`` pads the image border with (``"none"``: nothing, the filter's mode).
Boundary = Literal["none", "reflect", "periodic", "nearest"] | float
#: Tile sizes in any form dask accepts (one side, one per axis, explicit chunks, "auto").
Chunks = int | str | Sequence[Any]
#: Normalised dask chunks: the tile lengths along each axis.
GridChunks = tuple[tuple[int, ...], ...]
#: An overlap in pixels, the same on every axis or one per axis.
Depth = int | Sequence[int]
#: A numpy filter: ``func(array) -> array`` of the same shape.
Filter = Callable[[np.ndarray], np.ndarray]
#: Samples of a Gaussian kernel kept on each side, in sigmas (scipy's default).
TRUNCATE = 4.0

# ---------------------------------------------------------------- measuring


class TileError(NamedTuple):
    """How far a tiled result is from the whole-image result.

    Attributes
    ----------
    max_abs_error : float
        Largest absolute difference; 0.0 means bit-identical results.
    rms_error : float
        Root mean square of the differences over all pixels.
    fraction_differing : float
        Fraction of pixels whose values differ at all.
    signed_sum : float
        Sum of the signed differences. Kept to show why it misleads: errors
        of opposite signs cancel, so a small sum does not mean a small error.
    """

    max_abs_error: float
    rms_error: float
    fraction_differing: float
    signed_sum: float


def compare_results(tiled: ArrayLike, reference: ArrayLike) -> TileError:
    """Summarise the difference between two results of the same shape.

    Parameters
    ----------
    tiled, reference : array_like
        The result computed in tiles and the whole-image result. NaN in both
        at the same pixel counts as equal; NaN in only one as an infinite
        error.

    Returns
    -------
    TileError

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> compare_results(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 2.5]))  # doctest: +ELLIPSIS
    TileError(max_abs_error=0.5, rms_error=0.408..., fraction_differing=0.666..., signed_sum=0.0)
    """
    tiled = np.asarray(tiled)
    reference = np.asarray(reference)
    if tiled.shape != reference.shape:
        raise ValueError(
            f"tiled result has shape {tiled.shape}, expected the reference shape {reference.shape}"
        )
    if tiled.size == 0:
        return TileError(0.0, 0.0, 0.0, 0.0)
    difference = tiled.astype(np.float64) - reference.astype(np.float64)
    both_nan = (
        np.isnan(difference)
        & np.isnan(tiled.astype(np.float64))
        & np.isnan(reference.astype(np.float64))
    )
    difference[both_nan] = 0.0
    difference[np.isnan(difference)] = np.inf
    absolute = np.abs(difference)
    return TileError(
        max_abs_error=float(absolute.max()),
        rms_error=float(np.sqrt(np.mean(np.square(difference)))),
        fraction_differing=float(np.count_nonzero(absolute) / absolute.size),
        signed_sum=float(difference.sum()),
    )


def tiled_apply(
    func: Filter,
    image: ArrayLike | da.Array,
    chunks: Chunks,
    depth: Depth,
    boundary: Boundary = "none",
    dtype: DTypeLike | None = None,
) -> da.Array:
    """Apply a numpy filter to overlapping tiles, lazily.

    Parameters
    ----------
    func : callable
        ``func(array) -> array`` of the same shape (a scipy.ndimage filter
        with its parameters bound, for example).
    image : numpy.ndarray or dask.array.Array
        The input image.
    chunks : int, tuple or str
        Tile size, in any form ``dask.array.from_array`` accepts.
    depth : int or sequence of int
        Overlap in pixels on each side of a tile, one value or one per axis.
    boundary : str
        What ``map_overlap`` pads the image border with. ``"none"`` (the
        default) pads nothing, so ``func`` handles the border with its own
        ``mode`` exactly as on the whole image.
    dtype : numpy.dtype, optional
        dtype of the result; taken from ``func`` on a tiny input when omitted.

    Returns
    -------
    dask.array.Array
        The tiled result, trimmed back to the chunks of the input.

    Raises
    ------
    ValueError
        If a depth is negative or larger than the smallest tile along an axis
        cut into several tiles (``map_overlap`` would silently re-tile).

    Examples
    --------
    >>> import scipy.ndimage as ndi
    >>> image = np.arange(64.0).reshape(8, 8)
    >>> tiled = tiled_apply(ndi.sobel, image, chunks=4, depth=1)
    >>> bool(np.array_equal(tiled.compute(), ndi.sobel(image)))
    True
    """
    array = image if isinstance(image, da.Array) else da.from_array(np.asarray(image))
    array = array.rechunk(chunks)
    depth_per_axis = _depth_per_axis(depth, array.chunks)
    if dtype is None:
        dtype = np.asarray(func(np.zeros((3,) * array.ndim, dtype=array.dtype))).dtype
    return array.map_overlap(
        func,
        depth=depth_per_axis,
        boundary=boundary,
        dtype=dtype,
        meta=np.empty((0,) * array.ndim, dtype=dtype),
        allow_rechunk=False,
    )


def tile_error(
    func: Filter,
    image: ArrayLike,
    chunks: Chunks,
    depth: Depth,
    boundary: Boundary = "none",
    reference: np.ndarray | None = None,
) -> TileError:
    """Measure how much filtering in overlapping tiles differs from the whole image.

    Parameters
    ----------
    func : callable
        ``func(array) -> array`` of the same shape.
    image : array_like
        The input image (held in memory: this is a measuring tool for crops).
    chunks : int, tuple or str
        Tile size.
    depth : int or sequence of int
        Overlap in pixels on each side of a tile.
    boundary : str
        See :func:`tiled_apply`; ``"none"`` reproduces the whole-image border.
    reference : numpy.ndarray, optional
        ``func(image)``, when already computed.

    Returns
    -------
    TileError
        Maximum absolute and RMS error, fraction of differing pixels and the
        (misleading) signed sum.

    Raises
    ------
    ValueError
        See :func:`tiled_apply`.

    Examples
    --------
    >>> import scipy.ndimage as ndi
    >>> image = np.random.default_rng(0).random((32, 32))
    >>> tile_error(ndi.sobel, image, chunks=8, depth=1).max_abs_error
    0.0
    >>> tile_error(ndi.sobel, image, chunks=8, depth=0).max_abs_error > 0
    True
    """
    image = np.asarray(image)
    if reference is None:
        reference = func(image)
    tiled = tiled_apply(func, image, chunks, depth, boundary, dtype=reference.dtype)
    return compare_results(tiled.compute(), reference)


# ---------------------------------------------------------------- searching


@overload
def minimal_overlap(
    func: Filter,
    image: ArrayLike,
    chunks: Chunks,
    tol: float = ...,
    max_depth: int | None = ...,
    return_evaluations: Literal[False] = ...,
) -> int: ...
@overload
def minimal_overlap(
    func: Filter,
    image: ArrayLike,
    chunks: Chunks,
    tol: float = ...,
    max_depth: int | None = ...,
    *,
    return_evaluations: Literal[True],
) -> tuple[int, dict[int, float]]: ...
@overload
def minimal_overlap(
    func: Filter,
    image: ArrayLike,
    chunks: Chunks,
    tol: float = ...,
    max_depth: int | None = ...,
    return_evaluations: bool = ...,
) -> int | tuple[int, dict[int, float]]: ...
def minimal_overlap(
    func: Filter,
    image: ArrayLike,
    chunks: Chunks,
    tol: float = 0.0,
    max_depth: int | None = None,
    return_evaluations: bool = False,
) -> int | tuple[int, dict[int, float]]:
    """Find the smallest overlap for which tiles reproduce the whole-image result.

    The error is assumed to shrink as the overlap grows (true for filters
    with a finite footprint: once the overlap covers it, the error is 0).
    Depths 0, 1, 2, 4, 8, ... are tried until one is good enough, then a
    binary search between the last bad and the first good depth finds the
    smallest: about ``2 * log2(depth)`` evaluations instead of ``depth``
    (``nima_lessons._search.first_passing``).

    Parameters
    ----------
    func : callable
        ``func(array) -> array`` of the same shape.
    image : array_like
        A crop, small enough to filter many times, with several tiles.
    chunks : int, tuple or str
        Tile size. A tile must be at least as large as the depths tried, so
        choose tiles larger than the expected overlap.
    tol : float
        Largest accepted maximum absolute error. ``0.0`` (the default) asks for
        bit-identical results: the tails of a Gaussian kernel are tiny, so a
        depth one short of the kernel radius may err by less than any
        tolerance one would pick, and only exact equality tells.
        ``uniform_filter`` keeps a running sum along each line, so on a
        float image its rounding depends on where the tile starts and tiles
        never match bit for bit: give it a tolerance such as ``1e-12`` (or an
        integer image, where the sums are exact).
    max_depth : int, optional
        Largest depth to try; by default the smallest tile size along axes
        with several tiles.
    return_evaluations : bool
        Also return the depths tried and their maximum absolute errors.

    Returns
    -------
    depth : int
        The smallest artifact-free overlap (same in all axes).
    evaluations : dict of int to float
        Only with ``return_evaluations``: depth -> max absolute error, in the
        order tried.

    Raises
    ------
    ValueError
        If the tiling has a single tile, if ``tol`` is negative, or if no
        depth up to the limit is good enough (use larger tiles).

    Examples
    --------
    >>> import functools, scipy.ndimage as ndi
    >>> image = np.random.default_rng(0).random((64, 64))
    >>> minimal_overlap(functools.partial(ndi.median_filter, size=7), image, 16)
    3
    """
    image = np.asarray(image)
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    grid_chunks = da.core.normalize_chunks(chunks, image.shape, dtype=image.dtype)
    limit = _largest_depth(grid_chunks)
    if max_depth is not None:
        if max_depth < 0:
            raise ValueError(f"max_depth must be >= 0, got {max_depth}")
        limit = min(limit, int(max_depth))
    reference = func(image)
    evaluations: dict[int, float] = {}

    def good(depth: int) -> bool:
        error = tile_error(func, image, grid_chunks, depth, reference=reference)
        evaluations[depth] = error.max_abs_error
        return error.max_abs_error <= tol

    depth = first_passing(good, limit)
    if depth is None:
        raise ValueError(
            f"no overlap up to {limit} px reproduces the whole image within tol={tol} "
            f"(error {evaluations[limit]:.3g} at {limit} px) with chunks "
            f"{_chunk_summary(grid_chunks)}: use larger chunks or max_depth"
        )
    return (depth, evaluations) if return_evaluations else depth


# ---------------------------------------------------------------- predicting

# Each family of filters by the overlap rule it follows; the names as scipy.ndimage spells them,
# with the short names the lessons use.
GaussianName = Literal[
    "gaussian_filter", "gaussian", "gaussian_laplace", "gaussian_gradient_magnitude"
]
FootprintName = Literal[
    "median_filter", "median", "rank_filter", "percentile_filter", "minimum_filter",
    "maximum_filter", "grey_erosion", "grey_dilation", "morphological_gradient",
    "morphological_laplace", "uniform_filter", "uniform", "mean",
]  # fmt: skip
# Opening/closing are an erosion followed by a dilation (or the reverse): a
# pixel of the second pass reads pixels of the first pass up to one radius away,
# each of which read the image up to one radius further, hence twice the radius.
TwiceFootprintName = Literal[
    "white_tophat", "black_tophat", "tophat", "top_hat", "grey_opening", "grey_closing"
]
OnePixelName = Literal["sobel", "prewitt", "laplace"]
#: Every filter name :func:`overlap_for` knows.
FilterName = GaussianName | FootprintName | TwiceFootprintName | OnePixelName
_GAUSSIAN = get_args(GaussianName)
_FOOTPRINT = get_args(FootprintName)
_TWICE_FOOTPRINT = get_args(TwiceFootprintName)
_ONE_PIXEL = get_args(OnePixelName)
KNOWN_FILTERS: tuple[str, ...] = _GAUSSIAN + _FOOTPRINT + _TWICE_FOOTPRINT + _ONE_PIXEL


def overlap_for(
    filter_name: FilterName | Callable[..., Any], ndim: int | None = None, **params: Any
) -> int | tuple[int, ...]:
    """Return the overlap that theory gives for a filter and its parameters.

    Parameters
    ----------
    filter_name : str or callable
        A scipy.ndimage filter name (``"gaussian_filter"``, ``"median_filter"``,
        ``"white_tophat"``, ...; short names ``"gaussian"``, ``"median"``,
        ``"tophat"`` and ``"uniform"`` are accepted) or the function itself,
        possibly a ``functools.partial`` whose keywords count as ``params``.
    ndim : int, optional
        Number of image axes, needed only to expand per-axis results.
    **params
        The filter's parameters: ``sigma``, ``truncate`` (default 4.0) and
        ``radius`` for Gaussian filters; ``size``, ``footprint`` or ``radius``
        for footprint filters (scipy's ``size`` default 3 for
        ``uniform_filter``).

    Returns
    -------
    int or tuple of int
        The overlap in pixels: :func:`gaussian_depth` (or ``radius``)
        for Gaussian filters, the footprint radius ``size // 2`` for median,
        rank, minimum/maximum, erosion/dilation and uniform filters, twice the
        radius for openings, closings and top-hats, 1 for sobel, prewitt and
        laplace. A tuple when a parameter differs per axis.

    Raises
    ------
    ValueError
        For an unknown filter or missing parameters.

    Examples
    --------
    >>> overlap_for("gaussian_filter", sigma=5)
    20
    >>> overlap_for("median_filter", size=7)
    3
    >>> overlap_for("white_tophat", size=7)
    6
    """
    name, params = _name_and_params(filter_name, params)
    if name in _GAUSSIAN:
        depths = _gaussian_depths(name, params)
    elif name in _FOOTPRINT:
        default_size = 3 if name in ("uniform_filter", "uniform", "mean") else None
        depths = _footprint_radii(name, params, default_size)
    elif name in _TWICE_FOOTPRINT:
        depths = tuple(2 * r for r in _footprint_radii(name, params, None))
    elif name in _ONE_PIXEL:
        depths = (1,)
    else:
        raise ValueError(f"unknown filter_name {name!r}: expected one of {sorted(KNOWN_FILTERS)}")
    if len(set(depths)) == 1 and ndim is None:
        return depths[0]
    if ndim is not None and len(depths) == 1:
        return depths * ndim
    if ndim is not None and len(depths) != ndim:
        raise ValueError(f"{name} parameters give {len(depths)} axes, expected ndim={ndim}")
    return depths


def gaussian_depth(sigma: float, truncate: float = TRUNCATE) -> int:
    """Return the overlap a Gaussian filter needs: ``ceil(sigma * truncate)`` pixels.

    The rule of dask-image's lazy Gaussian filters. scipy's kernel reaches
    ``int(sigma * truncate + 0.5)`` pixels, never more, so this depth is always
    enough, and at most 1 px more than the smallest exact one.

    Parameters
    ----------
    sigma : float
        Standard deviation of the kernel in pixels (>= 0).
    truncate : float
        Kernel half-width in standard deviations (scipy's default 4.0).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``sigma`` or ``truncate`` is negative.

    Examples
    --------
    >>> gaussian_depth(5), gaussian_depth(1.1), gaussian_depth(2, truncate=2.5)
    (20, 5, 5)
    """
    if sigma < 0 or truncate < 0:
        raise ValueError(f"sigma and truncate must be >= 0, got sigma={sigma}, truncate={truncate}")
    return math.ceil(sigma * truncate)


def _name_and_params(filter_name: object, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(filter_name, functools.partial):
        if filter_name.args:
            raise ValueError(
                "filter_name as functools.partial must bind parameters by keyword, got "
                f"positional {filter_name.args!r}"
            )
        params = {**filter_name.keywords, **params}
        filter_name = filter_name.func
    if callable(filter_name):
        filter_name = getattr(filter_name, "__name__", repr(filter_name))
    if not isinstance(filter_name, str):
        raise ValueError(f"filter_name must be a name or a function, got {filter_name!r}")
    return filter_name.lower(), params


def _as_tuple(value: ArrayLike) -> tuple[Any, ...]:
    return tuple(np.atleast_1d(value).tolist())


def _gaussian_depths(name: str, params: dict[str, Any]) -> tuple[int, ...]:
    if params.get("radius") is not None:
        return tuple(int(r) for r in _as_tuple(params["radius"]))
    if "sigma" not in params:
        raise ValueError(f"{name} needs sigma (or radius) to give an overlap")
    return tuple(
        gaussian_depth(float(s), float(params.get("truncate", TRUNCATE)))
        for s in _as_tuple(params["sigma"])
    )


def _footprint_radii(
    name: str, params: dict[str, Any], default_size: int | None
) -> tuple[int, ...]:
    footprint = params.get("footprint", params.get("structure"))
    if footprint is not None:
        return tuple(int(n) // 2 for n in np.shape(footprint))
    if params.get("radius") is not None:
        return tuple(int(r) for r in _as_tuple(params["radius"]))
    size = params.get("size", default_size)
    if size is None:
        raise ValueError(f"{name} needs size, footprint or radius to give an overlap")
    return tuple(int(s) // 2 for s in _as_tuple(size))


# ---------------------------------------------------------------- tabulating


def overlap_sweep(
    func: Filter,
    image: ArrayLike,
    chunk_sizes: Sequence[Chunks],
    depths: Sequence[int],
    reference: np.ndarray | None = None,
) -> pd.DataFrame:
    """Tabulate error, time and extra work against tile size and overlap.

    Parameters
    ----------
    func : callable
        ``func(array) -> array`` of the same shape.
    image : array_like
        The input image, in memory.
    chunk_sizes : sequence
        Tile sizes (each an int or a tuple per axis).
    depths : sequence of int
        Overlaps in pixels. Combinations with an overlap larger than the tile
        are left out (a tile can only borrow from its direct neighbours).
    reference : numpy.ndarray, optional
        ``func(image)``, when already computed.

    Returns
    -------
    pandas.DataFrame
        One row per (tile size, depth) with columns ``chunk_size``,
        ``depth``, ``n_tiles``, ``max_abs_error``, ``rms_error``,
        ``fraction_differing``, ``signed_sum``, ``seconds`` (computing the
        tiled result on the current dask scheduler), ``whole_image_seconds``
        and ``extra_pixel_fraction`` (pixels read by all tiles, overlaps
        included, over the image size, minus 1).

    Examples
    --------
    >>> import scipy.ndimage as ndi
    >>> image = np.random.default_rng(0).random((32, 32))
    >>> table = overlap_sweep(ndi.uniform_filter, image, [8, 16], [0, 1])
    >>> table[["chunk_size", "depth", "max_abs_error"]].shape
    (4, 3)
    """
    image = np.asarray(image)
    started = time.perf_counter()
    if reference is None:
        reference = func(image)
    whole_seconds = time.perf_counter() - started
    rows = []
    for chunk_size in chunk_sizes:
        grid_chunks = da.core.normalize_chunks(chunk_size, image.shape, dtype=image.dtype)
        limit = _largest_depth(grid_chunks, single_tile_ok=True)
        for depth in depths:
            if depth > limit:
                continue
            started = time.perf_counter()
            tiled = tiled_apply(func, image, grid_chunks, depth, dtype=reference.dtype)
            result = tiled.compute()
            seconds = time.perf_counter() - started
            error = compare_results(result, reference)
            rows.append(
                {
                    "chunk_size": chunk_size,
                    "depth": int(depth),
                    "n_tiles": int(np.prod([len(c) for c in grid_chunks])),
                    **error._asdict(),
                    "seconds": seconds,
                    "whole_image_seconds": whole_seconds,
                    "extra_pixel_fraction": extra_pixel_fraction(grid_chunks, depth),
                }
            )
    return pd.DataFrame(rows)


def _pixels_read(tile_px: Any, depth_px: Any, neighbour_sides: int) -> Any:
    """The one overlap-cost rule: a tile reads itself and ``depth`` per side with a neighbour."""
    return tile_px + neighbour_sides * depth_px


def extra_pixel_fraction(chunks: GridChunks, depth: Depth) -> float:
    """Fraction of extra pixels that tiles with overlap read, beyond the image.

    With ``boundary="none"`` a tile gains ``depth`` pixels on each side that
    has a neighbour (:func:`overlap_cost_factor` is the same rule for a tile
    with neighbours all round); the tiles form a grid, so the pixels read are
    the product over axes of the summed extended tile lengths.

    Parameters
    ----------
    chunks : tuple of tuple of int
        Normalised dask chunks.
    depth : int or sequence of int
        Overlap per side, one value or one per axis.

    Returns
    -------
    float

    Examples
    --------
    >>> extra_pixel_fraction(((50, 50), (100,)), 10)
    0.2
    """
    depth_per_axis = _depth_per_axis(depth, chunks)
    read, size = 1, 1
    for axis, sizes in enumerate(chunks):
        last = len(sizes) - 1
        read *= sum(
            _pixels_read(tile, depth_per_axis[axis], (index > 0) + (index < last))
            for index, tile in enumerate(sizes)
        )
        size *= sum(sizes)
    return (read - size) / size if size else 0.0


def overlap_cost_factor(
    tile_px: ArrayLike, depth_px: ArrayLike, ndim: int = 2
) -> float | np.ndarray:
    """Pixels an inner tile reads with its margin, over the pixels it delivers.

    Parameters
    ----------
    tile_px : int or array_like
        Tile edge length in pixels (> 0).
    depth_px : int or array_like
        Margin on each side in pixels (>= 0).
    ndim : int
        Number of tiled axes.

    Returns
    -------
    float or numpy.ndarray
        ``((tile_px + 2 * depth_px) / tile_px) ** ndim``: the rule of
        ``extra_pixel_fraction`` for a tile with neighbours on every side,
        which the whole tiling approaches as the tiles get many.

    Raises
    ------
    ValueError
        For a tile size <= 0 or a negative margin.

    Examples
    --------
    >>> round(float(overlap_cost_factor(32, 10)), 2)
    2.64
    >>> round(float(overlap_cost_factor(32, 20)), 2)
    5.06
    """
    tile = np.asarray(tile_px, dtype=np.float64)
    depth = np.asarray(depth_px, dtype=np.float64)
    if np.any(tile <= 0):
        raise ValueError(f"tile_px must be > 0, got {tile_px!r}")
    if np.any(depth < 0):
        raise ValueError(f"depth_px must be >= 0, got {depth_px!r}")
    factor = (_pixels_read(tile, depth, 2) / tile) ** ndim
    return float(factor) if factor.ndim == 0 else factor


# ---------------------------------------------------------------- helpers


def _depth_per_axis(depth: Depth, chunks: GridChunks) -> dict[int, int]:
    """Per-axis depth; 0 where an axis is a single tile (nothing to share)."""
    ndim = len(chunks)
    values = _as_tuple(depth)
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        raise ValueError(f"depth {depth!r} must be one value or {ndim} values (one per axis)")
    result = {}
    for axis, (value, sizes) in enumerate(zip(values, chunks, strict=True)):
        if int(value) != value or value < 0:
            raise ValueError(f"depth must be non-negative integers, got {depth!r}")
        if len(sizes) > 1 and value > min(sizes):
            raise ValueError(
                f"depth {int(value)} along axis {axis} is larger than the smallest "
                f"chunk {min(sizes)} there (chunks {_chunk_summary(chunks)}): use "
                "larger chunks or a smaller depth"
            )
        result[axis] = int(value) if len(sizes) > 1 else 0
    return result


def _largest_depth(chunks: GridChunks, single_tile_ok: bool = False) -> int:
    """Largest overlap a tiling allows: its smallest tile along split axes."""
    split = [min(sizes) for sizes in chunks if len(sizes) > 1]
    if not split:
        if single_tile_ok:
            return np.iinfo(np.int64).max
        raise ValueError(
            f"chunks {_chunk_summary(chunks)} make a single tile: tiles need no overlap, "
            "choose smaller chunks"
        )
    return min(split)


def _chunk_summary(chunks: GridChunks) -> str:
    return (
        "("
        + ", ".join(
            f"{len(sizes)} x {max(sizes)}" if len(set(sizes)) == 1 else f"{sizes}"
            for sizes in chunks
        )
        + ")"
    )


__all__ = [
    "KNOWN_FILTERS",
    "TRUNCATE",
    "Boundary",
    "Chunks",
    "Depth",
    "Filter",
    "FilterName",
    "TileError",
    "compare_results",
    "extra_pixel_fraction",
    "gaussian_depth",
    "minimal_overlap",
    "overlap_cost_factor",
    "overlap_for",
    "overlap_sweep",
    "tile_error",
    "tiled_apply",
]
