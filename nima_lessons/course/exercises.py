"""Checkers for the lesson exercises: they run the learner's method on data of their own.

An exercise hands over a function (or a lazy dask result), never a bare number. Each
``check_*`` function runs it on stacks or images it makes itself, with other seeds and sizes
than the lesson's, counts the frames, time points or tiles it computes, and compares the
result with an independent reference (numpy or scipy on the whole array). So a hard-coded
number, the lesson's own reference value or an eager result wrapped back into a dask array
cannot pass. The verdict is a :class:`Feedback` that says what was found and gives a hint;
a wrong answer, or a function that raises, never makes the checker raise.
"""

from __future__ import annotations

import html
import numbers
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np
import pandas as pd
from dask.callbacks import Callback
from scipy import ndimage

__all__ = [
    "Feedback",
    "check_background_removal",
    "check_error_sweep",
    "check_first_uniform_frame",
    "check_projection",
    "check_tiled_count",
]


@dataclass(frozen=True)
class Feedback:
    """The verdict on an exercise answer.

    Parameters
    ----------
    passed : bool
        Whether the answer is correct.
    message : str
        What was found, in one or two sentences.
    hints : tuple of str
        Suggestions for a next attempt (empty when ``passed``).
    answered : bool
        False while the answer cell is untouched: the verdict then reads
        "Not yet solved".
    """

    passed: bool
    message: str
    hints: tuple[str, ...] = field(default_factory=tuple)
    answered: bool = True

    @property
    def title(self) -> str:
        """The verdict's first words: Correct, Not yet (wrong), Not yet solved (no answer)."""
        if self.passed:
            return "Correct"
        return "Not yet" if self.answered else "Not yet solved"

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [f"{self.title}: {self.message}"]
        lines += [f"  hint: {hint}" for hint in self.hints]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.passed else "#a15c00"
        hints = "".join(f"<li>{html.escape(h)}</li>" for h in self.hints)
        hint_list = f"<ul>{hints}</ul>" if hints else ""
        return (
            f'<div style="border-left:4px solid {colour};padding:0.3em 0.8em">'
            f"<b>{self.title}:</b> {html.escape(self.message)}{hint_list}</div>"
        )


# ---------------------------------------------------------------- what was handed over


def _unsolved(name: str) -> Feedback:
    return Feedback(
        False,
        f"`{name}` returns None: write its body in the cell above, run that cell, then run "
        "this one again.",
        answered=False,
    )


def _not_a_function(answer: object, name: str) -> Feedback | None:
    """Feedback when ``answer`` is not the function the exercise asks for, else None."""
    if callable(answer):
        return None
    if answer is None or answer is Ellipsis:
        return Feedback(
            False, f"no function yet: define `{name}` in the cell above.", answered=False
        )
    what = _kind(answer)
    return Feedback(
        False,
        f"this is {what}, not a function: hand over `{name}` itself. The checker runs it "
        "on data of its own, so a result, even the right one for the lesson's data, cannot "
        "show how it was obtained.",
        ("pass the function itself, without calling it: no parentheses after its name",),
    )


def _returned_none(name: str, case: str, first: bool, hints: tuple[str, ...] = ()) -> Feedback:
    """Feedback on a None result: not yet written on the first case, a wrong answer after."""
    if first:
        return _unsolved(name)
    return Feedback(False, f"`{name}` returned None on {case}.", hints)


def _not_lazy(result: object, name: str, why: str) -> Feedback | None:
    """Feedback when ``result`` is not a dask array (``why`` ends the computed-array message)."""
    if isinstance(result, np.ndarray):
        return Feedback(
            False,
            f"`{name}` returned a computed numpy array{why}",
            ("drop the .compute() (or np.asarray) at the end",),
        )
    if not isinstance(result, da.Array):
        return Feedback(False, f"`{name}` returned {_kind(result)}; expected a dask array.")
    return None


def _kind(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return f"the boolean {value!r}"
    if isinstance(value, numbers.Number):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, da.Array):
        return f"a dask array of shape {value.shape}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape}"
    return f"a {type(value).__name__}"


class _LearnerError(Exception):
    """The learner's function raised; carries the original exception."""


class _TooMuchWork(Exception):
    """A checker's data source refuses to compute more (a runaway loop)."""


def _call(func: Callable, *args):
    """Call the learner's function, turning its exceptions into :class:`_LearnerError`."""
    try:
        return func(*args)
    except _TooMuchWork:
        raise
    except Exception as error:  # the learner's code may raise anything
        raise _LearnerError(error) from error


def _raised(name: str, error: _LearnerError, case: str) -> Feedback:
    original = error.args[0]
    text = str(original).splitlines()[0] if str(original) else ""
    return Feedback(
        False,
        f"`{name}` raised {type(original).__name__}{': ' + text if text else ''} (on {case}).",
        ("run it yourself on the lesson's data to see the full traceback",),
    )


