"""Synthetic fluorescent nuclei with ground truth, for the tiled-counting lesson.

Any region of the image can be rendered on its own and equals that region of the whole image,
so images far bigger than memory are written chunk by chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from nima_lessons.counting import NUCLEI_THRESHOLD
from nima_lessons.course.synthetic._random import bounded_noise
from nima_lessons.course.synthetic._validate import check_seed, check_shape


#: Side of the square territory of one nucleus. Nuclei are at most 30 px
#: across and keep :data:`_MARGIN_PX` from their territory's border, so two
#: nuclei are always at least 12 px apart.
CELL_PX = 42
_MARGIN_PX = 6
_SEMI_MAJOR_PX = (6.0, 15.0)
_ASPECT = (1.0, 1.5)
_MIN_SEMI_MINOR_PX = 5.0
_PEAK = (100.0, 200.0)
_OCCUPANCY = 0.7
_BACKGROUND = 20
_NOISE = 8
_EDGE_PX = 1.0
_DOME = 0.2


@dataclass(frozen=True)
class NucleiLayout:
    """Where the nuclei of an image are and what they look like.

    One nucleus at most per ``CELL_PX`` square territory; arrays are indexed
    by territory row and column. Only territories lying wholly inside the
    image hold a nucleus, so no nucleus is cut by the image border.
    """

    shape: tuple[int, int]
    seed: int
    label: np.ndarray  # int32, 0 for an empty territory, else 1..count in raster order
    centre_y: np.ndarray
    centre_x: np.ndarray
    semi_major: np.ndarray
    semi_minor: np.ndarray
    angle: np.ndarray
    peak: np.ndarray

    @property
    def count(self) -> int:
        """Number of nuclei in the image."""
        return int(np.count_nonzero(self.label))


@dataclass(frozen=True)
class NucleiImage:
    """A rendered nuclei image with its ground truth."""

    image: np.ndarray  # uint8 (Y, X)
    labels: np.ndarray  # int32 (Y, X), 0 = background
    count: int


def nuclei_layout(shape: tuple[int, int] = (2000, 5000), seed: int = 0) -> NucleiLayout:
    """Draw the position, size, orientation and brightness of every nucleus.

    Parameters
    ----------
    shape : tuple of int
        Image shape (Y, X) in pixels.
    seed : int
        Random seed; the same seed and shape give the same layout.

    Returns
    -------
    NucleiLayout

    Examples
    --------
    >>> nuclei_layout((200, 300), seed=1).count == nuclei_layout((200, 300), seed=1).count
    True
    """
    shape = check_shape(shape, "shape", ndim=2)
    seed = check_seed(seed)
    grid = (shape[0] // CELL_PX, shape[1] // CELL_PX)
    rng = np.random.default_rng(seed)
    occupied = rng.random(grid) < _OCCUPANCY
    semi_major = rng.uniform(*_SEMI_MAJOR_PX, grid)
    aspect = rng.uniform(*_ASPECT, grid)
    semi_minor = np.maximum(semi_major / aspect, _MIN_SEMI_MINOR_PX)
    angle = rng.uniform(0.0, np.pi, grid)
    # The centre keeps the bounding circle (radius semi_major) plus the margin
    # inside the territory.
    reach = semi_major + _MARGIN_PX
    offset_y = reach + rng.random(grid) * (CELL_PX - 2 * reach)
    offset_x = reach + rng.random(grid) * (CELL_PX - 2 * reach)
    rows, cols = np.indices(grid)
    label = np.zeros(grid, dtype=np.int32)
    label[occupied] = np.arange(1, np.count_nonzero(occupied) + 1, dtype=np.int32)
    return NucleiLayout(
        shape=shape,
        seed=seed,
        label=label,
        centre_y=rows * CELL_PX + offset_y,
        centre_x=cols * CELL_PX + offset_x,
        semi_major=semi_major,
        semi_minor=semi_minor,
        angle=angle,
        peak=rng.uniform(*_PEAK, grid),
    )


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


def render_nuclei(
    layout: NucleiLayout, rows: slice, cols: slice
) -> tuple[np.ndarray, np.ndarray]:
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
        if region.start is None or region.stop is None or not (
            0 <= region.start <= region.stop <= size and (region.step or 1) > 0
        ):
            raise ValueError(
                f"{name}={region} is outside the image of shape {layout.shape}: expected "
                f"explicit start and stop with 0 <= start <= stop <= {size} and a positive step"
            )
    row_step, col_step = rows.step or 1, cols.step or 1
    height = len(range(rows.start, rows.stop, row_step))
    width = len(range(cols.start, cols.stop, col_step))
    image = np.empty((height, width), dtype=np.uint8)
    labels = np.empty((height, width), dtype=np.int32)
    _render_kernel(
        rows.start, cols.start, row_step, col_step, image, labels, layout.label,
        layout.centre_y, layout.centre_x, layout.semi_major, layout.semi_minor,
        np.cos(layout.angle), np.sin(layout.angle), layout.peak, layout.seed, CELL_PX,
    )  # fmt: skip
    return image, labels


def nuclei_image(
    shape: tuple[int, int] = (2000, 5000), seed: int = 0
) -> NucleiImage:
    """Render a whole nuclei image in memory, with its ground truth.

    Bright blurred ellipses about 10 to 30 px across on a dim noisy
    background; nuclei never touch and are never cut by the image border, so
    ``scipy.ndimage.label(image > NUCLEI_THRESHOLD)`` finds exactly ``count``
    objects, as does ``scipy.ndimage.label(labels > 0)``.

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
        numbered in raster order of their territories) and ``count``.

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
    y0, x0, row_step, col_step, image, labels, label, centre_y, centre_x, semi_major, semi_minor,
    cos_angle, sin_angle, peak, seed, cell_px,
):  # pragma: no cover - compiled
    """Fill ``image`` and ``labels`` with every step-th pixel from corner (y0, x0).

    Each pixel only looks at the nucleus of its own territory, which is what
    makes any region computable alone.
    """
    grid_rows, grid_cols = label.shape
    threshold = NUCLEI_THRESHOLD
    for i in range(image.shape[0]):
        y = y0 + i * row_step
        gy = y // cell_px
        for j in range(image.shape[1]):
            x = x0 + j * col_step
            gx = x // cell_px
            clean = _BACKGROUND
            owner = 0
            if gy < grid_rows and gx < grid_cols and label[gy, gx] > 0:
                dy = y - centre_y[gy, gx]
                dx = x - centre_x[gy, gx]
                a = semi_major[gy, gx]
                b = semi_minor[gy, gx]
                along = (dx * cos_angle[gy, gx] + dy * sin_angle[gy, gx]) / a
                across = (-dx * sin_angle[gy, gx] + dy * cos_angle[gy, gx]) / b
                rho = math.sqrt(along * along + across * across)
                # Signed distance to the ellipse, to first order, in pixels:
                # the edge has the same width all around.
                if rho > 0.0:
                    slope = math.sqrt((along / a) ** 2 + (across / b) ** 2) / rho
                    distance = (rho - 1.0) / slope
                else:
                    distance = -b
                edge = 1.0 / (1.0 + math.exp(min(distance / _EDGE_PX, 50.0)))
                dome = 1.0 - _DOME * min(rho, 1.0) ** 2
                clean = int(math.floor(_BACKGROUND + peak[gy, gx] * edge * dome + 0.5))
                if rho < 1.0:
                    owner = label[gy, gx]
            # Noise never carries a pixel across the threshold, so the
            # thresholded image is the thresholded noise-free image.
            room = max(abs(clean - threshold) - 1, 0)
            noise = bounded_noise(seed, y, x, _NOISE)
            noise = min(max(noise, -room), room)
            image[i, j] = min(max(clean + noise, 0), 255)
            labels[i, j] = owner
