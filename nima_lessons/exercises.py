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
