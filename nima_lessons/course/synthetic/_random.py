"""Counter-based random numbers: the same pixel gets the same noise in any chunk.

A pixel's noise is a hash of (seed, row, column), so rendering a region alone gives exactly
the values that region has in the whole image, whatever the chunking.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(cache=True)
def splitmix64(value: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """Scramble a 64-bit integer (the SplitMix64 finaliser), modulo 2**64."""
    z = value + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def pixel_hash(seed: int, row: int, col: int) -> np.uint64:  # pragma: no cover - compiled
    """Return 64 random bits that depend only on (seed, row, col)."""
    key = splitmix64(np.uint64(seed))
    return splitmix64(splitmix64(np.uint64(row) ^ key) + np.uint64(col) * _GOLDEN)


@njit(cache=True)
def bounded_noise(seed: int, row: int, col: int, amplitude: int) -> int:  # pragma: no cover
    """Return integer noise in ``[-amplitude, amplitude]`` for one pixel.

    The sum of two independent uniform integers: a triangular distribution,
    close enough to Gaussian for looks, and bounded, which is what lets the
    nuclei generator promise an exact threshold segmentation.
    """
    bits = pixel_hash(seed, row, col)
    span = np.uint64(amplitude + 1)
    first = np.int64((bits & _LOW32) % span)
    second = np.int64((bits >> np.uint64(32)) % span)
    return first + second - amplitude