def _code_names(func, seen: set[int] | None = None) -> set[str]:
    """Global and attribute names used by ``func`` and the functions of the same module it uses."""
    seen = set() if seen is None else seen
    while hasattr(func, "func"):  # functools.partial
        func = func.func
    code = getattr(func, "__code__", None)
    if code is None or id(code) in seen:
        return set()
    seen.add(id(code))
    names: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if hasattr(c, "co_names"))
    module = getattr(func, "__globals__", {})
    helpers = [module.get(name) for name in names]
    helpers += [cell.cell_contents for cell in getattr(func, "__closure__", None) or ()]
    for helper in helpers:
        if callable(helper) and getattr(helper, "__globals__", None) is module:
            names |= _code_names(helper, seen)
    return names


def _delegates(func, forbidden: Mapping[str, object]) -> str | None:
    """Name of a ``forbidden`` function that ``func`` calls (by name or by object), if any."""
    if any(func is target for target in forbidden.values()):
        return next(name for name, target in forbidden.items() if func is target)
    names = _code_names(func)
    module = getattr(getattr(func, "func", func), "__globals__", {})
    for name in names:
        if name in forbidden:
            return name
        value = module.get(name)
        for forbidden_name, target in forbidden.items():
            if value is target:
                return forbidden_name
    return None


def _as_whole_number(value: object) -> int | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    return None


def _share(count: int, total: int, what: str = "pixels") -> str:
    """'3 of 1,200 pixels (0.25 %)': never a rounded-away '0.0 %' nor a rounded-up '100 %'."""
    if count == total:
        return f"all {total:,} {what}"
    percent = 100 * count / total
    if percent >= 99.5:
        shown = "over 99"
    elif percent >= 10:
        shown = f"{percent:.0f}"
    else:
        shown = f"{percent:.2g}"
    return f"{count:,} of {total:,} {what} ({shown} %)"


# ---------------------------------------------------------------- watching dask work


class _Reads:
    """Counts the blocks a checker's source array computes; thread-safe."""

    def __init__(self, limit: int | None = None):
        self.blocks: list[tuple[int, ...]] = []
        self.limit = limit
        self._lock = threading.Lock()

    def record(self, block: tuple[int, ...]) -> None:
        with self._lock:
            if self.limit is not None and len(self.blocks) >= self.limit:
                raise _TooMuchWork(f"more than {self.limit:,} blocks computed")
            self.blocks.append(block)

    def __len__(self) -> int:
        return len(self.blocks)

    def distinct(self) -> set[tuple[int, ...]]:
        return set(self.blocks)


def _source(
    make_block: Callable[[tuple[slice, ...]], np.ndarray],
    shape: tuple[int, ...],
    chunks,
    dtype,
    reads: _Reads,
) -> da.Array:
    """A lazy array whose blocks come from ``make_block(region)``, each computation recorded."""

    def block(block_info=None):
        info = block_info[None]
        reads.record(tuple(info["chunk-location"]))
        return make_block(tuple(slice(start, stop) for start, stop in info["array-location"]))

    dtype = np.dtype(dtype)
    return da.map_blocks(
        block,
        chunks=da.core.normalize_chunks(chunks, shape),
        dtype=dtype,
        meta=np.empty((0,) * len(shape), dtype=dtype),
        name=f"exercise-data-{uuid.uuid4().hex}",
    )


class _Pieces(Callback):
    """Records the shape of every 2-D (or larger) array a dask task produces."""

    def __init__(self):
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def _posttask(self, key, result, dsk, state, worker_id):
        if isinstance(result, np.ndarray) and result.ndim >= 2:
            self.shapes.add(result.shape)

    def covering(self, extent: tuple[int, ...]) -> tuple[int, ...] | None:
        """A recorded piece at least ``extent`` along every axis, if there is one."""
        for shape in self.shapes:
            if len(shape) == len(extent) and all(
                s >= e for s, e in zip(shape, extent, strict=True)
            ):
                return shape
        return None


def _largest(pieces: _Pieces) -> tuple[int, int]:
    """The 2-D piece with the most pixels, (0, 0) when there was none."""
    return max((s for s in pieces.shapes if len(s) == 2), key=np.prod, default=(0, 0))


@contextmanager
def _watch() -> Iterator[_Pieces]:
    """Run dask work on the local synchronous scheduler and record the pieces it makes.

    Graph optimisation is off meanwhile: fused tasks would hide the arrays they pass along
    (a whole image rechunked into one block and counted in the same task, say).
    """
    pieces = _Pieces()
    settings = dask.config.set(scheduler="sync", array_optimize=False, delayed_optimize=False)
    with settings, pieces:
        yield pieces


def _compute(value):
    """Compute a lazy dask value; leave anything else as it is."""
    if dask.is_dask_collection(value):
        return dask.compute(value)[0]
    return value


