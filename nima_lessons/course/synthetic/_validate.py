"""Argument checks shared by the generators.

Each check names the offending argument and says what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_seed(seed: object) -> int:
    """Return ``seed`` as an int, or raise ValueError when it is not a non-negative int."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_shape(shape: object, name: str, ndim: int) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of ``ndim`` positive ints, or raise ValueError."""
    if not isinstance(shape, Sequence) or isinstance(shape, str) or len(shape) != ndim:
        raise ValueError(f"{name} must be a sequence of {ndim} positive integers, got {shape!r}")
    return tuple(check_positive_int(size, f"{name}[{axis}]") for axis, size in enumerate(shape))


def check_chunks(chunks: object, shape: tuple[int, ...], name: str = "chunks") -> tuple[int, ...]:
    """Return ``chunks`` as positive ints no larger than ``shape``, or raise ValueError."""
    chunks = check_shape(chunks, name, len(shape))
    for axis, (chunk, size) in enumerate(zip(chunks, shape, strict=True)):
        if chunk > size:
            raise ValueError(
                f"{name}[{axis}]={chunk} is larger than the image ({size} px along axis {axis}); "
                f"expected chunks no larger than shape {shape}"
            )
    return chunks
