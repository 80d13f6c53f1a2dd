"""A Mandelbrot zoom stack: an arbitrarily long image stack computed only when looked at.

Frame i shows the Mandelbrot set zoomed in i times by a constant factor towards a point of its
boundary; the stack exists as a lazy dask array, the way a huge dataset is opened lazily.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import dask
import dask.array as da
import numpy as np
from numba import njit

from nima_lessons._search import first_passing
from nima_lessons.course.synthetic._validate import check_positive_int, check_shape

__all__ = [
    "MAX_ITERATIONS",
    "START_WIDTH",
    "ZOOM_CENTRE",
    "ZOOM_PER_LEVEL",
    "UniformFrame",
    "first_uniform_frame",
    "frame_width",
    "is_uniform",
    "mandelbrot_frame",
    "mandelbrot_stack",
    "mandelbrot_stack_delayed",
    "rendered_frames",
]

#: The point zoomed into: the Misiurewicz point M(4,1), refined to float64 precision by Newton's
#: method. Its orbit lands on a repelling fixed point, so every zoom level keeps showing
#: structure, and escape counts stay low (fast renders) down to the precision limit.
ZOOM_CENTRE = complex(-0.22815549365396182, 1.1151425080399373)
#: Width of frame 0 in the complex plane: the whole set is visible.
START_WIDTH = 3.0
#: Each frame is this many times narrower than the one before.
ZOOM_PER_LEVEL = 1.01
#: Escape counts stop here (pixels of the set itself get this value).
MAX_ITERATIONS = 256

_lock = threading.Lock()
_rendered = [0]


class UniformFrame(NamedTuple):
    """Result of :func:`first_uniform_frame`."""

    index: int
    frames_computed: int


def rendered_frames() -> int:
    """Return how many frames :func:`mandelbrot_frame` has rendered in this process.

    Handy to check that building a lazy stack renders nothing and that
    computing one frame renders exactly one.
    """
    return _rendered[0]


def frame_width(index: int, zoom_per_level: float = ZOOM_PER_LEVEL) -> float:
    """Return the width in the complex plane of frame ``index``.

    Examples
    --------
    >>> frame_width(0)
    3.0
    """
    # A negative power underflows to 0.0 for very deep levels, where a positive
    # one would overflow: such frames are simply uniform.
    return START_WIDTH * zoom_per_level**-index


def mandelbrot_frame(
    index: int,
    shape: tuple[int, int] = (512, 512),
    zoom_per_level: float = ZOOM_PER_LEVEL,
) -> np.ndarray:
    """Render zoom level ``index`` of the Mandelbrot set.

    Parameters
    ----------
    index : int
        Zoom level, 0 for the whole set.
    shape : tuple of int
        Frame shape (Y, X) in pixels.
    zoom_per_level : float
        Magnification from one level to the next (> 1).

    Returns
    -------
    numpy.ndarray of uint16
        Escape counts (iterations before ``|z| > 2``, at most
        :data:`MAX_ITERATIONS`), centred on :data:`ZOOM_CENTRE`.

    Examples
    --------
    >>> frame = mandelbrot_frame(0, shape=(64, 96))
    >>> frame.shape, frame.dtype.name, int(frame.max())
    ((64, 96), 'uint16', 256)
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    shape = check_shape(shape, "shape", ndim=2)
    zoom_per_level = _check_zoom(zoom_per_level)
    pixel = frame_width(int(index), zoom_per_level) / shape[1]
    frame = _escape_counts(
        ZOOM_CENTRE.real, ZOOM_CENTRE.imag, pixel, shape[0], shape[1], MAX_ITERATIONS
    )
    with _lock:
        _rendered[0] += 1
    return frame


def mandelbrot_stack(
    n_frames: int = 200_000,
    shape: tuple[int, int] = (512, 512),
    zoom_per_level: float = ZOOM_PER_LEVEL,
) -> da.Array:
    """Return the zoom stack as a lazy dask array, one frame per chunk.

    The graph is a single blockwise layer (``da.map_blocks`` with no input,
    each chunk rendered from its ``block_id``): its task for frame ``i`` is
    generated only when needed, so building it costs little even for millions
    of frames, and computing one frame renders that frame only.

    Parameters
    ----------
    n_frames : int
        Number of zoom levels.
    shape : tuple of int
        Frame shape (Y, X) in pixels.
    zoom_per_level : float
        Magnification from one frame to the next (> 1).

    Returns
    -------
    dask.array.Array
        uint16, shape ``(n_frames, *shape)``, chunks ``(1, *shape)``.

    Examples
    --------
    >>> stack = mandelbrot_stack(200_000, shape=(64, 64))
    >>> stack.shape, stack.chunksize, len(stack.dask.layers)
    ((200000, 64, 64), (1, 64, 64), 1)
    >>> bool((stack[5].compute() == mandelbrot_frame(5, (64, 64))).all())
    True
    """
    n_frames = check_positive_int(n_frames, "n_frames")
    shape = check_shape(shape, "shape", ndim=2)
    zoom_per_level = _check_zoom(zoom_per_level)
    # A name of our own: dask would otherwise tokenize the chunks tuple, as long as the stack.
    return da.map_blocks(
        _render_block,
        name=f"mandelbrot-{n_frames}-{shape[0]}x{shape[1]}-{zoom_per_level!r}",
        chunks=((1,) * n_frames, (shape[0],), (shape[1],)),
        dtype=np.uint16,
        meta=np.empty((0, 0, 0), dtype=np.uint16),
        shape=shape,
        zoom_per_level=zoom_per_level,
    )