def _depends_on(value, array: da.Array) -> bool:
    """Whether the graph of the lazy ``value`` reads the blocks of ``array``."""
    graph = value.__dask_graph__()
    return any(isinstance(key, tuple) and key[0] == array.name for key in graph)


# ---------------------------------------------------------------- lesson 01: first flat frame


#: (frames, first flat frame, frame shape, seed) of the stacks the search is tried on; the last
#: one also has a budget of frames.
_FLAT_STACKS = ((40, 13, (6, 7), 1), (10, 0, (5, 5), 2), (300, 299, (4, 9), 3))
_FLAT_LONG = (20_000, 1_217, (8, 8), 4)
_RUNAWAY_FRAMES = 2_000


def _flat_frame(index: int, first_flat: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    """A frame that varies before ``first_flat`` and holds one value from there on.

    Varying frames are either noisy or flat but for a single pixel one grey
    level off, so only a look at every pixel tells them from flat frames.
    Flat frames do not all share one value.
    """
    rng = np.random.default_rng([seed, index])
    level = int(rng.integers(1, 200))
    frame = np.full(shape, level, dtype=np.uint16)
    if index < first_flat:
        if rng.random() < 0.5:
            frame[:] = rng.integers(0, 256, shape)
            frame.flat[0] = frame.flat[1] + 1  # never flat by chance
        else:
            frame[tuple(rng.integers(0, shape))] += 1
    return frame


def _flat_stack(n_frames, first_flat, shape, seed, reads):
    def frames(region):
        indices = range(region[0].start, region[0].stop)
        return np.stack([_flat_frame(i, first_flat, shape, seed) for i in indices])

    return _source(frames, (n_frames, *shape), (1, *shape), np.uint16, reads)


def check_first_uniform_frame(func) -> Feedback:
    """Check a function that finds the first frame of a stack whose pixels are all equal.

    The function is run on four stacks made here (not the lesson's), up to
    20,000 frames long, whose frames vary up to a known index and are flat
    from there on; it must return that index, and on the longest stack it
    must compute only about as many frames as a binary search does.

    Parameters
    ----------
    func : callable
        ``func(stack) -> int``, where ``stack`` is a lazy (frames, Y, X) dask
        array with one chunk per frame.

    Returns
    -------
    Feedback
        Correct when every index is right and the long stack cost at most
        ``3 * log2(frames)`` computed frames.

    Examples
    --------
    >>> print(check_first_uniform_frame(lambda stack: 3831).message)  # a hard-coded index
    on a stack of 40 frames of 6 x 7 px `<lambda>` returned 3831, outside the stack (0 to 39).
    """
    from nima_lessons.course.synthetic import first_uniform_frame

    name = getattr(func, "__name__", "your function")
    wrong = _not_a_function(func, "first_flat_frame")
    if wrong is not None:
        return wrong
    used = _delegates(func, {"first_uniform_frame": first_uniform_frame})
    if used:
        return Feedback(
            False,
            f"`{name}` calls the package's {used}, which is this exercise's answer key: "
            "write the search yourself.",
            ("compute a frame with stack[i].compute() and compare its min and max",),
        )
    budget = 3 * int(np.ceil(np.log2(_FLAT_LONG[0] + 1)))
    for number, (n_frames, first_flat, shape, seed) in enumerate((*_FLAT_STACKS, _FLAT_LONG)):
        reads = _Reads(limit=_RUNAWAY_FRAMES)
        stack = _flat_stack(n_frames, first_flat, shape, seed, reads)
        case = f"a stack of {n_frames:,} frames of {shape[0]} x {shape[1]} px"
        try:
            with dask.config.set(scheduler="sync"):
                result = _call(func, stack)
        except _LearnerError as error:
            return _raised(name, error, case)
        except _TooMuchWork:
            return Feedback(
                False,
                f"on {case}, `{name}` computed more than {_RUNAWAY_FRAMES:,} frames; the "
                "checker stopped it.",
                (
                    (
                        "flatness never goes away once reached: halve the interval between a "
                        "varying and a flat frame until it is one frame wide"
                    ),
                ),
            )
        if result is None:
            return _returned_none(name, case, number == 0, ("return the index as an int",))
        index = _as_whole_number(_compute(result))
        if index is None:
            return Feedback(
                False,
                f"on {case} `{name}` returned {_kind(result)}; expected a frame index (an int).",
                ("return the index itself, e.g. int(i)",),
            )
        verdict = _judge_flat_index(index, n_frames, first_flat, shape, seed, case, name)
        if verdict is not None:
            return verdict
        if n_frames == _FLAT_LONG[0] and len(reads.distinct()) > budget:
            return Feedback(
                False,
                f"the index is right, but your function computed {len(reads.distinct()):,} of "
                f"{n_frames:,} frames to find frame {first_flat:,}; a binary search needs about "
                f"{int(np.ceil(np.log2(n_frames)))}.",
                (
                    (
                        "flatness never goes away once reached: if frame m is flat, the answer is "
                        "at most m, otherwise it is after m; halve the interval at every probe"
                    ),
                ),
            )
    return Feedback(
        True,
        f"right on four stacks of up to {_FLAT_LONG[0]:,} frames, computing "
        f"{len(reads.distinct())} frames of the longest one.",
    )


def _judge_flat_index(index, n_frames, first_flat, shape, seed, case, name) -> Feedback | None:
    """Feedback on a wrong index, None for the right one."""
    if index == first_flat:
        return None
    if not 0 <= index < n_frames:
        return Feedback(
            False,
            f"on {case} `{name}` returned {index}, outside the stack (0 to {n_frames - 1:,}).",
        )
    if index < first_flat:
        frame = _flat_frame(index, first_flat, shape, seed)
        return Feedback(
            False,
            f"on {case} `{name}` returned {index:,}, but that frame still varies: its "
            f"pixels span {frame.min()} to {frame.max()}.",
            ("a frame is flat when its max equals its min, looking at every pixel",),
        )
    hints = ("the first flat frame is the one after the last varying frame",)
    if first_flat == 0:
        hints = ("frame 0 can be flat too: look at it first",)
    return Feedback(
        False,
        f"on {case} `{name}` returned {index:,}: that frame is flat, but so is the one "
        f"before it (frame {index - 1:,}), so it is not the first.",
        hints,
    )


# ---------------------------------------------------------------- lesson 03: lazy projection


_PROJECTION_STACKS = (((5, 3, 12, 10), np.uint16, 7), ((4, 6, 9, 14), np.float32, 8))


def _projection_volume(shape, dtype, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 1000).astype(dtype)


def check_projection(func) -> Feedback:
    """Check a function that adds a lazy maximum projection over Z to a (T, Z, Y, X) stack.

    The function is run on two stacks made here, one block per time point,
    whose blocks are counted as they are computed: building the projection
    must compute none, computing one time point must compute that time
    point's block only, and the values must equal numpy's maximum over Z.

    Parameters
    ----------
    func : callable
        ``func(stack) -> dask.array.Array``: the (T, Y, X) projection of a lazy
        (T, Z, Y, X) ``stack``, still lazy.

    Returns
    -------
    Feedback

    Examples
    --------
    >>> def project(stack):
    ...     return stack.map_blocks(lambda b: b.max(axis=1), drop_axis=1)
    >>> check_projection(project).passed
    True
    >>> print(check_projection(lambda stack: da.from_array(stack.compute().max(axis=1))).message)
    ... # doctest: +ELLIPSIS
    building the projection already computed 5 of 5 time points...
    """
    name = getattr(func, "__name__", "your function")
    wrong = _not_a_function(func, "max_projection")
    if wrong is not None:
        return wrong
    for number, (shape, dtype, seed) in enumerate(_PROJECTION_STACKS):
        volume = _projection_volume(shape, dtype, seed)
        reads = _Reads()
        stack = _source(volume.__getitem__, shape, (1, *shape[1:]), dtype, reads)
        case = f"a stack of shape {shape} (T, Z, Y, X)"
        try:
            with dask.config.set(scheduler="sync"):
                result = _call(func, stack)
                verdict = _judge_projection(result, volume, reads, case, name, first=number == 0)
        except _LearnerError as error:
            return _raised(name, error, case)
        if verdict is not None:
            return verdict
    return Feedback(
        True,
        "lazy on two stacks of its own: nothing computed while building, one block per "
        "time point when computed, and the maximum over Z everywhere.",
    )


def _judge_projection(result, volume, reads, case, name, first) -> Feedback | None:
    n_t = volume.shape[0]
    expected_shape = (n_t, *volume.shape[2:])
    if result is None:
        return _returned_none(name, case, first)
    built = len(reads.distinct())
    wrong_type = _not_lazy(result, name, ": the projection should stay lazy.")
    if wrong_type is not None:
        return wrong_type
    if built:
        return Feedback(
            False,
            f"building the projection already computed {built} of {n_t} time points of "
            f"{case}: a lazy step only describes the work. Wrapping a computed result in "
            "da.from_array makes a dask array, not a lazy computation.",
            ("apply a function of one block with map_blocks; call nothing that computes",),
        )
    if result.shape != expected_shape:
        return Feedback(
            False,
            f"for {case} the projection has shape {result.shape}; expected {expected_shape} "
            "(T, Y, X).",
            (
                (
                    "project over axis 1 (Z), and tell map_blocks with drop_axis=1 that the blocks "
                    "lose that axis"
                ),
            ),
        )
    middle = n_t // 2
    result[middle].compute()
    touched = sorted(block[0] for block in reads.distinct())
    if touched != [middle]:
        return Feedback(
            False,
            f"computing time point {middle} of the projection computed time points {touched} "
            "of the stack: each time point should be read and projected on its own.",
            ("map_blocks keeps the blocks of the input: no rechunk is needed",),
        )
    differ = int(np.count_nonzero(np.asarray(result.compute()) != volume.max(axis=1)))
    if differ:
        return Feedback(
            False,
            f"for {case} the values differ from the maximum over Z at "
            f"{_share(differ, int(np.prod(expected_shape)))}.",
            ("inside the block function, take volume.max(axis=1)",),
        )
    return None


# ---------------------------------------------------------------- lesson 04: tiled top-hat


#: (image shape, tile, footprint size, seed) of the images the tiled top-hat is tried on.
#: Every last tile is at least as wide as the overlap, so map_overlap keeps the tiles as they are.
_TOPHAT_CASES = (((176, 216), 48, 21, 5), ((230, 160), 64, 31, 6), ((150, 190), 40, 15, 7))


def _uneven_nuclei(shape, seed) -> np.ndarray:
    from nima_lessons.course.synthetic import nuclei_image

    image = nuclei_image(shape, seed=seed).image.astype(np.float64)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    centre = np.random.default_rng(seed).uniform(0, 1, 2) * shape
    spread = 0.6 * max(shape)
    return image + 60.0 * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * spread**2))


