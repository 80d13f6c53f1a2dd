"""The one search for where a monotone yes/no question switches from no to yes.

Used for the smallest exact tile overlap and for the first uniform frame of a zoom: both
galloping (0, 1, 2, 4, ...) then bisecting, about ``2 * log2(answer)`` questions.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["first_passing"]


def first_passing(passes: Callable[[int], bool], stop: int) -> int | None:
    """Return the smallest ``i`` in ``[0, stop]`` with ``passes(i)``, for a monotone ``passes``.

    ``passes`` must be false up to some index and true from there on. It is asked
    at 0, 1, 2, 4, 8, ... (capped at ``stop``) until it holds, then the switch is
    bisected between the last failing and the first passing index.

    Parameters
    ----------
    passes : callable
        ``passes(i) -> bool``; callers memoise it when a question is costly.
    stop : int
        The largest index asked, at least 0.

    Returns
    -------
    int or None
        ``None`` when even ``passes(stop)`` is false.

    Examples
    --------
    >>> asked = []
    >>> first_passing(lambda i: asked.append(i) or i >= 377, 999), len(asked)
    (377, 19)
    >>> first_passing(lambda i: False, 10) is None
    True
    """
    failing, probe = -1, 0
    while not passes(probe):
        if probe >= stop:
            return None
        failing, probe = probe, min(max(1, 2 * probe), stop)
    while probe - failing > 1:
        middle = (failing + probe) // 2
        if passes(middle):
            probe = middle
        else:
            failing = middle
    return probe
