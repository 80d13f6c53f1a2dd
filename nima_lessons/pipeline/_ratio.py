"""Per-pixel ratio images between two channels (the ratiometric read-out).

Zero denominators and pixels outside the mask become NaN, never inf.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from nima_lessons.pipeline._lift import apply_per_plane, check_dims
from nima_lessons.pipeline._median import median
from nima_lessons.pipeline._segment import select_channels


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


def ratio(
    im: xr.DataArray,
    numerator: str = "G",
    denominator: str = "C",
    mask: xr.DataArray | None = None,
    smooth_radius: int | None = None,
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

    Returns
    -------
    xarray.DataArray
        float64 ratio named "ratio", dims of ``im`` without C. Pixels with
        a denominator <= 0 (no signal) are NaN, as are masked-out pixels.

    Raises
    ------
    ValueError
        If a channel name is unknown (the available ones are listed).

    Examples
    --------
    >>> data = np.stack([np.full((2, 2), 6.0), np.array([[3.0, 0.0], [2.0, 1.0]])])
    >>> im = xr.DataArray(data, dims=("C", "Y", "X"), coords={"C": ["G", "C"]})
    >>> ratio(im).values
    array([[ 2., nan],
           [ 3.,  6.]])
    """
    check_dims(im, "im", ("C", "Y", "X"))
    top = select_channels(im, [numerator], "numerator").squeeze("C", drop=True)
    bottom = select_channels(im, [denominator], "denominator").squeeze("C", drop=True)
    if smooth_radius:
        top = median(top, "disk", smooth_radius)
        bottom = median(bottom, "disk", smooth_radius)
    result = apply_per_plane(
        ratio_plane, top, bottom, output_dtype=np.float64, name="im", keep_attrs=False,
        tiles="elementwise",
    )  # fmt: skip
    if mask is not None:
        check_dims(mask, "mask")
        result = result.where(mask != 0)
    order = [dim for dim in im.dims if dim != "C"]
    return result.transpose(*order).rename("ratio")