def check_background_removal(func) -> Feedback:
    """Check a tiled white top-hat: artifact-free, lazy, tiled, with the smallest overlap.

    The function is run on three images made here, tiled at three tile sizes
    with three footprint sizes. Building the result must compute no tile;
    the result must equal ``scipy.ndimage.white_tophat`` of the whole image
    exactly, keep the input's tiles, and never work on more than a tile plus
    the overlap the footprint needs (measured from the pieces dask computes).

    Parameters
    ----------
    func : callable
        ``func(tiles, size) -> dask.array.Array``: the white top-hat with a
        ``size`` x ``size`` square footprint of the tiled image ``tiles`` (a
        lazy 2-D dask array), computed tile by tile.

    Returns
    -------
    Feedback

    Examples
    --------
    >>> def whole_at_once(tiles, size):
    ...     return tiles.rechunk(tiles.shape).map_blocks(ndimage.white_tophat, size=size)
    >>> print(check_background_removal(whole_at_once).message)  # doctest: +ELLIPSIS
    the result is right, but it was computed on the whole image at once...
    """
    from nima_lessons import tiling

    name = getattr(func, "__name__", "your function")
    wrong = _not_a_function(func, "remove_background_tiled")
    if wrong is not None:
        return wrong
    used = _delegates(
        func, {"overlap_for": tiling.overlap_for, "minimal_overlap": tiling.minimal_overlap}
    )
    if used:
        return Feedback(
            False,
            f"`{name}` asks tiling.{used} for the overlap: work it out from the footprint "
            "size yourself; that rule is the point of the exercise.",
            ("an opening is an erosion followed by a dilation: how far does each reach?",),
        )
    margins = []
    for number, (shape, tile, size, seed) in enumerate(_TOPHAT_CASES):
        image = _uneven_nuclei(shape, seed)
        reads = _Reads()
        tiles = _source(image.__getitem__, shape, tile, image.dtype, reads)
        case = f"a {shape[0]} x {shape[1]} image in {tile} px tiles, footprint {size} x {size}"
        try:
            with _watch() as pieces:
                result = _call(func, tiles, size)
                verdict = _judge_tophat(
                    result, image, tiles, size, reads, pieces, case, name, first=number == 0
                )
        except _LearnerError as error:
            return _raised(name, error, case)
        if isinstance(verdict, Feedback):
            return verdict
        margins.append((size, verdict))
    return Feedback(
        True,
        "identical to the whole-image top-hat on three images, tile by tile, with margins of "
        + ", ".join(f"{margin} px for a {size} px footprint" for size, margin in margins)
        + ": the reach of the erosion plus that of the dilation.",
    )


