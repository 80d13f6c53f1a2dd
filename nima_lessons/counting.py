"""Counting nuclei tile by tile, and how wrong each way of combining the tiles is.

Four strategies (naive, edge_half, centroid, global) are compared with the whole-image count
and the generator's ground truth, exactly rather than by eye.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args, overload

import dask.array as da
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.ndimage as ndi
from dask.array.overlap import ensure_minimum_chunksize

from nima_lessons.labels import label as tiled_label
from nima_lessons.labels import label_structure
from nima_lessons.pipeline._segment import split_touching
from nima_lessons.tiling import Chunks

#: Default grey-level threshold of the counting functions: pixels brighter than
#: this are nucleus. A fixed per-pixel threshold (rather than one computed from
#: the data) gives the same answer on a tile as on the whole image; the lessons'
#: synthetic nuclei are made so that it segments them exactly.
NUCLEI_THRESHOLD = 60

#: A strategy of :func:`count_tiled`.
Strategy = Literal["naive", "edge_half", "centroid", "global"]
#: The strategies of :func:`count_tiled`, from the crudest to the exact ones.
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)

# What dask hands a block function as ``block_info``: per input (0, 1...) and for the
# output (None), the block's place in the chunk grid (``"chunk-location"``,
# ``"num-chunks"``, ``"array-location"``...).
_BlockInfo = Mapping[int | None, Mapping[str, Any]]

#: Default overlap of the "centroid" strategy. Generated nuclei are ellipses
#: at most 30 px across; their blurred edge adds about 1 px on each side above
#: the threshold, so no nucleus spans more than 33 px along an axis.
DEFAULT_DEPTH_PX = 34

#: Default seed depth of the watershed that splits touching nuclei: the
#: pipeline's (nima's) h-maxima depth, in pixels of distance to the background.
SEED_DEPTH_PX = 2.0


# ---------------------------------------------------------------- one tile


def segment_nuclei(
    tile: npt.ArrayLike,
    threshold: float = NUCLEI_THRESHOLD,
    connectivity: int = 1,
    watershed: bool = False,
    seed_depth_px: float = SEED_DEPTH_PX,
) -> tuple[np.ndarray, int]:
    """Segment the nuclei of one tile: fixed threshold, labelling, optional watershed.

    The threshold is a fixed grey level, not one computed from the tile (as
    Otsu's would be): a tile holding only background has no meaningful
    threshold of its own, and a per-tile threshold would segment the same
    pixel differently in different tiles.

    Parameters
    ----------
    tile : array_like
        A 2-D (or n-D) grey-level image.
    threshold : float
        Pixels brighter than this are nucleus (:data:`NUCLEI_THRESHOLD` of the
        generated images by default).
    connectivity : int
        See :func:`nima_lessons.labels.label_structure`.
    watershed : bool
        Split touching nuclei with the distance-transform watershed of the
        pipeline (:func:`nima_lessons.pipeline.split_touching`,
        h-maxima seeds, flooding with ``connectivity``). The generated nuclei
        never touch, so it changes nothing there; note that it is not
        pixel-local, so tiles then need overlap to agree.
    seed_depth_px : float
        How far (in pixels of distance to the background) a watershed seed
        must rise above the saddle joining it to a higher one: two touching
        nuclei are split only when the neck between them is at least this much
        narrower than each (in radius). Larger values split less.

    Returns
    -------
    labels : numpy.ndarray of int32
        0 for background, 1..n for nuclei.
    n : int
        Number of nuclei.

    Examples
    --------
    >>> tile = np.zeros((6, 6), dtype=np.uint8)
    >>> tile[1:3, 1:3] = tile[4:, 4:] = 200
    >>> segment_nuclei(tile)[1]
    2
    """
    tile = np.asarray(tile)
    mask = tile > threshold
    structure = label_structure(tile.ndim, connectivity)
    labels, n = ndi.label(mask, structure=structure)
    if watershed and n:
        labels = split_touching(mask, seed_depth_px, connectivity)
        n = int(labels.max())
    return labels.astype(np.int32, copy=False), int(n)


def count_nuclei(
    tile: npt.ArrayLike,
    threshold: float = NUCLEI_THRESHOLD,
    connectivity: int = 1,
    watershed: bool = False,
    seed_depth_px: float = SEED_DEPTH_PX,
) -> int:
    """Count the nuclei of one tile (or of a whole image in memory).

    Parameters
    ----------
    tile : array_like
        A grey-level image.
    threshold, connectivity, watershed, seed_depth_px
        See :func:`segment_nuclei`.

    Returns
    -------
    int

    Examples
    --------
    >>> from nima_lessons.course.synthetic import nuclei_image
    >>> nuclei = nuclei_image((300, 400), seed=3)
    >>> count_nuclei(nuclei.image) == nuclei.count
    True
    """
    return segment_nuclei(tile, threshold, connectivity, watershed, seed_depth_px)[1]


# ---------------------------------------------------------------- per-tile kernels


def _count_block(
    block: np.ndarray,
    threshold: float,
    connectivity: int,
    watershed: bool,
    seed_depth_px: float,
) -> np.ndarray:
    count = count_nuclei(block, threshold, connectivity, watershed, seed_depth_px)
    return np.full((1,) * block.ndim, count, dtype=np.int64)


def _edge_half_block(
    block: np.ndarray, threshold: float, connectivity: int, *, block_info: _BlockInfo
) -> np.ndarray:
    """Objects inside count 1, objects cut by a tile border count 1/2."""
    labels, n = segment_nuclei(block, threshold, connectivity)
    location = block_info[0]["chunk-location"]
    n_chunks = block_info[0]["num-chunks"]
    cut = set()
    for axis in range(block.ndim):
        # Only sides shared with another tile cut objects; the image border
        # does not.
        if location[axis] > 0:
            cut.update(np.unique(np.take(labels, 0, axis=axis)).tolist())
        if location[axis] < n_chunks[axis] - 1:
            cut.update(np.unique(np.take(labels, -1, axis=axis)).tolist())
    cut.discard(0)
    return np.full((1,) * block.ndim, n - len(cut) / 2.0, dtype=np.float64)


def _centroid_block(
    block: np.ndarray,
    threshold: float,
    connectivity: int,
    core_depth: tuple[int, ...],
    *,
    block_info: _BlockInfo,
) -> np.ndarray:
    """Count the objects of an overlapped tile whose centroid lies in its core.

    The core is half-open, ``[start, stop)`` along each axis: a centroid
    exactly on the boundary between two cores belongs to the later tile, so
    every centroid is in exactly one core. The test is done in integers
    (sum of coordinates against ``start * area`` and ``stop * area``), so no
    rounding can move a centroid across a boundary.
    """
    labels, n = segment_nuclei(block, threshold, connectivity)
    location = block_info[0]["chunk-location"]
    n_chunks = block_info[0]["num-chunks"]
    if n == 0:
        return np.zeros((1,) * block.ndim, dtype=np.int64)
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1)[1:].astype(np.int64)
    inside = np.ones(n, dtype=bool)
    for axis in range(block.ndim):
        start = core_depth[axis] if location[axis] > 0 else 0
        after = core_depth[axis] if location[axis] < n_chunks[axis] - 1 else 0
        stop = block.shape[axis] - after
        shape = [1] * block.ndim
        shape[axis] = block.shape[axis]
        coordinate = np.broadcast_to(
            np.arange(block.shape[axis]).reshape(shape), block.shape
        ).ravel()
        coordinate_sum = np.bincount(flat, weights=coordinate, minlength=n + 1)[1:]
        coordinate_sum = np.rint(coordinate_sum).astype(np.int64)
        inside &= (coordinate_sum >= start * area) & (coordinate_sum < stop * area)
    return np.full((1,) * block.ndim, np.count_nonzero(inside), dtype=np.int64)


# ---------------------------------------------------------------- lazy layer


def count_map(
    image: np.ndarray | da.Array,
    threshold: float = NUCLEI_THRESHOLD,
    connectivity: int = 1,
    watershed: bool = False,
    chunks: Chunks | None = None,
    seed_depth_px: float = SEED_DEPTH_PX,
) -> da.Array:
    """Count the nuclei of every tile, lazily: one number per chunk.

    Parameters
    ----------
    image : dask.array.Array or numpy.ndarray
        The image; its chunks are the tiles.
    threshold, connectivity, watershed
        See :func:`segment_nuclei`.
    chunks : optional
        Tile size, to rechunk ``image`` (or to wrap a numpy array) first.
    seed_depth_px : float
        See :func:`segment_nuclei`; used with ``watershed=True`` only.

    Returns
    -------
    dask.array.Array
        int64, one element per tile: shape ``image.numblocks``, chunks of 1, so
        the repr shows the true (small) shape of the result rather than the
        image's.

    Examples
    --------
    >>> import dask.array as da
    >>> from nima_lessons.course.synthetic import nuclei_image
    >>> nuclei = nuclei_image((400, 600), seed=0)
    >>> tiles = count_map(da.from_array(nuclei.image, chunks=200))
    >>> tiles.shape
    (2, 3)
    """
    array = _as_tiled(image, chunks)
    return da.map_blocks(
        _count_block,
        array,
        threshold,
        connectivity,
        watershed,
        seed_depth_px,
        **_one_per_tile(array, np.int64),
    )


@overload
def count_tiled(
    image: np.ndarray | da.Array,
    strategy: Strategy,
    depth: int | None = ...,
    threshold: float = ...,
    connectivity: int = ...,
    chunks: Chunks | None = ...,
    compute: Literal[False] = ...,
) -> da.Array: ...
@overload
def count_tiled(
    image: np.ndarray | da.Array,
    strategy: Strategy,
    depth: int | None = ...,
    threshold: float = ...,
    connectivity: int = ...,
    chunks: Chunks | None = ...,
    *,
    compute: Literal[True],
) -> int | float: ...
@overload
def count_tiled(
    image: np.ndarray | da.Array,
    strategy: Strategy,
    depth: int | None = ...,
    threshold: float = ...,
    connectivity: int = ...,
    chunks: Chunks | None = ...,
    compute: bool = ...,
) -> da.Array | int | float: ...
def count_tiled(
    image: np.ndarray | da.Array,
    strategy: Strategy,
    depth: int | None = None,
    threshold: float = NUCLEI_THRESHOLD,
    connectivity: int = 1,
    chunks: Chunks | None = None,
    compute: bool = False,
) -> da.Array | int | float:
    """Count nuclei tile by tile with one of four strategies.

    Parameters
    ----------
    image : dask.array.Array or numpy.ndarray
        The image; its chunks are the tiles.
    strategy : {"naive", "edge_half", "centroid", "global"}
        ``"naive"``: the sum of the per-tile counts; a nucleus cut by tile
        borders is counted once per tile it touches (over-counts).
        ``"edge_half"``: the mean of the counts with and without the objects
        touching a tile border shared with another tile (each cut piece counts
        1/2); exact only when every cut nucleus is cut in exactly two.
        ``"centroid"``: tiles overlap by ``depth``; an object counts in the
        tile whose (half-open) core holds its centroid. Exact when ``depth``
        is at least the largest nucleus extent. Tiles smaller than ``depth``
        (often the last one) are merged into their neighbour first, as
        ``map_overlap`` does.
        ``"global"``: the tiled connected components of
        :func:`nima_lessons.labels.label`, then their number. Exact.
    depth : int, optional
        Overlap of the centroid strategy, in pixels (default
        :data:`DEFAULT_DEPTH_PX`); ignored by the others.
    threshold, connectivity
        See :func:`segment_nuclei`.
    chunks : optional
        Tile size, to rechunk ``image`` (or to wrap a numpy array) first.
    compute : bool
        Return a number instead of the lazy count.

    Returns
    -------
    dask.array.Array or int or float
        The count: a lazy 0-d dask array by default (int64; float64 for
        ``"edge_half"``), so that several counts can be computed together
        with ``dask.compute``; a Python number with ``compute=True``.

    Raises
    ------
    ValueError
        For an unknown strategy, or a negative depth.

    Examples
    --------
    >>> from nima_lessons.course.synthetic import nuclei_image
    >>> nuclei = nuclei_image((400, 600), seed=0)
    >>> tiled = count_tiled(nuclei.image, "global", chunks=100)
    >>> int(tiled) == nuclei.count < int(count_tiled(nuclei.image, "naive", chunks=100))
    True
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: expected one of {STRATEGIES}")
    array = _as_tiled(image, chunks)
    if strategy == "naive":
        total = count_map(array, threshold, connectivity).sum()
    elif strategy == "edge_half":
        total = da.map_blocks(
            _edge_half_block,
            array,
            threshold,
            connectivity,
            **_one_per_tile(array, np.float64),
        ).sum()
    elif strategy == "centroid":
        total = _centroid_counts(array, depth, threshold, connectivity).sum()
    else:
        total = tiled_label(array > threshold, connectivity)[1]
    if not compute:
        return total
    value = total.compute()
    return float(value) if strategy == "edge_half" else int(value)


def _centroid_counts(
    array: da.Array, depth: int | None, threshold: float, connectivity: int
) -> da.Array:
    depth = DEFAULT_DEPTH_PX if depth is None else depth
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise ValueError(f"depth must be a non-negative integer, got {depth!r}")
    # A tile can only borrow from its direct neighbours: like map_overlap,
    # merge tiles smaller than the depth (an image's last tile, usually)
    # into their neighbour.
    array = array.rechunk(
        tuple(
            ensure_minimum_chunksize(depth, sizes) if sum(sizes) > depth else (sum(sizes),)
            for sizes in array.chunks
        )
    )
    depth_per_axis = [int(depth) if len(sizes) > 1 else 0 for sizes in array.chunks]
    return da.map_overlap(
        _centroid_block,
        array,
        threshold=threshold,
        connectivity=connectivity,
        core_depth=tuple(depth_per_axis),
        depth=dict(enumerate(depth_per_axis)),
        boundary="none",
        trim=False,
        allow_rechunk=False,
        **_one_per_tile(array, np.int64),
    )


def _one_per_tile(array: da.Array, dtype: type[np.generic]) -> dict[str, Any]:
    """``map_blocks`` keywords of a block function giving one number per tile of ``array``.

    The result has shape ``array.numblocks`` in chunks of 1, so its repr shows
    its true (small) shape rather than the image's.
    """
    return {
        "chunks": tuple((1,) * n for n in array.numblocks),
        "dtype": dtype,
        "meta": np.empty((0,) * array.ndim, dtype=dtype),
    }


def _as_tiled(image: object, chunks: Chunks | None) -> da.Array:
    if isinstance(image, da.Array):
        return image if chunks is None else image.rechunk(chunks)
    if isinstance(image, np.ndarray):
        return da.from_array(image, chunks="auto" if chunks is None else chunks)
    raise TypeError(f"image must be a dask or numpy array, got {type(image).__name__}")


# ---------------------------------------------------------------- comparing


def compare_strategies(
    image: np.ndarray | da.Array,
    chunk_sizes: Sequence[Chunks] = (100, 250, 500),
    truth: int | None = None,
    strategies: Sequence[Strategy] = STRATEGIES,
    depth: int | None = None,
    threshold: float = NUCLEI_THRESHOLD,
    whole_image_count: int | None = None,
) -> pd.DataFrame:
    """Count with every strategy and tile size and measure the errors.

    Parameters
    ----------
    image : dask.array.Array or numpy.ndarray
        The nuclei image.
    chunk_sizes : sequence
        Tile sizes (int or tuple per axis) to compare.
    truth : int, optional
        The true count (the generator's); adds error columns against it.
    strategies : sequence of str
        Subset of :data:`STRATEGIES`.
    depth : int, optional
        Overlap of the centroid strategy (default :data:`DEFAULT_DEPTH_PX`).
    threshold : float
        See :func:`segment_nuclei`.
    whole_image_count : int, optional
        The whole-image count when already known; otherwise the image is
        loaded and counted in memory once.

    Returns
    -------
    pandas.DataFrame
        One row per (strategy, tile size): ``strategy``, ``chunk_size``,
        ``n_tiles``, ``count`` (a float column: "edge_half" counts halves),
        ``seconds``, ``whole_image_count``, ``error``
        (count minus whole-image count), ``relative_error`` (error over the
        whole-image count), and when ``truth`` is given ``truth``,
        ``error_vs_truth`` and ``relative_error_vs_truth``.

    Raises
    ------
    ValueError
        For an unknown strategy.

    Examples
    --------
    >>> from nima_lessons.course.synthetic import nuclei_image
    >>> nuclei = nuclei_image((400, 600), seed=0)
    >>> table = compare_strategies(nuclei.image, [100, 200], truth=nuclei.count)
    >>> bool((table.loc[table.strategy == "global", "error"] == 0).all())
    True
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}: expected some of {STRATEGIES}")
    if whole_image_count is None:
        whole_image_count = count_nuclei(np.asarray(image), threshold)
    rows = []
    for chunk_size in chunk_sizes:
        array = _as_tiled(image, chunk_size)
        for strategy in strategies:
            started = time.perf_counter()
            count = count_tiled(array, strategy, depth=depth, threshold=threshold, compute=True)
            seconds = time.perf_counter() - started
            row = {
                "strategy": strategy,
                "chunk_size": chunk_size,
                "n_tiles": int(np.prod(array.numblocks)),
                "count": count,
                "seconds": seconds,
                "whole_image_count": whole_image_count,
                "error": count - whole_image_count,
                "relative_error": _relative(count - whole_image_count, whole_image_count),
            }
            if truth is not None:
                row["truth"] = truth
                row["error_vs_truth"] = count - truth
                row["relative_error_vs_truth"] = _relative(count - truth, truth)
            rows.append(row)
    return pd.DataFrame(rows)


def _relative(error: float, reference: float) -> float:
    if reference == 0:
        return 0.0 if error == 0 else float("inf")
    return error / reference


__all__ = [
    "DEFAULT_DEPTH_PX",
    "NUCLEI_THRESHOLD",
    "SEED_DEPTH_PX",
    "STRATEGIES",
    "Strategy",
    "compare_strategies",
    "count_map",
    "count_nuclei",
    "count_tiled",
    "segment_nuclei",
]
