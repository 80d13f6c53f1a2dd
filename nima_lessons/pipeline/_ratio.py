"""Per-pixel ratio images between two channels (the ratiometric read-out).

Zero denominators and pixels outside the mask become NaN, never inf. The ratio image can be
smoothed as nima does: median filters of the ratio itself, square windows in turn (7 then 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from nima_lessons.io import select_channels
from nima_lessons.pipeline._lift import apply_per_plane, check_dims
from nima_lessons.pipeline._median import median, median_plane

__all__ = ["check_median_sizes", "ratio", "ratio_plane", "smoothed_ratio_plane"]


def ratio_plane(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` in float64, NaN where the denominator is <= 0.

    Examples
    --------
    >>> ratio_plane(np.array([[4.0, 1.0]]), np.array([[2.0, 0.0]]))
    array([[ 2., nan]])
    """
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    result = np.full(np.broadcast_shapes(numerator.shape, denominator.shape), np.nan)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def smoothed_ratio_plane(
    numerator: np.ndarray, denominator: np.ndarray, median_sizes: Sequence[int] = (7, 3)
) -> np.ndarray:
    """The ratio of one plane, median-filtered as nima smooths its ratio images.

    Pixels without a ratio (denominator <= 0, e.g. the background-subtracted
    background) count as 0, and square median windows of ``median_sizes``
    pixels are applied in turn to the whole plane (borders reflected).

    Examples
    --------
    >>> top = np.full((5, 5), 6.0); bottom = np.full((5, 5), 2.0); bottom[2, 2] = 0
    >>> smoothed_ratio_plane(top, bottom, (3,))[1:4, 1:4]   # the hole is smoothed over
    array([[3., 3., 3.],
           [3., 3., 3.],
           [3., 3., 3.]])
    """
    result = np.nan_to_num(ratio_plane(numerator, denominator), nan=0.0)
    for size in median_sizes:
        result = median_plane(result, "square", size // 2)
    return result


def check_median_sizes(
    median_sizes: Sequence[int] | None, name: str = "median_sizes"
) -> tuple[int, ...]:
    """Return ``median_sizes`` as a tuple of odd integers >= 1, or raise a ValueError."""
    sizes = tuple(median_sizes or ())
    if any(
        isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or n % 2 == 0
        for n in sizes
    ):
        raise ValueError(f"{name} must be odd window sizes in pixels (e.g. (7, 3)), got {sizes}")
    return tuple(int(n) for n in sizes)


def ratio(
    im: xr.DataArray,
    numerator: str = "G",
    denominator: str = "C",
    mask: xr.DataArray | None = None,
    smooth_radius: int | None = None,
    median_sizes: Sequence[int] = (),
) -> xr.DataArray:
    """Per-pixel ratio of two channels, lazily.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims including ("C", "Y", "X") and channel names as C
        coordinate, usually background-subtracted.
    numerator, denominator : str
        Channel names.
    mask : xarray.DataArray, optional
        Pixels where ``mask`` is 0/False become NaN, e.g. the labels of
        :func:`segment` (dims (T, Z, Y, X)).
    smooth_radius : int, optional
        Median-filter both channels with a disk of this radius before dividing
        (smoothing the ratio itself would mix NaN into the medians).
    median_sizes : sequence of int
        nima's smoothing of the ratio image itself, e.g. ``(7, 3)``: square
        median windows of these odd sizes applied in turn, with pixels that
        have no ratio counted as 0 (see :func:`smoothed_ratio_plane`); the
        mask is applied afterwards. Empty: no smoothing.

    Returns
    -------
    xarray.DataArray
        float64 ratio named "ratio", dims of ``im`` without C. Without
        ``median_sizes``, pixels with a denominator <= 0 (no signal) are NaN;
        masked-out pixels are NaN.

    Raises
    ------
    ValueError
        If a channel name is unknown (the available ones are listed) or a
        median size is not an odd positive integer.

    Examples
    --------
    >>> data = np.stack([np.full((2, 2), 6.0), np.array([[3.0, 0.0], [2.0, 1.0]])])
    >>> im = xr.DataArray(data, dims=("C", "Y", "X"), coords={"C": ["G", "C"]})
    >>> ratio(im).values
    array([[ 2., nan],
           [ 3.,  6.]])
    """
    check_dims(im, "im", ("C", "Y", "X"))
    median_sizes = check_median_sizes(median_sizes)
    top = select_channels(im, [numerator], "numerator").squeeze("C", drop=True)
    bottom = select_channels(im, [denominator], "denominator").squeeze("C", drop=True)
    if smooth_radius:
        top = median(top, "disk", smooth_radius)
        bottom = median(bottom, "disk", smooth_radius)
    if median_sizes:
        result = apply_per_plane(
            smoothed_ratio_plane, top, bottom, kwargs={"median_sizes": median_sizes},
            output_dtype=np.float64, name="im", keep_attrs=False,
        )  # fmt: skip
    else:
        result = apply_per_plane(
            ratio_plane, top, bottom, output_dtype=np.float64, name="im", keep_attrs=False,
            tiles="elementwise",
        )  # fmt: skip
    if mask is not None:
        check_dims(mask, "mask")
        result = result.where(mask != 0)
    order = [dim for dim in im.dims if dim != "C"]
    return result.transpose(*order).rename("ratio")