def mandelbrot_stack_delayed(
    n_frames: int,
    shape: tuple[int, int] = (512, 512),
    zoom_per_level: float = ZOOM_PER_LEVEL,
) -> da.Array:
    """Build the same stack the classic way: one delayed render per frame, then stack.

    Equal values to :func:`mandelbrot_stack`, but the graph holds one
    delayed call, one array and one task per frame, so building it grows with
    ``n_frames`` (seconds for 200,000 frames).

    Parameters
    ----------
    n_frames : int
        Number of zoom levels.
    shape : tuple of int
        Frame shape (Y, X) in pixels.
    zoom_per_level : float
        Magnification from one frame to the next (> 1).

    Returns
    -------
    dask.array.Array
        uint16, shape ``(n_frames, *shape)``, chunks ``(1, *shape)``.

    Examples
    --------
    >>> stack = mandelbrot_stack_delayed(10, shape=(32, 32))
    >>> bool((stack[3].compute() == mandelbrot_stack(10, (32, 32))[3].compute()).all())
    True
    """
    n_frames = check_positive_int(n_frames, "n_frames")
    shape = check_shape(shape, "shape", ndim=2)
    zoom_per_level = _check_zoom(zoom_per_level)
    render = dask.delayed(mandelbrot_frame, pure=True)
    frames = [
        da.from_delayed(render(index, shape, zoom_per_level), shape=shape, dtype=np.uint16)
        for index in range(n_frames)
    ]
    return da.stack(frames, axis=0)


def is_uniform(frame: np.ndarray, tolerance: float = 0) -> bool:
    """Return whether all pixels of ``frame`` are equal within ``tolerance``.

    The criterion is ``frame.max() - frame.min() <= tolerance``.

    Examples
    --------
    >>> is_uniform(np.full((3, 3), 7)), is_uniform(np.eye(3)), is_uniform(np.eye(3), 1)
    (True, False, True)
    """
    frame = np.asarray(frame)
    return bool(frame.max().astype(np.float64) - frame.min() <= tolerance)


def first_uniform_frame(stack, tolerance: float = 0) -> UniformFrame:
    """Find the first frame whose pixels are all equal, computing as few frames as possible.

    Deep in the zoom, the pixel spacing falls below the float64 resolution
    of the centre coordinates: every pixel then holds the same complex number
    and the frame is exactly uniform, as is every deeper frame. Because
    uniformity only switches on once, an exponential search (frames 1, 2, 4,
    8... until one is uniform) followed by a binary search in the last
    interval (``nima_lessons._search.first_passing``) finds the switch in
    about ``2 * log2(index)`` frames instead of ``index``.

    Parameters
    ----------
    stack : array-like
        Frames along the first axis (a dask array is computed one frame at a
        time, as probed).
    tolerance : float
        Largest ``max - min`` of a frame still called uniform.

    Returns
    -------
    UniformFrame
        ``index`` of the first uniform frame and ``frames_computed``, the
        number of frames looked at.

    Raises
    ------
    ValueError
        If the last frame is not uniform (the stack is too short), or the
        stack has no frames.

    Examples
    --------
    >>> frames = np.zeros((1000, 2, 2)); frames[:377, 0, 0] = 1
    >>> first_uniform_frame(frames)
    UniformFrame(index=377, frames_computed=19)
    """
    n_frames = len(stack)
    if n_frames == 0:
        raise ValueError("stack has no frames")
    checked: dict[int, bool] = {}

    def uniform(index: int) -> bool:
        if index not in checked:
            checked[index] = is_uniform(np.asarray(stack[index]), tolerance)
        return checked[index]

    index = first_passing(uniform, n_frames - 1)
    if index is None:
        raise ValueError(
            f"stack has no uniform frame: the last frame ({n_frames - 1}) still varies; "
            f"expected a longer stack or a larger tolerance (got {tolerance})"
        )
    return UniformFrame(index, len(checked))


def _check_zoom(zoom_per_level: float) -> float:
    if not isinstance(zoom_per_level, (int, float, np.floating)) or not zoom_per_level > 1:
        raise ValueError(f"zoom_per_level must be a number > 1, got {zoom_per_level!r}")
    return float(zoom_per_level)


def _render_block(
    block_id: tuple[int, ...], shape: tuple[int, int], zoom_per_level: float
) -> np.ndarray:
    """Render the frame of one chunk; the chunk index along axis 0 is the zoom level."""
    return mandelbrot_frame(block_id[0], shape, zoom_per_level)[np.newaxis]


@njit(cache=True, nogil=True)
def _escape_counts(centre_x, centre_y, pixel, height, width, max_iterations):  # pragma: no cover
    """Escape-time counts of a grid of ``pixel`` spacing centred on (centre_x, centre_y)."""
    counts = np.empty((height, width), dtype=np.uint16)
    for row in range(height):
        c_imag = centre_y - (row - (height - 1) / 2) * pixel  # row 0 at the top
        for col in range(width):
            c_real = centre_x + (col - (width - 1) / 2) * pixel
            z_real = 0.0
            z_imag = 0.0
            iteration = 0
            while iteration < max_iterations and z_real * z_real + z_imag * z_imag <= 4.0:
                z_real, z_imag = (
                    z_real * z_real - z_imag * z_imag + c_real,
                    2.0 * z_real * z_imag + c_imag,
                )
                iteration += 1
            counts[row, col] = iteration
    return counts
