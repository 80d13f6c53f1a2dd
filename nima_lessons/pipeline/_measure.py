"""Per-cell measurements as a tidy table, computed once at the very end.

One small table per time point is built lazily; ``dask.compute`` gathers them.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask
import numpy as np
import pandas as pd
import xarray as xr

from nima_lessons.pipeline._lift import check_dims
from nima_lessons.pipeline._segment import select_channels


def measure_plane(
    image: np.ndarray,
    labels: np.ndarray,
    channel_names: Sequence[str],
    numerator: str | None = None,
    denominator: str | None = None,
) -> pd.DataFrame:
    """Area and mean intensity of every label of one time point.

    Parameters
    ----------
    image : numpy.ndarray
        (C, ...) channels of one time point; the trailing dims match ``labels``.
    labels : numpy.ndarray
        Integer labels, 0 for background.
    channel_names : sequence of str
        Names of the C entries, used for the ``mean_<name>`` columns.
    numerator, denominator : str, optional
        Channels whose mean ratio gives the ``ratio`` column.

    Returns
    -------
    pandas.DataFrame
        Columns label, area, mean_<channel>..., ratio (if requested), one row
        per label present.

    Examples
    --------
    >>> image = np.stack([np.full((2, 2), 4.0), np.full((2, 2), 2.0)])
    >>> table = measure_plane(image, np.array([[1, 1], [0, 2]]), ["G", "C"], "G", "C")
    >>> table["ratio"].tolist()
    [2.0, 2.0]
    """
    flat_labels = np.asarray(labels).ravel().astype(np.int64)
    present = np.unique(flat_labels)
    present = present[present > 0]
    n_bins = int(flat_labels.max()) + 1 if flat_labels.size else 1
    area = np.bincount(flat_labels, minlength=n_bins)[present]
    table = {"label": present.astype(np.int64), "area": area.astype(np.int64)}
    for name, channel in zip(channel_names, np.asarray(image), strict=True):
        weights = channel.ravel().astype(np.float64)
        sums = np.bincount(flat_labels, weights=weights, minlength=n_bins)
        table[f"mean_{name}"] = sums[present] / area
    if numerator is not None and denominator is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            table["ratio"] = table[f"mean_{numerator}"] / table[f"mean_{denominator}"]
    return pd.DataFrame(table)


def measure(
    im: xr.DataArray,
    labels: xr.DataArray,
    numerator: str | None = "G",
    denominator: str | None = "C",
    channels: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Measure every labelled cell at every time point (and Z plane).

    Building the per-plane tables is lazy; they are all computed together by
    one ``dask.compute`` call at the end, so each plane is read once.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims (T, C, [Z,] Y, X) and channel names as C coordinate.
    labels : xarray.DataArray
        Labels with the dims of ``im`` without C, e.g. from :func:`segment`
        (numbered independently in each (T, Z) plane).
    numerator, denominator : str or None
        Channels whose ratio of means fills the ``ratio`` column; ``None``
        leaves it out.
    channels : sequence of str, optional
        Channels measured; default all.

    Returns
    -------
    pandas.DataFrame
        Tidy table with columns T, label, area (pixels), mean_<channel> for
        each channel and ratio (mean numerator / mean denominator); with
        more than one Z plane, a Z column after T (one row per plane and label).

    Raises
    ------
    ValueError
        If the dims of ``labels`` do not match ``im`` or a channel is unknown.
    """
    check_dims(im, "im", ("T", "C", "Y", "X"))
    check_dims(labels, "labels", ("T", "Y", "X"))
    expected = tuple(dim for dim in im.dims if dim != "C")
    if set(labels.dims) != set(expected):
        raise ValueError(f"labels must have dims {expected}, got {labels.dims}")
    for dim in expected:
        if labels.sizes[dim] != im.sizes[dim]:
            raise ValueError(
                f"labels has {dim} size {labels.sizes[dim]} but im has {im.sizes[dim]}"
            )
    names = [str(c) for c in im.coords["C"].values] if "C" in im.coords else [
        str(i) for i in range(im.sizes["C"])
    ]
    wanted = list(channels if channels is not None else names)
    for name in (numerator, denominator):
        if name is not None and name not in wanted:
            wanted.append(name)
    im = select_channels(im.assign_coords(C=names), wanted, "channels")
    im = im.transpose("T", "C", *expected[1:])
    labels = labels.transpose(*expected)
    times = im.coords["T"].values if "T" in im.coords else np.arange(im.sizes["T"])
    planes = [
        {"T": t, "Z": z} if "Z" in im.dims else {"T": t}
        for t in range(im.sizes["T"])
        for z in range(im.sizes.get("Z", 1))
    ]
    from nima_lessons.pipeline._lift import is_tiled
    from nima_lessons.pipeline._tiled_measure import tiled_tables

    if is_tiled(im) or is_tiled(labels):  # per-tile sums merged per label
        computed = tiled_tables(im, labels, planes, wanted, numerator, denominator)
    else:
        tables = [
            dask.delayed(measure_plane)(
                im.isel(where).data, labels.isel(where).data, wanted, numerator, denominator
            )
            for where in planes
        ]
        computed = dask.compute(*tables)
    frames = [
        table.assign(T=times[where["T"]], Z=where.get("Z", 0))
        for where, table in zip(planes, computed, strict=True)
    ]
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    with_z = ["Z"] if im.sizes.get("Z", 1) > 1 else []
    columns = ["T", *with_z, "label", "area", *[f"mean_{n}" for n in wanted]]
    if numerator is not None and denominator is not None:
        columns.append("ratio")
    return result.reindex(columns=columns)
