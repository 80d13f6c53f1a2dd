"""Synthetic fluorescent nuclei with ground truth, for the tiled-counting lesson.

Nuclei lie anywhere in the image, at continuous positions drawn by random sequential placement,
so no tile size is special. Any region of the image can be rendered on its own and equals that
region of the whole image, so images far bigger than memory are written chunk by chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from nima_lessons.counting import NUCLEI_THRESHOLD
from nima_lessons.course.synthetic._random import bounded_noise
from nima_lessons.course.synthetic._validate import check_seed, check_shape

__all__ = [
    "HALO_PX",
    "LAYOUT",
    "NUCLEI_THRESHOLD",
    "NucleiImage",
    "NucleiLayout",
    "nuclei_count",
    "nuclei_image",
    "nuclei_layout",
    "render_nuclei",
]

#: How the nuclei are placed; stores record it, so that one made by an older generator
#: (nuclei on a lattice) is told apart.
LAYOUT = "random sequential placement"
#: How far a nucleus's light reaches beyond the circle of its semi-major axis;
#: further out the image is background. Halos of two nuclei never overlap, so
#: nuclei (at most 30 px across) are always at least ``2 * HALO_PX`` apart.
HALO_PX = 6.0
_SEMI_MAJOR_PX = (6.0, 15.0)
_ASPECT = (1.0, 1.5)
_MIN_SEMI_MINOR_PX = 5.0
_PEAK = (100.0, 200.0)
#: Candidate nuclei per pixel; placement keeps those clear of the earlier ones,
#: about a third of them (one nucleus per ~2,800 px^2).
_CANDIDATES_PER_PX = 1.1e-3
_BACKGROUND = 20
_NOISE = 8
_EDGE_PX = 1.0
_DOME = 0.2
#: Side of the squares of the spatial indexes. The placement's must be at
#: least the largest distance at which two nuclei conflict (two halo radii),
#: so that conflicts are found among the 3 x 3 neighbouring squares.
_PLACEMENT_BUCKET_PX = 48
_RENDER_BUCKET_PX = 64


@dataclass(frozen=True)
class NucleiLayout:
    """Where the nuclei of an image are and what they look like.

    One entry per nucleus in each array; nucleus ``k`` (0-based) has label
    ``k + 1``, and nuclei are numbered in raster order of their centres. A
    nucleus and its halo lie wholly inside the image, so no nucleus is cut by
    the image border.
    """

    shape: tuple[int, int]
    seed: int
    centre_y: np.ndarray  # float64, pixel coordinates (continuous)
    centre_x: np.ndarray
    semi_major: np.ndarray
    semi_minor: np.ndarray
    angle: np.ndarray
    peak: np.ndarray
    # Nuclei by square of _RENDER_BUCKET_PX: those of square b are
    # bucket_nuclei[bucket_offsets[b]:bucket_offsets[b + 1]].
    bucket_offsets: np.ndarray = field(repr=False)
    bucket_nuclei: np.ndarray = field(repr=False)

    @property
    def count(self) -> int:
        """Number of nuclei in the image."""
        return len(self.centre_y)


@dataclass(frozen=True)
class NucleiImage:
    """A rendered nuclei image with its ground truth."""

    image: np.ndarray  # uint8 (Y, X)
    labels: np.ndarray  # int32 (Y, X), 0 = background
    count: int


def nuclei_layout(shape: tuple[int, int] = (2000, 5000), seed: int = 0) -> NucleiLayout:
    """Draw the position, size, orientation and brightness of every nucleus.

    Candidates arrive at uniformly random, continuous positions over the
    whole image (a Poisson process); each is kept when its halo clears the
    halos of all nuclei kept before it and the image border (random
    sequential placement). The result has no preferred position or spacing:
    no grid, and so no tile size at which tile borders miss the nuclei.

    Parameters
    ----------
    shape : tuple of int
        Image shape (Y, X) in pixels.
    seed : int
        Random seed; the same seed and shape give the same layout.

    Returns
    -------
    NucleiLayout

    Raises
    ------
    ValueError
        If ``shape`` is not two positive integers or ``seed`` is negative.

    Examples
    --------
    >>> nuclei_layout((200, 300), seed=1).count == nuclei_layout((200, 300), seed=1).count
    True
    """
    shape = check_shape(shape, "shape", ndim=2)
    seed = check_seed(seed)
    height, width = shape
    rng = np.random.default_rng(seed)
    n = int(rng.poisson(_CANDIDATES_PER_PX * height * width))
    centre_y = rng.uniform(0.0, height - 1.0, n)
    centre_x = rng.uniform(0.0, width - 1.0, n)
    semi_major = rng.uniform(*_SEMI_MAJOR_PX, n)
    semi_minor = np.maximum(semi_major / rng.uniform(*_ASPECT, n), _MIN_SEMI_MINOR_PX)
    angle = rng.uniform(0.0, np.pi, n)
    peak = rng.uniform(*_PEAK, n)
    reach = semi_major + HALO_PX
    inside = (
        (centre_y >= reach)
        & (centre_y <= height - 1 - reach)
        & (centre_x >= reach)
        & (centre_x <= width - 1 - reach)
    )
    kept = np.flatnonzero(inside)
    kept = kept[_sequential_placement(centre_y[kept], centre_x[kept], reach[kept], shape)]
    kept = kept[np.lexsort((centre_x[kept], centre_y[kept]))]
    centre_y, centre_x = centre_y[kept], centre_x[kept]
    offsets, members = _bucket_index(centre_y, centre_x, shape)
    return NucleiLayout(
        shape=shape,
        seed=seed,
        centre_y=centre_y,
        centre_x=centre_x,
        semi_major=semi_major[kept],
        semi_minor=semi_minor[kept],
        angle=angle[kept],
        peak=peak[kept],
        bucket_offsets=offsets,
        bucket_nuclei=members,
    )


def _sequential_placement(centre_y, centre_x, reach, shape) -> np.ndarray:
    """Keep, in arrival order, each candidate whose halo clears those already kept."""
    grid = (
        shape[0] // _PLACEMENT_BUCKET_PX + 1,
        shape[1] // _PLACEMENT_BUCKET_PX + 1,
    )
    return _placement_kernel(centre_y, centre_x, reach, _PLACEMENT_BUCKET_PX, grid[0], grid[1])


@njit(cache=True)
def _placement_kernel(
    centre_y, centre_x, reach, bucket_px, grid_rows, grid_cols
):  # pragma: no cover - compiled
    # Kept nuclei are chained per square: head[square] -> next_kept[...] -> -1.
    head = np.full(grid_rows * grid_cols, -1, dtype=np.int64)
    next_kept = np.full(len(centre_y), -1, dtype=np.int64)
    kept = np.zeros(len(centre_y), dtype=np.bool_)
    for i in range(len(centre_y)):
        row = int(centre_y[i] // bucket_px)
        col = int(centre_x[i] // bucket_px)
        clear = True
        for r in range(max(row - 1, 0), min(row + 2, grid_rows)):
            for c in range(max(col - 1, 0), min(col + 2, grid_cols)):
                j = head[r * grid_cols + c]
                while j >= 0 and clear:
                    dy = centre_y[i] - centre_y[j]
                    dx = centre_x[i] - centre_x[j]
                    limit = reach[i] + reach[j]
                    clear = dy * dy + dx * dx >= limit * limit
                    j = next_kept[j]
        if clear:
            kept[i] = True
            square = row * grid_cols + col
            next_kept[i] = head[square]
            head[square] = i
    return kept


def _bucket_grid(shape: tuple[int, int]) -> tuple[int, int]:
    return (-(-shape[0] // _RENDER_BUCKET_PX), -(-shape[1] // _RENDER_BUCKET_PX))


def _bucket_index(centre_y, centre_x, shape) -> tuple[np.ndarray, np.ndarray]:
    """Group the nuclei by the square of the render grid holding their centre."""
    rows, cols = _bucket_grid(shape)
    square = (centre_y // _RENDER_BUCKET_PX).astype(np.int64) * cols + (
        centre_x // _RENDER_BUCKET_PX
    ).astype(np.int64)
    members = np.argsort(square, kind="stable").astype(np.int64)
    offsets = np.zeros(rows * cols + 1, dtype=np.int64)
    np.cumsum(np.bincount(square, minlength=rows * cols), out=offsets[1:])
    return offsets, members


def nuclei_count(shape: tuple[int, int] = (2000, 5000), seed: int = 0) -> int:
    """Return the true number of nuclei of an image without rendering it.

    Parameters
    ----------
    shape : tuple of int
        Image shape (Y, X).
    seed : int
        Random seed.

    Returns
    -------
    int

    Examples
    --------
    >>> nuclei_count((420, 420), seed=0) == nuclei_image((420, 420), seed=0).count
    True
    """
    return nuclei_layout(shape, seed).count


def render_nuclei(layout: NucleiLayout, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """Render one rectangular region of a nuclei image and its labels.

    Parameters
    ----------
    layout : NucleiLayout
        From :func:`nuclei_layout`.
    rows, cols : slice
        The region, with explicit start and stop inside the image; a step
        renders every step-th pixel (a nearest-neighbour downsampling, as
        used for the pyramid levels of a store).

    Returns
    -------
    image : numpy.ndarray of uint8
    labels : numpy.ndarray of int32
        Both with the region's shape; identical to ``whole[rows, cols]``.

    Raises
    ------
    ValueError
        If the region is not inside the image.
    """
    for name, region, size in (("rows", rows, layout.shape[0]), ("cols", cols, layout.shape[1])):
        if (
            region.start is None
            or region.stop is None
            or not (0 <= region.start <= region.stop <= size and (region.step or 1) > 0)
        ):
            raise ValueError(
                f"{name}={region} is outside the image of shape {layout.shape}: expected "
                f"explicit start and stop with 0 <= start <= stop <= {size} and a positive step"
            )
    row_step, col_step = rows.step or 1, cols.step or 1
    height = len(range(rows.start, rows.stop, row_step))
    width = len(range(cols.start, cols.stop, col_step))
    image = np.empty((height, width), dtype=np.uint8)
    labels = np.zeros((height, width), dtype=np.int32)
    grid_rows, grid_cols = _bucket_grid(layout.shape)
    _render_kernel(
        rows.start, cols.start, row_step, col_step, image, labels,
        layout.centre_y, layout.centre_x, layout.semi_major, layout.semi_minor,
        np.cos(layout.angle), np.sin(layout.angle), layout.peak,
        layout.bucket_offsets, layout.bucket_nuclei, grid_rows, grid_cols, layout.seed,
    )  # fmt: skip
    return image, labels


def nuclei_image(shape: tuple[int, int] = (2000, 5000), seed: int = 0) -> NucleiImage:
    """Render a whole nuclei image in memory, with its ground truth.

    Bright blurred ellipses about 10 to 30 px across on a dim noisy
    background, at random positions; nuclei never touch and are never cut by
    the image border, so ``scipy.ndimage.label(image > NUCLEI_THRESHOLD)``
    finds exactly ``count`` objects, as does ``scipy.ndimage.label(labels > 0)``.

    Parameters
    ----------
    shape : tuple of int
        Image shape (Y, X) in pixels.
    seed : int
        Random seed.

    Returns
    -------
    NucleiImage
        ``image`` (uint8), ``labels`` (int32, nucleus ``k`` has value ``k``,
        numbered in raster order of their centres) and ``count``.

    Raises
    ------
    ValueError
        If ``shape`` is not two positive integers or ``seed`` is negative.

    Examples
    --------
    >>> from scipy import ndimage
    >>> nuclei = nuclei_image((300, 400), seed=3)
    >>> ndimage.label(nuclei.image > NUCLEI_THRESHOLD)[1] == nuclei.count
    True
    """
    layout = nuclei_layout(shape, seed)
    image, labels = render_nuclei(layout, slice(0, layout.shape[0]), slice(0, layout.shape[1]))
    return NucleiImage(image=image, labels=labels, count=layout.count)


@njit(cache=True, nogil=True)
def _render_kernel(
    y0,
    x0,
    row_step,
    col_step,
    image,
    labels,
    centre_y,
    centre_x,
    semi_major,
    semi_minor,
    cos_angle,
    sin_angle,
    peak,
    bucket_offsets,
    bucket_nuclei,
    grid_rows,
    grid_cols,
    seed,
):  # pragma: no cover - compiled
    """Fill ``image`` and ``labels`` with every step-th pixel from corner (y0, x0).

    A pixel's value depends only on its coordinates and the one nucleus whose
    halo holds it (halos never overlap), which is what makes any region
    computable alone. Only nuclei indexed near the region are visited.
    """
    height, width = image.shape
    clean = np.full((height, width), _BACKGROUND, dtype=np.int32)
    reach_max = _SEMI_MAJOR_PX[1] + HALO_PX
    y_last = y0 + (height - 1) * row_step
    x_last = x0 + (width - 1) * col_step
    first_row = max(int((y0 - reach_max) // _RENDER_BUCKET_PX), 0)
    last_row = min(int((y_last + reach_max) // _RENDER_BUCKET_PX), grid_rows - 1)
    first_col = max(int((x0 - reach_max) // _RENDER_BUCKET_PX), 0)
    last_col = min(int((x_last + reach_max) // _RENDER_BUCKET_PX), grid_cols - 1)
    for square_row in range(first_row, last_row + 1):
        for square_col in range(first_col, last_col + 1):
            square = square_row * grid_cols + square_col
            for member in range(bucket_offsets[square], bucket_offsets[square + 1]):
                k = bucket_nuclei[member]
                _paint_nucleus(
                    k, y0, x0, row_step, col_step, clean, labels, centre_y[k], centre_x[k],
                    semi_major[k], semi_minor[k], cos_angle[k], sin_angle[k], peak[k],
                )  # fmt: skip
    threshold = NUCLEI_THRESHOLD
    for i in range(height):
        y = y0 + i * row_step
        for j in range(width):
            x = x0 + j * col_step
            value = clean[i, j]
            # Noise never carries a pixel across the threshold, so the
            # thresholded image is the thresholded noise-free image.
            room = max(abs(value - threshold) - 1, 0)
            noise = bounded_noise(seed, y, x, _NOISE)
            noise = min(max(noise, -room), room)
            image[i, j] = min(max(value + noise, 0), 255)


@njit(cache=True, nogil=True)
def _paint_nucleus(
    k, y0, x0, row_step, col_step, clean, labels, cy, cx, a, b, cos_angle, sin_angle, peak
):  # pragma: no cover - compiled
    """Draw nucleus ``k`` into the pixels of the region that lie inside its halo."""
    height, width = clean.shape
    reach = a + HALO_PX
    # Output rows and columns that can lie within `reach` of the centre (a
    # superset; the exact test is the distance below).
    i_first = max(math.floor((cy - reach - y0) / row_step), 0)
    i_last = min(math.ceil((cy + reach - y0) / row_step), height - 1)
    j_first = max(math.floor((cx - reach - x0) / col_step), 0)
    j_last = min(math.ceil((cx + reach - x0) / col_step), width - 1)
    for i in range(i_first, i_last + 1):
        dy = (y0 + i * row_step) - cy
        for j in range(j_first, j_last + 1):
            dx = (x0 + j * col_step) - cx
            if dy * dy + dx * dx >= reach * reach:
                continue
            along = (dx * cos_angle + dy * sin_angle) / a
            across = (-dx * sin_angle + dy * cos_angle) / b
            rho = math.sqrt(along * along + across * across)
            # Signed distance to the ellipse, to first order, in pixels: the
            # edge has the same width all around.
            if rho > 0.0:
                slope = math.sqrt((along / a) ** 2 + (across / b) ** 2) / rho
                distance = (rho - 1.0) / slope
            else:
                distance = -b
            edge = 1.0 / (1.0 + math.exp(min(distance / _EDGE_PX, 50.0)))
            dome = 1.0 - _DOME * min(rho, 1.0) ** 2
            clean[i, j] = math.floor(_BACKGROUND + peak * edge * dome + 0.5)
            if rho < 1.0:
                labels[i, j] = k + 1
