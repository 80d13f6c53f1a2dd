"""Checkers for the lesson exercises: specific feedback instead of a bare True/False.

Each ``check_*`` function takes the learner's answer, compares it with a reference
computed by the package, and returns a :class:`Feedback` that explains what is
right or wrong and gives a hint. A wrong answer never raises.
"""

from __future__ import annotations

import html
import numbers
from dataclasses import dataclass, field

import numpy as np


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
    """

    passed: bool
    message: str
    hints: tuple[str, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [("Correct: " if self.passed else "Not yet: ") + self.message]
        lines += [f"  hint: {hint}" for hint in self.hints]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.passed else "#a15c00"
        title = "Correct" if self.passed else "Not yet"
        hints = "".join(f"<li>{html.escape(h)}</li>" for h in self.hints)
        hint_list = f"<ul>{hints}</ul>" if hints else ""
        return (
            f'<div style="border-left:4px solid {colour};padding:0.3em 0.8em">'
            f"<b>{title}:</b> {html.escape(self.message)}{hint_list}</div>"
        )


def _unanswered(answer: object) -> bool:
    return answer is None or answer is Ellipsis


def _not_answered(what: str, hint: str) -> Feedback:
    return Feedback(False, f"no answer yet: set {what} in the cell above.", (hint,))


def _as_integer(answer: object, what: str) -> int | Feedback:
    """Return ``answer`` as an int, or feedback explaining why it is not one."""
    if isinstance(answer, (bool, np.bool_)):
        return Feedback(False, f"{what} must be a whole number, got the boolean {answer!r}.")
    if isinstance(answer, numbers.Integral):
        return int(answer)
    if isinstance(answer, numbers.Real) and float(answer).is_integer():
        return int(answer)
    if isinstance(answer, np.ndarray) and answer.size == 1:
        return _as_integer(answer.item(), what)
    kind = type(answer).__name__
    return Feedback(
        False,
        f"{what} must be a whole number, got {answer!r} ({kind}).",
        ("if you computed it with dask, call .compute() or int(...) on the result",),
    )


def check_first_uniform_frame(answer: object, stack, tolerance: float = 0) -> Feedback:
    """Check the index of the first Mandelbrot frame whose pixels are all equal.

    Parameters
    ----------
    answer : int
        The learner's frame index.
    stack : array-like
        The zoom stack the question is about (frames along the first axis),
        e.g. :func:`nima_lessons.course.synthetic.mandelbrot_stack`.
    tolerance : float
        Largest ``max - min`` of a frame still called uniform.

    Returns
    -------
    Feedback
        Correct only for the exact first uniform frame.

    Examples
    --------
    >>> frames = np.zeros((100, 2, 2), dtype=int); frames[:42, 0, 0] = 1
    >>> check_first_uniform_frame(42, frames).passed
    True
    >>> print(check_first_uniform_frame(41, frames))  # doctest: +NORMALIZE_WHITESPACE
    Not yet: frame 41 is not uniform: its pixels span 0 to 1.
      hint: the first uniform frame comes later; uniformity, once reached, never goes away
    """
    from nima_lessons.course.synthetic import first_uniform_frame, is_uniform

    if _unanswered(answer):
        return _not_answered(
            "`answer` to a frame index",
            "compute a few frames (stack[i].compute()) and compare their min and max",
        )
    index = _as_integer(answer, "the frame index")
    if isinstance(index, Feedback):
        return index
    if not 0 <= index < len(stack):
        return Feedback(False, f"frame {index} is outside the stack (0 to {len(stack) - 1}).")
    truth = first_uniform_frame(stack, tolerance).index
    if index == truth:
        return Feedback(True, f"frame {index} is the first one whose pixels are all equal.")
    if index < truth:
        frame = np.asarray(stack[index])
        return Feedback(
            False,
            f"frame {index} is not uniform: its pixels span {frame.min()} to {frame.max()}.",
            ("the first uniform frame comes later; uniformity, once reached, never goes away",),
        )
    earlier = "uniform" if is_uniform(np.asarray(stack[index - 1]), tolerance) else "not"
    return Feedback(
        False,
        f"frame {index} is uniform, but it is not the first: frame {index - 1} is {earlier} "
        "uniform and an earlier frame is already flat.",
        (
            "look between the last frame that varies and the first that is flat: halve "
            "that interval until it is one frame wide (a binary search)",
        ),
    )


def check_overlap_depth(answer: object, func, image, chunks) -> Feedback:
    """Check the smallest tile overlap that makes a filter artifact-free.

    Parameters
    ----------
    answer : int
        The learner's overlap in pixels.
    func : callable
        The per-tile filter (for instance a top-hat background removal).
    image : numpy.ndarray
        The image it is applied to.
    chunks : int or tuple of int
        The tile size.

    Returns
    -------
    Feedback
        Correct only for the smallest artifact-free overlap; a larger one is
        reported as wasteful, a smaller one with the error it leaves.

    Examples
    --------
    >>> from functools import partial
    >>> from scipy import ndimage
    >>> image = np.random.default_rng(0).random((60, 60))
    >>> tophat = partial(ndimage.white_tophat, size=5)
    >>> check_overlap_depth(4, tophat, image, 20).passed
    True
    """
    from nima_lessons.tiling import minimal_overlap, tile_error

    if _unanswered(answer):
        return _not_answered(
            "`answer` to an overlap in pixels",
            "measure tile_error(func, image, chunks, depth) for a few depths",
        )
    depth = _as_integer(answer, "the overlap")
    if isinstance(depth, Feedback):
        return depth
    if depth < 0:
        return Feedback(False, f"an overlap cannot be negative (got {depth}).")
    needed = minimal_overlap(func, image, chunks)
    if depth == needed:
        return Feedback(True, f"with {depth} px of overlap the tiles reproduce the whole image exactly.")
    if depth > needed:
        return Feedback(
            False,
            f"{depth} px is artifact-free, but a smaller overlap is too, and every extra "
            "pixel of margin is read and filtered again in each tile.",
            ("try smaller depths until an error appears; the answer is the last clean one",),
        )
    error = tile_error(func, image, chunks, depth)
    return Feedback(
        False,
        f"with {depth} px the tiles still differ from the whole image: max error "
        f"{error.max_abs_error:.3g} on {error.fraction_differing:.1%} of the pixels.",
        (
            "each output pixel depends on every input pixel its filter can reach; for a "
            "filter applied in two passes (erosion then dilation), the reaches add up",
        ),
    )


def check_tiled_count(answer: object, image, whole_image_count: int | None = None) -> Feedback:
    """Check a nuclei count computed tile by tile against the whole-image count.

    Parameters
    ----------
    answer : int
        The learner's tiled count.
    image : array-like
        The nuclei image (numpy or dask); used for the reference count when
        ``whole_image_count`` is not given.
    whole_image_count : int, optional
        The reference, when it is already known (avoids recounting).

    Returns
    -------
    Feedback
        Correct when the tiled count equals the whole-image count.

    Examples
    --------
    >>> check_tiled_count(12, None, whole_image_count=12).passed
    True
    """
    from nima_lessons.counting import count_nuclei

    if _unanswered(answer):
        return _not_answered(
            "`answer` to your tiled count",
            "start from count_tiled(image, 'naive') and see how far off it is",
        )
    count = _as_integer(answer, "the count")
    if isinstance(count, Feedback):
        return count
    if whole_image_count is None:
        whole_image_count = count_nuclei(np.asarray(image))
    error = count - int(whole_image_count)
    if error == 0:
        return Feedback(True, f"{count} nuclei, exactly the whole-image count.")
    if error > 0:
        return Feedback(
            False,
            f"{count} is {error} too many: nuclei cut by tile borders are counted once per tile.",
            (
                "count an object only in the tile that holds its centroid (overlap the "
                "tiles by at least one nucleus diameter), or label across tiles first",
            ),
        )
    return Feedback(
        False,
        f"{count} is {-error} too few: some nuclei were dropped, e.g. all border-touching "
        "objects were discarded, including those no other tile counts.",
        ("an exact rule must assign every nucleus to exactly one tile",),
    )


def check_projection(answer: object, stack) -> Feedback:
    """Check a lazy maximum projection over Z of a (T, Z, Y, X) stack.

    Parameters
    ----------
    answer : dask.array.Array
        The learner's projection, shaped (T, Y, X) and still lazy.
    stack : dask.array.Array
        The (T, Z, Y, X) stack it projects.

    Returns
    -------
    Feedback
        Correct for a lazy array with one block per time point whose values
        equal ``stack.max(axis=1)``.

    Examples
    --------
    >>> import dask.array as da
    >>> stack = da.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).rechunk((1, 3, 4, 5))
    >>> check_projection(stack.map_blocks(lambda b: b.max(axis=1), drop_axis=1), stack).passed
    True
    >>> print(check_projection(stack.mean(axis=1), stack).message)
    the values differ from the maximum over Z at 40 of 40 pixels.
    """
    import dask.array as da

    if _unanswered(answer):
        return _not_answered(
            "`answer` to your lazy projection",
            "stack.map_blocks(function_of_one_block, drop_axis=1)",
        )
    if isinstance(answer, np.ndarray):
        return Feedback(
            False,
            "this is a computed numpy array: the projection should stay lazy.",
            ("drop the .compute() (or np.asarray) at the end",),
        )
    if not isinstance(answer, da.Array):
        return Feedback(False, f"expected a dask array, got {type(answer).__name__}.")
    expected_shape = (stack.shape[0], *stack.shape[2:])
    if answer.shape != expected_shape:
        return Feedback(
            False,
            f"the projection has shape {answer.shape}; expected {expected_shape} (T, Y, X).",
            (
                "project over axis 1 (Z), and tell map_blocks with drop_axis=1 that the "
                "blocks lose that axis",
            ),
        )
    if answer.chunks[0] != stack.chunks[0]:
        return Feedback(
            False,
            f"the time axis is chunked {answer.chunks[0]} but the stack {stack.chunks[0]}: "
            "a time point should still be one block, read and projected on its own.",
            ("map_blocks keeps the blocks of the input: no rechunk is needed",),
        )
    differ = int((answer != stack.max(axis=1)).sum().compute())
    if differ:
        total = int(np.prod(expected_shape))
        return Feedback(
            False,
            f"the values differ from the maximum over Z at {differ} of {total} pixels.",
            ("inside the block function, take volume.max(axis=1)",),
        )
    return Feedback(True, "a lazy maximum projection, one block per time point.")
