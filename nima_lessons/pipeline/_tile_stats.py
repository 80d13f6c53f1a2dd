"""Exact whole-plane statistics of planes split into tiles, from per-tile summaries.

A statistic of a whole plane (its minimum, a percentile, a histogram, the mean of
the pixels above a threshold) is computed here without ever holding the plane:
every tile reports a small summary, and the summaries are merged. An algorithm
that needs several rounds (an order statistic narrowed down bin by bin, an
iterative threshold) is written as a generator that yields the summaries it needs
next and receives them merged; :func:`solve` runs the generators of all planes of
an image together, so that one pass over the tiles serves every plane.

Every answer is the one numpy gives on the whole plane: counts, minima, maxima,
order statistics and histograms exactly, sums to floating-point rounding (they are
added in a different order).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Generator, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

import dask
import dask.array as da
import numpy as np
import numpy.typing as npt
from dask.delayed import Delayed

#: Bins of one narrowing round of an order statistic (2**12: at most six rounds
#: separate any two float64 values).
RANK_BINS = 4096
#: Largest number of values gathered in one place to finish an order statistic.
GATHER_LIMIT = 1 << 21

Plane = Hashable
#: The name of a plane, as the caller chooses it.
PlaneT = TypeVar("PlaneT", bound=Hashable)
#: What an algorithm returns.
AnswerT = TypeVar("AnswerT")
#: A plane's algorithm: yields lists of :class:`Request`, receives their merged
#: results, returns its answer.
Algorithm: TypeAlias = Generator[list["Request"], list[Any], AnswerT]
#: Index of a plane along an image's leading axes.
PlaneIndex = tuple[int, ...]
#: A task of a pass (see :func:`row_batches`).
TaskT = TypeVar("TaskT")


def tile_values(tile: np.ndarray) -> np.ndarray:
    """The finite pixels of a tile as a flat float64 array (what whole-plane steps use).

    Examples
    --------
    >>> tile_values(np.array([[1, np.nan], [np.inf, 2]])).tolist()
    [1.0, 2.0]
    """
    values = np.asarray(tile, dtype=np.float64).ravel()
    finite = np.isfinite(values)
    return values if finite.all() else values[finite]


class TileValues(np.ndarray):
    """A tile's finite values, remembering their shifted copy (``values - shift``).

    Several requests of one pass read the same shifted values: they are made once.
    """

    def shifted(self, shift: float) -> np.ndarray:
        cache = self.__dict__.setdefault("_shifted", {})
        if shift not in cache:
            cache.clear()  # one shift at a time: memory of one more tile at most
            cache[shift] = np.subtract(self, shift).view(np.ndarray)
        return cache[shift]


# ---------------------------------------------------------------- selections


@dataclasses.dataclass(frozen=True)
class Finite:
    """Every finite pixel."""

    def select(self, values: np.ndarray) -> np.ndarray:
        return values


@dataclasses.dataclass(frozen=True)
class Below:
    """Finite pixels ``v < threshold`` (as ``values[values < threshold]``)."""

    threshold: float

    def select(self, values: np.ndarray) -> np.ndarray:
        return values[values < self.threshold]


@dataclasses.dataclass(frozen=True)
class Within:
    """Finite pixels with ``abs(v - centre) <= half_width``, evaluated as numpy does."""

    centre: float
    half_width: float

    def select(self, values: np.ndarray) -> np.ndarray:
        return values[np.abs(values - self.centre) <= self.half_width]


Selection = Finite | Below | Within


# ---------------------------------------------------------------- order keys


def order_keys(values: np.ndarray) -> np.ndarray:
    """Map float64 values to uint64 keys in the same order (an exact, monotone map).

    The IEEE 754 bit pattern of a non-negative float grows with its value;
    flipping the sign bit of those and every bit of negative ones gives keys
    whose unsigned order is the order of the values (-0.0 sorts just below 0.0).

    Examples
    --------
    >>> keys = order_keys(np.array([-2.0, -0.5, 0.0, 1e-300, 3.0]))
    >>> bool(np.all(np.diff(keys.astype(object)) > 0))
    True
    """
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    sign = np.uint64(1 << 63)
    return np.where(bits & sign, ~bits, bits | sign)


def key_value(key: int) -> float:
    """The float64 value of an order key (inverse of :func:`order_keys`)."""
    unsigned = np.uint64(key)
    sign = np.uint64(1 << 63)
    bits = unsigned ^ sign if unsigned & sign else ~unsigned
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


# ---------------------------------------------------------------- requests


class Request:
    """A summary each tile computes from its finite values, and how to merge them."""

    def tile(self, values: np.ndarray) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def merge(self, parts: list[Any]) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Extent(Request):
    """Count, smallest and largest order key of the selected values."""

    selection: Selection = Finite()

    def tile(self, values: np.ndarray) -> Any:
        chosen = self.selection.select(values)
        if chosen.size == 0:
            return (0, None, None)
        # -0.0 and 0.0 are equal to min and max but have two keys: take the outer one.
        low, high = chosen.min(), chosen.max()
        keys = order_keys(np.array([-0.0 if low == 0 else low, 0.0 if high == 0 else high]))
        return (chosen.size, int(keys[0]), int(keys[1]))

    def merge(self, parts: list[Any]) -> Any:
        present = [part for part in parts if part[0]]
        if not present:
            return (0, None, None)
        return (
            sum(part[0] for part in present),
            min(part[1] for part in present),
            max(part[2] for part in present),
        )


@dataclasses.dataclass(frozen=True)
class SumCount(Request):
    """Count and sum of the selected values minus ``shift``."""

    selection: Selection = Finite()
    shift: float = 0.0

    def tile(self, values: np.ndarray) -> Any:
        chosen = self.selection.select(values)
        if self.shift:
            chosen = chosen - self.shift
        return (chosen.size, float(np.sum(chosen)))

    def merge(self, parts: list[Any]) -> Any:
        return (sum(p[0] for p in parts), _fsum(p[1] for p in parts))


@dataclasses.dataclass(frozen=True)
class SquaredDeviation(Request):
    """Sum of ``abs(v - mean) ** 2`` over the selected values (numpy's variance sum)."""

    selection: Selection
    mean: float

    def tile(self, values: np.ndarray) -> Any:
        deviation = self.selection.select(values) - self.mean
        return float(np.sum(deviation * deviation))

    def merge(self, parts: list[Any]) -> Any:
        return _fsum(parts)


@dataclasses.dataclass(frozen=True)
class SplitSums(Request):
    """Counts and sums of ``v - shift`` above and not above ``threshold``.

    ``v - shift > threshold`` is evaluated as numpy does on the shifted plane.
    """

    shift: float
    threshold: float

    def tile(self, values: np.ndarray) -> Any:
        shifted = _shifted(values, self.shift)
        above = shifted > self.threshold
        n_above = int(np.count_nonzero(above))
        sum_above = float(np.sum(shifted, where=above))
        sum_below = float(np.sum(shifted, where=np.logical_not(above, out=above)))
        return (n_above, sum_above, shifted.size - n_above, sum_below)

    def merge(self, parts: list[Any]) -> Any:
        return (
            sum(p[0] for p in parts),
            _fsum(p[1] for p in parts),
            sum(p[2] for p in parts),
            _fsum(p[3] for p in parts),
        )


@dataclasses.dataclass(frozen=True)
class ShiftedBetween(Request):
    """Count, min and max of the shifted values ``v - shift`` in ``(low, high]``."""

    shift: float
    low: float
    high: float

    def tile(self, values: np.ndarray) -> Any:
        shifted = _shifted(values, self.shift)
        inside = shifted[(shifted > self.low) & (shifted <= self.high)]
        if inside.size == 0:
            return (0, None, None)
        return (inside.size, float(inside.min()), float(inside.max()))

    def merge(self, parts: list[Any]) -> Any:
        present = [p for p in parts if p[0]]
        if not present:
            return (0, None, None)
        return (sum(p[0] for p in present), min(p[1] for p in present), max(p[2] for p in present))


@dataclasses.dataclass(frozen=True)
class ShiftedNeighbours(Request):
    """Largest shifted value below ``value`` and smallest above it (None if none)."""

    shift: float
    value: float

    def tile(self, values: np.ndarray) -> Any:
        shifted = _shifted(values, self.shift)
        lower = shifted[shifted < self.value]
        upper = shifted[shifted > self.value]
        return (
            float(lower.max()) if lower.size else None,
            float(upper.min()) if upper.size else None,
        )

    def merge(self, parts: list[Any]) -> Any:
        lower = [p[0] for p in parts if p[0] is not None]
        upper = [p[1] for p in parts if p[1] is not None]
        return (max(lower) if lower else None, min(upper) if upper else None)


@dataclasses.dataclass(frozen=True)
class ShiftedMinGap(Request):
    """Smallest difference between distinct shifted values within each tile (min over tiles)."""

    shift: float

    def tile(self, values: np.ndarray) -> Any:
        distinct = np.unique(_shifted(values, self.shift))
        return float(np.diff(distinct).min()) if distinct.size > 1 else np.inf

    def merge(self, parts: list[Any]) -> Any:
        return min(parts, default=np.inf)


@dataclasses.dataclass(frozen=True)
class ShiftedDistinct(Request):
    """The distinct shifted values of the whole plane, sorted (only for rare fallbacks)."""

    shift: float

    def tile(self, values: np.ndarray) -> Any:
        return np.unique(_shifted(values, self.shift))

    def merge(self, parts: list[Any]) -> Any:
        return np.unique(np.concatenate(parts)) if parts else np.empty(0)


@dataclasses.dataclass(frozen=True)
class Histogram(Request):
    """``numpy.histogram(values, bins, range=(low, high))`` counts, summed over tiles.

    Every value is binned by the same arithmetic whatever tile it is in, so the
    sum is the histogram of the whole plane, exactly.
    """

    low: float
    high: float
    bins: int

    def tile(self, values: np.ndarray) -> Any:
        return np.histogram(values, bins=self.bins, range=(self.low, self.high))[0]

    def merge(self, parts: list[Any]) -> Any:
        return np.sum(parts, axis=0)


@dataclasses.dataclass(frozen=True)
class RankBins(Request):
    """Counts of the selected values with keys in ``[low, high]``, in ``bins`` equal key ranges.

    Bin ``(key - low) // width``: an exact, monotone split, so that the bin
    holding a given rank is a key range to narrow further (at most six rounds
    separate any two float64 values).
    """

    selection: Selection
    low: int
    high: int
    bins: int

    @property
    def width(self) -> int:
        return (self.high - self.low) // self.bins + 1

    def bin_range(self, index: int) -> tuple[int, int]:
        """The keys of bin ``index``."""
        start = self.low + index * self.width
        return start, min(start + self.width - 1, self.high)

    def tile(self, values: np.ndarray) -> Any:
        keys = order_keys(_between(self.selection.select(values), self.low, self.high))
        keys = keys[(keys >= np.uint64(self.low)) & (keys <= np.uint64(self.high))]
        index = ((keys - np.uint64(self.low)) // np.uint64(self.width)).astype(np.intp)
        return np.bincount(index, minlength=self.bins)

    def merge(self, parts: list[Any]) -> Any:
        return np.sum(parts, axis=0)


@dataclasses.dataclass(frozen=True)
class Gather(Request):
    """The selected values with keys in ``[low, high]``, sorted."""

    selection: Selection
    low: int
    high: int

    def tile(self, values: np.ndarray) -> Any:
        chosen = _between(self.selection.select(values), self.low, self.high)
        keys = order_keys(chosen)
        return chosen[(keys >= np.uint64(self.low)) & (keys <= np.uint64(self.high))]

    def merge(self, parts: list[Any]) -> Any:
        return np.sort(np.concatenate(parts)) if parts else np.empty(0)


def _shifted(values: np.ndarray, shift: float) -> np.ndarray:
    return values.shifted(shift) if isinstance(values, TileValues) else values - shift


def _between(values: np.ndarray, low: int, high: int) -> np.ndarray:
    """The values whose keys may lie in ``[low, high]``: a cheap float test first.

    Compared as floats, -0.0 and 0.0 are equal; the keys then tell them apart.
    """
    if low == 0 and high == LAST_KEY:
        return values
    inside = (values >= key_value(low)) & (values <= key_value(high))
    return values if inside.all() else values[inside]


def _fsum(values: Iterable[float]) -> float:
    # Correctly rounded: the merge adds no error of its own on top of the tiles'.
    import math

    return math.fsum(values)


# ---------------------------------------------------------------- passes


class Tiles:
    """The tiles of an image whose last two axes are (Y, X), ready for repeated passes.

    The graph is optimized once; every pass then computes only the summary
    tasks it asks for.

    Parameters
    ----------
    data : dask.array.Array
        The image.
    """

    def __init__(self, data: da.Array):
        self.shape = data.shape
        self.tile_shape = data.chunks[-2:]
        self.blocks = data.to_delayed(optimize_graph=True)
        starts = [np.cumsum((0, *sizes)) for sizes in data.chunks[:-2]]
        # For each block: the global plane index of each of its local planes.
        self.planes_of_block: dict[PlaneIndex, list[tuple[PlaneIndex, PlaneIndex]]] = {}
        for block_index in np.ndindex(*self.blocks.shape):
            ranges = [
                range(starts[axis][i], starts[axis][i + 1])
                for axis, i in enumerate(block_index[:-2])
            ]
            self.planes_of_block[block_index] = [
                (local, tuple(r[i] for r, i in zip(ranges, local, strict=True)))
                for local in np.ndindex(*[len(r) for r in ranges])
            ]

    def plane_indices(self) -> dict[PlaneIndex, PlaneIndex]:
        """Every plane (leading index), named by its own index."""
        return {index: index for index in np.ndindex(*self.shape[:-2])}


def run_pass(
    tiles: Tiles,
    requests: Mapping[PlaneT, Sequence[Request]],
    planes: Mapping[PlaneT, PlaneIndex],
) -> dict[PlaneT, list[Any]]:
    """Compute the requested summaries of every listed plane in one pass over the tiles.

    Parameters
    ----------
    tiles : Tiles
        The image.
    requests : mapping
        Plane name -> requests for that plane.
    planes : mapping
        Plane name -> its index along the leading axes of the image.

    Returns
    -------
    dict
        Plane name -> merged results, in the order of its requests.
    """
    wanted: dict[PlaneIndex, list[tuple[PlaneT, list[Request]]]] = {}
    for name, reqs in requests.items():
        if reqs:
            wanted.setdefault(planes[name], []).append((name, list(reqs)))
    if not wanted:
        return {}
    rows: dict[int, list[Delayed]] = {}
    for block_index, block_planes in tiles.planes_of_block.items():
        local = [
            (local_index, name, reqs)
            for local_index, global_index in block_planes
            for name, reqs in wanted.get(global_index, ())
        ]
        if local:
            block = tiles.blocks[block_index]
            task = dask.delayed(_summarize_block, pure=True)(block, local)
            rows.setdefault(block_index[-2], []).append(task)
    per_block: list[list[tuple[PlaneT, list[Any]]]] = []
    tile_pixels = max(np.prod(shape) for shape in itertools.product(*tiles.tile_shape))
    for batch in row_batches(list(rows.values()), tile_pixels):
        per_block += dask.compute(*batch)
    parts: dict[PlaneT, list[list[Any]]] = {name: [] for name in requests}
    for block_results in per_block:
        for name, summaries in block_results:
            parts[name].append(summaries)
    return {
        name: [request.merge([tile[i] for tile in parts[name]]) for i, request in enumerate(reqs)]
        for name, reqs in requests.items()
        if reqs
    }


#: Pixels of the tiles computed together in one batch of a pass: enough to keep the
#: workers busy and to share the overlaps of neighbouring tiles, few enough that what
#: dask holds for them (a few bytes per pixel) stays well under a gigabyte.
BATCH_PIXELS = 32 * 2**20


def row_batches(rows: list[list[TaskT]], tile_pixels: int) -> list[list[TaskT]]:
    """Split rows of tile tasks, in raster order, into batches computed one after the other.

    A pass computed in one go lets dask hold many of the plane's tiles at once
    (those that overlapping neighbours share): in batches of neighbouring tiles
    of :data:`BATCH_PIXELS` pixels in all, memory follows the batch, not the
    plane. Tiles at a batch's edge are recomputed for the next one.

    Examples
    --------
    >>> [len(batch) for batch in row_batches([[1] * 40, [2] * 40], tile_pixels=2**20)]
    [32, 32, 16]
    """
    size = max(4, BATCH_PIXELS // max(int(tile_pixels), 1))
    tasks = [task for row in rows for task in row]
    return [tasks[start : start + size] for start in range(0, len(tasks), size)]


def _summarize_block(
    block: np.ndarray, local: list[tuple[PlaneIndex, PlaneT, list[Request]]]
) -> list[tuple[PlaneT, list[Any]]]:
    """Summaries of the planes of one block (a task of :func:`run_pass`)."""
    out = []
    values_of: dict[PlaneIndex, TileValues] = {}
    for plane_index, name, requests in local:
        if plane_index not in values_of:
            values_of[plane_index] = tile_values(block[plane_index]).view(TileValues)
        values = values_of[plane_index]
        out.append((name, [request.tile(values) for request in requests]))
    return out


def solve(
    data: da.Array | Tiles,
    algorithms: Mapping[PlaneT, Algorithm[AnswerT]],
    planes: Mapping[PlaneT, PlaneIndex],
) -> dict[PlaneT, AnswerT]:
    """Run per-plane algorithms together, one shared pass over the tiles per round.

    Parameters
    ----------
    data : dask.array.Array or Tiles
        Image whose last two axes are (Y, X).
    algorithms : mapping
        Plane name -> generator that yields lists of :class:`Request`, receives
        the list of merged results, and returns the plane's answer.
    planes : mapping
        Plane name -> its index along the leading axes of ``data``.

    Returns
    -------
    dict
        Plane name -> answer.
    """
    tiles = data if isinstance(data, Tiles) else Tiles(data)
    answers: dict[PlaneT, AnswerT] = {}
    pending: dict[PlaneT, list[Request]] = {}
    running = dict(algorithms)
    for name, algorithm in running.items():
        _advance(name, algorithm, None, pending, answers)
    while pending:
        results = run_pass(tiles, pending, planes)
        current, pending = pending, {}
        for name in current:
            _advance(name, running[name], results[name], pending, answers)
    return answers


def _advance(
    name: PlaneT,
    algorithm: Algorithm[AnswerT],
    sent: list[Any] | None,
    pending: dict[PlaneT, list[Request]],
    answers: dict[PlaneT, AnswerT],
) -> None:
    """Send ``sent`` (None: start) to ``algorithm``; note its next requests or its answer."""
    try:
        requests = next(algorithm) if sent is None else algorithm.send(sent)
        while not requests:
            # An empty round needs no pass: answer it at once.
            requests = algorithm.send([])
        pending[name] = requests
    except StopIteration as done:
        answers[name] = done.value


# ---------------------------------------------------------------- algorithms


def extent(
    selection: Selection = Finite(),
) -> Algorithm[tuple[int, float | None, float | None]]:
    """Count, min and max (as floats; None when empty) of the selected values."""
    ((count, low, high),) = yield [Extent(selection)]
    if not count:
        return 0, None, None
    return count, key_value(low), key_value(high)


#: The largest order key.
LAST_KEY = (1 << 64) - 1


def order_statistics(
    selection: Selection,
    ranks_of: Callable[[int], Sequence[int]],
    known_extent: tuple[int, int, int] | None = None,
    at_most: int | None = None,
    within_keys: tuple[int, int | None] = (0, None),
) -> Algorithm[tuple[tuple[int, int, int], list[float]]]:
    """The values of chosen 0-based ranks among the selected values, exactly.

    Each round splits the key range still holding a rank into
    :data:`RANK_BINS` bins and keeps the bin holding it; once few values are
    left (or one value), they are gathered and sorted.

    Parameters
    ----------
    selection : Selection
        Which values.
    ranks_of : callable
        ``ranks_of(count)``: the ranks wanted among ``count`` selected values,
        each in ``[0, count)``.
    known_extent : tuple, optional
        ``(count, min key, max key)`` of the selection, if already known;
        otherwise it is counted in the first round, together with a first
        split of the whole key range.
    at_most : int, optional
        An upper bound of the count (the number of pixels), which lets the
        first round gather small selections at once.
    within_keys : tuple of int
        Order keys known to bound the selection (``None``: the largest key),
        which narrows the first round when the extent is not known.

    Returns
    -------
    tuple
        ``(extent, values)``: the selection's ``(count, min key, max key)``
        and one value per rank.
    """
    answered: dict[tuple[int, int], tuple[Gather | RankBins | None, Any]] | None = None
    if known_extent is None:
        bound = GATHER_LIMIT + 1 if at_most is None else at_most
        low = within_keys[0]
        high = LAST_KEY if within_keys[1] is None else within_keys[1]
        first = _narrowing(selection, low, high, bound)
        if first is None:  # a single key: its value is the answer, once counted
            (known_extent,) = yield [Extent(selection)]
            answered = {(low, high): (None, None)}
        else:
            known_extent, answer = yield [Extent(selection), first]
            answered = {(low, high): (first, answer)}
        start = (low, high, 0, bound)
    else:
        start = (known_extent[1], known_extent[2], 0, known_extent[0])
    count = known_extent[0]
    ranks = list(ranks_of(count))
    for rank in ranks:
        if not 0 <= rank < count:
            raise ValueError(f"rank {rank} is outside the {count} selected values")
    # Per rank: (low key, high key, values below low, at most how many in [low, high]).
    state = {rank: start for rank in ranks}
    found: dict[int, float] = {}
    while len(found) < len(ranks):
        if answered is None:
            open_ranges = sorted({state[r] for r in ranks if r not in found})
            requests = [
                _narrowing(selection, low, high, within) for low, high, _, within in open_ranges
            ]
            merged = yield [request for request in requests if request is not None]
            answers = iter(merged)
            answered = {
                (low, high): (request, None if request is None else next(answers))
                for (low, high, _, _), request in zip(open_ranges, requests, strict=True)
            }
        for rank in ranks:
            if rank in found:
                continue
            low, high, below, _ = state[rank]
            request, answer = answered[(low, high)]
            if request is None:
                found[rank] = key_value(low)
            elif isinstance(request, Gather):
                found[rank] = float(answer[rank - below])
            else:
                cumulative = np.cumsum(answer)
                chosen = int(np.searchsorted(cumulative, rank - below, side="right"))
                before = int(cumulative[chosen - 1]) if chosen else 0
                state[rank] = (*request.bin_range(chosen), below + before, int(answer[chosen]))
        answered = None
    return known_extent, [found[rank] for rank in ranks]


def _narrowing(selection: Selection, low: int, high: int, within: int) -> Gather | RankBins | None:
    """The next request for a rank in ``[low, high]`` (None when that is one value)."""
    if low == high:
        return None
    if within <= GATHER_LIMIT:
        return Gather(selection, low, high)
    return RankBins(selection, low, high, RANK_BINS)


def median(
    selection: Selection,
    known_extent: tuple[int, int, int] | None = None,
    at_most: int | None = None,
    within_keys: tuple[int, int | None] = (0, None),
    dtype: npt.DTypeLike = np.float64,
) -> Algorithm[float]:
    """``numpy.median`` of the selected values (NaN if there are none).

    ``dtype`` is the dtype of the array numpy would take the median of: the
    middle two values of an even count are averaged in it (float32 in float32).
    """

    def middle(count: int) -> list[int]:
        if count == 0:
            return []
        return [count // 2 - 1, count // 2] if count % 2 == 0 else [(count - 1) // 2]

    _, values = yield from order_statistics(selection, middle, known_extent, at_most, within_keys)
    if not values:
        return float("nan")
    # numpy takes the mean of the middle one or two values, in the array's dtype.
    return float(np.mean(np.array(values, dtype=np.float64).astype(dtype)))


def percentile(
    selection: Selection,
    q: float,
    known_extent: tuple[int, int, int] | None = None,
    at_most: int | None = None,
) -> Algorithm[float]:
    """``numpy.percentile(values, q)`` (linear method) of the selected values.

    Raises
    ------
    ValueError
        If nothing is selected.
    """
    position: dict[str, tuple[int, int, float]] = {}

    def neighbours(count: int) -> list[int]:
        if count == 0:
            raise ValueError("percentile of an empty selection")
        position["gamma"] = linear_quantile_position(count, q)
        return list(position["gamma"][:2])

    _, (low, high) = yield from order_statistics(selection, neighbours, known_extent, at_most)
    return linear_interpolation(low, high, position["gamma"][2])


def linear_quantile_position(count: int, q: float) -> tuple[int, int, float]:
    """Ranks and weight of numpy's linear percentile ``q`` of ``count`` sorted values.

    Evaluated with the same floating-point operations as numpy (Hyndman and
    Fan's method 7: virtual index ``(n - 1) * p`` with ``p = q / 100``).

    Returns
    -------
    tuple
        (lower rank, upper rank, weight of the upper value).

    Examples
    --------
    >>> linear_quantile_position(5, 50.0)
    (2, 3, 0.0)
    """
    fraction = np.true_divide(np.float64(q), 100)
    virtual = (count - 1) * fraction
    if virtual >= count - 1:
        return count - 1, count - 1, float(virtual - np.floor(virtual))
    if virtual < 0:
        return 0, 0, float(virtual - np.floor(virtual))
    previous = np.floor(virtual)
    return int(previous), int(previous) + 1, float(virtual - previous)


def linear_interpolation(low: float, high: float, gamma: float) -> float:
    """Numpy's interpolation between neighbouring order statistics (exact in both halves)."""
    low, high, gamma = np.float64(low), np.float64(high), np.float64(gamma)
    difference = high - low
    if gamma >= 0.5:
        return float(high - difference * (1 - gamma))
    return float(low + difference * gamma)


def mean_and_std(selection: Selection) -> Algorithm[tuple[int, float, float]]:
    """Count, mean and standard deviation (``ndarray.std``, ddof 0) of the selected values.

    Two rounds: the sum, then the sum of squared deviations from the mean.
    """
    ((count, total),) = yield [SumCount(selection)]
    if count == 0:
        return 0, float("nan"), float("nan")
    mean = np.float64(total) / count
    (squares,) = yield [SquaredDeviation(selection, float(mean))]
    return count, float(mean), float(np.sqrt(np.float64(squares) / count))


def together(*algorithms: Algorithm[Any]) -> Algorithm[list[Any]]:
    """Run several algorithms of one plane side by side, sharing passes; return their answers."""
    answers: dict[int, Any] = {}
    requests: dict[int, list[Request]] = {}
    for index, algorithm in enumerate(algorithms):
        _advance(index, algorithm, None, requests, answers)
    while requests:
        order = sorted(requests)
        merged = yield [request for index in order for request in requests[index]]
        current, requests = requests, {}
        position = 0
        for index in order:
            size = len(current[index])
            _advance(
                index, algorithms[index], merged[position : position + size], requests, answers
            )
            position += size
    return [answers[index] for index in range(len(algorithms))]


def run_per_plane(
    data: da.Array | Tiles, make: Callable[[PlaneIndex], Algorithm[AnswerT]]
) -> dict[PlaneIndex, AnswerT]:
    """Run ``make(plane_index)`` on every plane of ``data`` together (see :func:`solve`)."""
    tiles = data if isinstance(data, Tiles) else Tiles(data)
    planes = tiles.plane_indices()
    return solve(tiles, {index: make(index) for index in planes}, planes)


__all__ = [
    "GATHER_LIMIT",
    "RANK_BINS",
    "Below",
    "Finite",
    "Tiles",
    "Within",
    "extent",
    "linear_interpolation",
    "linear_quantile_position",
    "mean_and_std",
    "median",
    "order_statistics",
    "percentile",
    "row_batches",
    "run_pass",
    "run_per_plane",
    "solve",
    "tile_values",
    "together",
]