def _judge_tophat(result, image, tiles, size, reads, pieces, case, name, first):
    """Feedback on a wrong result, or the margin (px) a right one used."""
    from nima_lessons.tiling import overlap_for

    if result is None:
        return _returned_none(name, case, first)
    wrong_type = _not_lazy(result, name, "; return the lazy dask array.")
    if wrong_type is not None:
        return wrong_type
    if len(reads):
        return Feedback(
            False,
            f"building the result already computed {len(reads.distinct())} tiles of {case}: "
            "the function should only describe the work (no compute, np.asarray or "
            "da.from_array of a computed image).",
        )
    if result.shape != image.shape:
        return Feedback(False, f"the result has shape {result.shape}; expected {image.shape}.")
    # Unoptimised, every overlapped tile is a task result of its own, so its size shows.
    blocks = result.to_delayed(optimize_graph=False)
    values = dask.compute(*blocks.ravel(), optimize_graph=False)
    columns = blocks.shape[1]
    tiled = np.block([list(values[i : i + columns]) for i in range(0, len(values), columns)])
    reference = ndimage.white_tophat(image, size=size)
    needed = overlap_for("white_tophat", size=size)
    differ = tiled != reference
    if differ.any():
        return _tophat_differs(differ, tiled, reference, needed, case)
    whole = pieces.covering(image.shape)
    if whole:
        return Feedback(
            False,
            f"the result is right, but it was computed on the whole image at once "
            f"({whole[0]} x {whole[1]} px) for {case}: tile by tile, no piece is larger than a "
            "tile and its margins.",
            ("keep the tiles: map_overlap lends each tile a margin from its neighbours",),
        )
    # The largest piece is an inner tile with a margin on both sides.
    tile = tuple(max(sizes) for sizes in result.chunks)
    margin = max((piece - t) // 2 for piece, t in zip(_largest(pieces), tile, strict=True))
    if margin > needed:
        return Feedback(
            False,
            f"right and tiled, but with margins of about {margin} px where {needed} px are "
            f"enough for {case}: every extra pixel is read and filtered again by each tile.",
            (
                (
                    "try smaller margins until an error appears; the last clean one is the answer, "
                    "and it follows from the footprint size"
                ),
            ),
        )
    if result.chunks != tiles.chunks:
        return Feedback(
            False,
            f"the result is right, but its tiles differ from the input's: {result.chunks} "
            f"instead of {tiles.chunks}.",
            ("map_overlap trims the margins off again and keeps the input's tiles",),
        )
    return needed


def _tophat_differs(differ, tiled, reference, needed, case) -> Feedback:
    border = np.ones_like(differ)
    border[needed:-needed, needed:-needed] = False
    where = "only near the image border" if not (differ & ~border).any() else "inside the image"
    hints = (
        (
            (
                "map_overlap pads the image border unless told boundary='none'; with 'none' the "
                "filter treats the border as on the whole image"
            ),
        )
        if where.startswith("only")
        else (
            (
                "each output pixel depends on every input pixel its filter can reach; for a "
                "filter applied in two passes (erosion then dilation), the reaches add up"
            ),
        )
    )
    return Feedback(
        False,
        f"on {case} the tiles differ from the whole-image top-hat {where}: "
        f"{_share(int(differ.sum()), differ.size)} differ, by up to "
        f"{np.abs(tiled - reference).max():.3g}.",
        hints,
    )


# ---------------------------------------------------------------- lesson 05: exact tiled count


#: (image shape, tile, seed) of the images the tiled count is tried on.
_COUNT_CASES = (((600, 750), (100, 100), 21), ((640, 800), (96, 128), 22))


def _nuclei_tiles(shape, tile, seed, reads):
    """A checker's nuclei image, lazily rendered tile by tile, and its scipy count."""
    from nima_lessons.counting import NUCLEI_THRESHOLD
    from nima_lessons.course.synthetic import nuclei_image

    image = nuclei_image(shape, seed=seed).image
    count = int(ndimage.label(image > NUCLEI_THRESHOLD)[1])
    return _source(image.__getitem__, shape, tile, np.uint8, reads), image, count


def _too_large(pieces: _Pieces, tile: tuple[int, ...], times: int) -> tuple[int, ...] | None:
    return pieces.covering(tuple(times * t + 1 for t in tile))


def check_tiled_count(func) -> Feedback:
    """Check a function that counts the nuclei of a tiled image exactly, tile by tile.

    The function is run on two nuclei images made here (other seeds, sizes
    and tiles than the lesson's); its count must equal
    ``scipy.ndimage.label`` on the whole image, and no dask task may work on
    a piece larger than 3 x 3 tiles (so a whole-image count does not pass).

    Parameters
    ----------
    func : callable
        ``func(tiles) -> int`` (or a lazy dask count), where ``tiles`` is a lazy
        2-D uint8 dask array whose chunks are the tiles.

    Returns
    -------
    Feedback

    Examples
    --------
    >>> from nima_lessons import counting
    >>> print(check_tiled_count(lambda tiles: counting.count_tiled(tiles, "naive")).message)
    ... # doctest: +ELLIPSIS
    on a 600 x 750 image in 100 x 100 px tiles your count is ... too many: ...
    """
    name = getattr(func, "__name__", "your function")
    wrong = _not_a_function(func, "count_exact")
    if wrong is not None:
        return wrong
    answers = []
    for number, (shape, tile, seed) in enumerate(_COUNT_CASES):
        reads = _Reads()
        tiles, _, truth = _nuclei_tiles(shape, tile, seed, reads)
        case = f"a {shape[0]} x {shape[1]} image in {tile[0]} x {tile[1]} px tiles"
        try:
            with _watch() as pieces:
                result = _compute(_call(func, tiles))
        except _LearnerError as error:
            return _raised(name, error, case)
        if result is None:
            return _returned_none(name, case, number == 0)
        count = _as_whole_number(result)
        if count is None:
            return _not_a_count(result, case, name)
        whole = _too_large(pieces, tile, 3)
        if whole:
            return Feedback(
                False,
                f"on {case} a single task worked on {whole[0]} x {whole[1]} px: that is "
                "counting (nearly) the whole image at once, not tile by tile.",
                (
                    (
                        "keep the image's chunks: per-tile work with map_blocks or map_overlap, "
                        "and combine small per-tile results"
                    ),
                ),
            )
        answers.append((count, truth))
        if count != truth:
            return _wrong_count(count, truth, answers, case)
    return Feedback(
        True,
        "exact on two images it had never seen ("
        + " and ".join(f"{truth} nuclei" for _, truth in answers)
        + "), tile by tile.",
    )


def _not_a_count(result, case, name) -> Feedback:
    if isinstance(result, numbers.Real) and not isinstance(result, (bool, np.bool_)):
        return Feedback(
            False,
            f"on {case} `{name}` returned {result:g}, not a whole number of nuclei. Halves "
            "come from counting pieces cut by a tile border as 1/2: right for a nucleus cut "
            "in two, wrong for one cut in three or four at a tile corner.",
            (
                (
                    "use a rule that gives every nucleus to exactly one tile: the tile whose own "
                    "area holds its centroid (with an overlap), or labels merged across tiles"
                ),
            ),
        )
    hint = ()
    if dask.is_dask_collection(result):
        hint = ("compute the count: int(count.compute())",)
    return Feedback(
        False, f"on {case} `{name}` returned {_kind(result)}; expected a number of nuclei.", hint
    )


def _wrong_count(count, truth, answers, case) -> Feedback:
    if len(answers) > 1 and len({a for a, _ in answers}) == 1:
        return Feedback(
            False,
            f"your function returns {count} whatever the image ({case} has {truth} nuclei): "
            "it must count the image it is given.",
        )
    error = count - truth
    if error > 0:
        return Feedback(
            False,
            f"on {case} your count is {count}, {error} too many: nuclei cut by tile borders "
            "are counted once per tile they reach.",
            (
                (
                    "count a nucleus only in the tile that holds its centroid (overlap the tiles "
                    "by at least one nucleus diameter), or label across tiles first"
                ),
            ),
        )
    return Feedback(
        False,
        f"on {case} your count is {count}, {-error} too few: some nuclei were dropped, e.g. "
        "all border-touching objects were discarded, including those no other tile counts.",
        ("an exact rule must assign every nucleus to exactly one tile",),
    )


# ---------------------------------------------------------------- lesson 05: error sweep


#: Image shape, stored chunks, tile sizes and seed of the checker's sweep.
_SWEEP_CASE = ((700, 900), (60, 60), (90, 150, 210, 300), 23)


def _naive_errors(image: np.ndarray, tile_sizes, whole_count: int) -> dict[int, int]:
    """Sum of scipy counts of every tile on its own, minus the whole count, per tile size."""
    from nima_lessons.counting import NUCLEI_THRESHOLD

    mask = image > NUCLEI_THRESHOLD
    errors = {}
    for tile in tile_sizes:
        total = sum(
            ndimage.label(mask[y : y + tile, x : x + tile])[1]
            for y in range(0, mask.shape[0], tile)
            for x in range(0, mask.shape[1], tile)
        )
        errors[tile] = int(total) - whole_count
    return errors


def _sweep_table(result) -> dict | Feedback:
    """The learner's sweep as {tile size: value}, values as handed over (maybe lazy)."""
    if isinstance(result, pd.DataFrame):
        columns = {str(c).lower(): c for c in result.columns}
        if "error" not in columns:
            return Feedback(False, "the table has no 'error' column.")
        size_column = next(
            (
                columns[c]
                for c in ("tile_px", "tile", "chunk_size", "chunk", "tile_size")
                if c in columns
            ),
            None,
        )
        sizes = result[size_column] if size_column is not None else result.index
        return dict(
            zip((_as_whole_number(s) for s in sizes), result[columns["error"]], strict=True)
        )
    if isinstance(result, pd.Series):
        return {_as_whole_number(k): v for k, v in result.items()}
    if isinstance(result, Mapping):
        return {_as_whole_number(k): v for k, v in result.items()}
    return Feedback(
        False,
        f"expected a table of errors by tile size ({{tile_px: error}}, a pandas Series or a "
        f"DataFrame with 'tile_px' and 'error' columns), got {_kind(result)}.",
    )


def check_error_sweep(answer, tiles: da.Array | None = None, whole_count: int | None = None):
    """Check a sweep of the naive tiled counting error across tile sizes, computed with dask.

    ``answer`` is either a function, run here on a nuclei image of the
    checker's own with its own tile sizes, or a table of still-lazy errors
    computed from the lesson's ``tiles``. Every error must equal the one
    found with scipy, tile by tile on the whole image in memory, and no dask
    task may work on (nearly) the whole image. A table of plain numbers is
    not accepted: it cannot show how it was computed.

    Parameters
    ----------
    answer : callable or mapping
        ``answer(tiles, tile_sizes, whole_count) -> {tile_px: error}`` (a
        dict, a pandas Series indexed by tile size, or a DataFrame with
        ``tile_px`` and ``error`` columns); or such a table whose errors are
        lazy dask values built from ``tiles``.
    tiles : dask.array.Array, optional
        The lesson's image, needed to check a table.
    whole_count : int, optional
        The lesson's whole-image count, needed to check a table.

    Returns
    -------
    Feedback
        When correct, says how the error scales with the tile size.

    Examples
    --------
    >>> from nima_lessons import counting
    >>> def sweep(tiles, tile_sizes, whole_count):
    ...     return {t: int(counting.count_map(tiles.rechunk(t)).sum()) - whole_count
    ...             for t in tile_sizes}
    >>> check_error_sweep(sweep).passed
    True
    """
    if callable(answer):
        return _check_sweep_function(answer)
    if not isinstance(answer, (Mapping, pd.Series, pd.DataFrame)):
        return _not_a_function(answer, "naive_error_sweep")
    table = _sweep_table(answer)
    if isinstance(table, Feedback):
        return table
    if tiles is None or whole_count is None:
        return Feedback(
            False,
            "to check a table, pass the image and the whole-image count too: "
            "check_error_sweep(table, image, whole_count).",
        )
    lazy = [v for v in table.values() if dask.is_dask_collection(v)]
    if len(lazy) < len(table):
        return Feedback(
            False,
            "the table holds plain numbers, which cannot show how they were computed: hand "
            "over the function `naive_error_sweep` instead (or keep the errors lazy, without "
            ".compute(), so the checker can run them).",
        )
    if not all(_depends_on(value, tiles) for value in lazy):
        return Feedback(
            False, "some errors in the table are not computed from the image you passed."
        )
    if len(table) < 4 or max(table) < 2 * min(table):
        return Feedback(
            False,
            f"the sweep covers {sorted(table)}: use at least four tile sizes, the largest at "
            "least twice the smallest, to see how the error scales.",
        )
    with _watch() as pieces:
        values = dict(zip(table, dask.compute(*table.values()), strict=True))
    image = np.asarray(tiles)
    return _judge_sweep(values, _naive_errors(image, table, int(whole_count)), pieces, image.shape)


def _check_sweep_function(func) -> Feedback:
    name = getattr(func, "__name__", "your function")
    shape, chunks, tile_sizes, seed = _SWEEP_CASE
    reads = _Reads()
    tiles, image, whole = _nuclei_tiles(shape, chunks, seed, reads)
    case = f"a {shape[0]} x {shape[1]} image with tile sizes {list(tile_sizes)}"
    try:
        with _watch() as pieces:
            result = _call(func, tiles, list(tile_sizes), whole)
            if result is None:
                return _unsolved(name)
            table = _sweep_table(result)
            if isinstance(table, Feedback):
                return table
            values = dict(zip(table, dask.compute(*table.values()), strict=True))
    except _LearnerError as error:
        return _raised(name, error, case)
    missing = sorted(set(tile_sizes) - set(values))
    if missing:
        return Feedback(
            False,
            f"on {case} the table has no error for tile sizes {missing}: one row per tile "
            "size asked for.",
        )
    values = {tile: values[tile] for tile in tile_sizes}
    return _judge_sweep(values, _naive_errors(image, tile_sizes, whole), pieces, shape)


def _judge_sweep(values, expected, pieces, shape) -> Feedback:
    wrong = []
    for tile, value in values.items():
        number = _as_whole_number(value)
        if number != expected[tile]:
            wrong.append(f"{tile} px: {value!r} instead of {expected[tile]}")
    if wrong:
        return Feedback(
            False,
            "the errors differ from the naive tiled count's: " + "; ".join(wrong[:3]) + ".",
            (
                (
                    "error = (sum of the per-tile counts) - whole_count, with the image rechunked "
                    "to each tile size: counting.count_map(tiles.rechunk(t)).sum()"
                ),
            ),
        )
    whole = pieces.covering(tuple(int(0.9 * s) for s in shape))
    if whole:
        return Feedback(
            False,
            f"the errors are right, but a task worked on {whole[0]} x {whole[1]} px, (nearly) "
            "the whole image: count the tiles of each rechunked image separately.",
        )
    scaled = {tile: error * tile for tile, error in expected.items()}
    low, high = min(scaled.values()), max(scaled.values())
    return Feedback(
        True,
        "right at every tile size ("
        + ", ".join(f"{tile} px: {error:+d}" for tile, error in expected.items())
        + f"). Error x tile size stays between {low:,} and {high:,}: the error falls about as "
        "1 / tile size, because every nucleus a tile border cuts is counted once more, and the "
        "borders of tiles of t px are about 2 / t px long per px^2 of image.",
    )
