"""The memory quiz of lesson 00: how big is a time-lapse, and how much of it fits at once.

Each question's text comes from :data:`QUIZ_DATASET`, and its checker computes the answer
from the same figures, so the question and the verdict cannot drift apart. Checkers never
reveal the expected value; they say what a wrong answer most likely counted.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from nima_lessons.course.exercises import Feedback

__all__ = [
    "QUIZ_DATASET",
    "QuizDataset",
    "check_dataset_terabytes",
    "check_time_points_in_memory",
    "dataset_question",
    "time_points_question",
]


@dataclass(frozen=True)
class QuizDataset:
    """The figures the quiz is about: a light-sheet time-lapse and a laptop."""

    width: int = 1024
    height: int = 2048
    depth: int = 100
    frames: int = 3700
    dtype: str = "uint16"
    work_dtype: str = "float64"
    laptop_bytes: int = 16 * 10**9


#: A time-lapse of the size the course slides quote, and a laptop.
QUIZ_DATASET = QuizDataset()

_TOLERANCE = 0.05  # relative: accepts answers rounded to two significant digits


def _bytes_per_time_point(dtype: str) -> int:
    d = QUIZ_DATASET
    return d.width * d.height * d.depth * np.dtype(dtype).itemsize


def _dataset_bytes() -> int:
    return _bytes_per_time_point(QUIZ_DATASET.dtype) * QUIZ_DATASET.frames


def dataset_question() -> str:
    """Return the text (Markdown) of the dataset-size question."""
    d = QUIZ_DATASET
    return (
        f"**Question 1.** A light-sheet time-lapse has {d.frames:,} time points; each is a "
        f"{d.width:,} (X) x {d.height:,} (Y) x {d.depth} (Z) stack of `{d.dtype}` "
        "pixels. How many **terabytes** (1 TB = 10^12 bytes) does it take, uncompressed? "
        "Put your answer, a number, in `answer_tb`."
    )


def time_points_question() -> str:
    """Return the text (Markdown) of the time-points-in-memory question."""
    d = QUIZ_DATASET
    return (
        f"**Question 2.** You process the same data on a laptop with "
        f"{d.laptop_bytes // 10**9} GB (10^9 bytes each) of memory. Each time point is "
        f"read as `{d.dtype}` and processed in a `{d.work_dtype}` copy, and both must "
        "be in memory together. At most how many **whole time points** can be processed at "
        "once? Put your answer, a whole number, in `answer_time_points`."
    )


def _not_answered(name: str) -> Feedback:
    return Feedback(
        False,
        f"not answered yet: set `{name}` in the cell above, then run this cell again.",
    )


def _close(value: float, target: float) -> bool:
    return math.isclose(value, target, rel_tol=_TOLERANCE)


def _as_number(answer: object, name: str) -> float | Feedback:
    """The answer as a positive float, or the feedback on an empty or unusable answer."""
    if answer is None or answer is Ellipsis:
        return _not_answered(name)
    if isinstance(answer, (bool, np.bool_)) or not isinstance(answer, numbers.Real):
        return Feedback(
            False,
            f"`{name}` must be a number, got {answer!r} ({type(answer).__name__}).",
            ("type digits only, e.g. 0.25 or 12",),
        )
    if not math.isfinite(float(answer)) or float(answer) <= 0:
        return Feedback(False, f"`{name}` must be a positive number, got {answer!r}.")
    return float(answer)


def check_dataset_terabytes(answer: object) -> Feedback:
    """Check the size of the quiz's time-lapse, in TB (10^12 bytes).

    Parameters
    ----------
    answer : float or None
        The learner's answer; ``None`` (or ``...``) while unanswered.

    Returns
    -------
    Feedback
        Correct within 5 %; otherwise the likely slip, without the expected value.

    Examples
    --------
    >>> print(check_dataset_terabytes(None))
    Not yet: not answered yet: set `answer_tb` in the cell above, then run this cell again.
    """
    value = _as_number(answer, "answer_tb")
    if isinstance(value, Feedback):
        return value
    total = _dataset_bytes()
    itemsize = np.dtype(QUIZ_DATASET.dtype).itemsize
    if _close(value, total / 1e12):
        return Feedback(True, f"{value:g} TB: pixels x {itemsize} bytes, over 10^12.")
    dtype = QUIZ_DATASET.dtype
    pixels = total // itemsize
    slips = [
        (
            total / 2**40,
            "that is in TiB (2^40 bytes); the question asks for TB (10^12 bytes).",
        ),
        (total / 1e9, "that is the size in GB; 1 TB is 1000 GB."),
        (
            total / QUIZ_DATASET.frames / 1e12,
            "that is one time point; there are many.",
        ),
    ]
    slips += [
        (
            pixels * size / 1e12,
            f"that counts {size} byte(s) per pixel; `{dtype}` takes {itemsize}.",
        )
        for size in (1, 2, 4, 8)
        if size != itemsize
    ]
    for target, reason in slips:
        if _close(value, target):
            return Feedback(False, f"{value:g} TB: {reason}")
    return Feedback(
        False,
        f"{value:g} TB is not the size of this data set.",
        ("multiply width, height, depth, time points and bytes per pixel, then divide by 10^12",),
    )


def check_time_points_in_memory(answer: object) -> Feedback:
    """Check how many whole time points fit in the quiz laptop's memory.

    Parameters
    ----------
    answer : int or None
        The learner's answer; ``None`` (or ``...``) while unanswered.

    Returns
    -------
    Feedback
        Correct only for the exact count; otherwise the likely slip, without
        the expected value.

    Examples
    --------
    >>> print(check_time_points_in_memory("many"))  # doctest: +NORMALIZE_WHITESPACE
    Not yet: `answer_time_points` must be a number, got 'many' (str).
      hint: type digits only, e.g. 0.25 or 12
    """
    name = "answer_time_points"
    value = _as_number(answer, name)
    if isinstance(value, Feedback):
        return value
    if not value.is_integer():
        return Feedback(False, f"{value:g} is not a whole number: a time point is all or nothing.")
    count = int(value)
    memory = QUIZ_DATASET.laptop_bytes
    raw = _bytes_per_time_point(QUIZ_DATASET.dtype)
    work = _bytes_per_time_point(QUIZ_DATASET.work_dtype)
    need = count * (raw + work)
    if need <= memory < need + raw + work:
        return Feedback(
            True,
            f"{count} time points need {need / 1e9:.1f} GB of the {memory / 1e9:g} GB.",
        )
    time_points = "time point needs" if count == 1 else "time points need"
    if need > memory:
        if count == memory // raw or count == memory // work:
            counted = "input" if count == memory // raw else f"`{QUIZ_DATASET.work_dtype}` copy"
            reason = f"that counts only the {counted}; both are in memory together."
        elif count in {
            -(-memory // (raw + work)),
            2**30 * memory // 10**9 // (raw + work),
        }:
            reason = (
                "round down (part of a time point is of no use), and count a GB as "
                "10^9 bytes, not 2^30."
            )
        else:
            reason = "that does not fit."
        return Feedback(
            False,
            f"{count} {time_points} {need / 1e9:.1f} GB: {reason}",
            ("a time point needs its input and its working copy together",),
        )
    return Feedback(
        False,
        f"{count} {time_points} only {need / 1e9:.1f} GB: more fit in {memory / 1e9:g} GB.",
        ("divide the memory by what one time point needs, and round down",),
    )
