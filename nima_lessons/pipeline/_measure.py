"""Per-cell measurements as a tidy table, computed once at the very end.

One small table per time point is built lazily; ``dask.compute`` gathers them. Beside the
ratio of the cell's mean intensities, the median of a ratio image over the cell (nima's
``r_cl_median``, ``r_pH_median``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dask
import numpy as np
import pandas as pd
import xarray as xr

from nima_lessons.io import select_channels
from nima_lessons.pipeline._lift import check_dims

__all__ = ["label_medians", "measure", "measure_plane"]


def label_medians(values: np.ndarray, labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Median of the finite ``values`` of each label in ``index`` (NaN for a label without any).

    Examples
    --------
    >>> values = np.array([[1.0, 5.0, 2.0], [np.nan, 7.0, 9.0]])
    >>> label_medians(values, np.array([[1, 1, 1], [1, 2, 0]]), np.array([1, 2, 3]))
    array([ 2.,  7., nan])
    """
    flat_labels = np.asarray(labels).ravel()
    flat_values = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(flat_values) & np.isin(flat_labels, index)
    flat_labels, flat_values = flat_labels[keep], flat_values[keep]
    order = np.lexsort((flat_values, flat_labels))  # by label, then by value
    flat_labels, flat_values = flat_labels[order], flat_values[order]
    starts = np.searchsorted(flat_labels, index, side="left")
    stops = np.searchsorted(flat_labels, index, side="right")
    medians = np.full(len(index), np.nan)
    counts = stops - starts
    present = counts > 0
    low = starts[present] + (counts[present] - 1) // 2
    high = starts[present] + counts[present] // 2
    medians[present] = (flat_values[low] + flat_values[high]) / 2
    return medians


def measure_plane(
    image: np.ndarray,
    labels: np.ndarray,
    channel_names: Sequence[str],
    numerator: str | None = None,
    denominator: str | None = None,
    ratios: Mapping[str, tuple[str, str]] | None = None,
    ratio_images: Mapping[str, np.ndarray] | None = None,
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
    ratios : mapping, optional
        More ratio-of-means columns: ``{column: (numerator, denominator)}``.
    ratio_images : mapping, optional
        ``{column: ratio image}``, each shaped like ``labels``: the column holds
        the median of the image's finite values over each label.

    Returns
    -------
    pandas.DataFrame
        Columns label, area, mean_<channel>..., ratio (if requested), the
        columns of ``ratios`` and ``ratio_images``; one row per label present.

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
    table: dict[str, np.ndarray] = {
        "label": present.astype(np.int64),
        "area": area.astype(np.int64),
    }
    for name, channel in zip(channel_names, np.asarray(image), strict=True):
        weights = channel.ravel().astype(np.float64)
        sums = np.bincount(flat_labels, weights=weights, minlength=n_bins)
        table[f"mean_{name}"] = sums[present] / area
    pairs = dict(ratios or {})
    if numerator is not None and denominator is not None:
        pairs = {"ratio": (numerator, denominator), **pairs}
    with np.errstate(divide="ignore", invalid="ignore"):
        for column, (top, bottom) in pairs.items():
            table[column] = table[f"mean_{top}"] / table[f"mean_{bottom}"]
    for column, values in (ratio_images or {}).items():
        table[column] = label_medians(values, flat_labels, present)
    return pd.DataFrame(table)


def _ratio_image_columns(
    ratio_image: xr.DataArray | Mapping[str, xr.DataArray] | None,
) -> dict[str, xr.DataArray]:
    if ratio_image is None:
        return {}
    if isinstance(ratio_image, xr.DataArray):
        return {"ratio_median": ratio_image}
    if isinstance(ratio_image, Mapping):
        return {f"{name}_median": image for name, image in ratio_image.items()}
    raise TypeError(
        f"ratio_image must be a DataArray, a mapping of them or None, got "
        f"{type(ratio_image).__name__}"
    )


def _check_like_labels(array: xr.DataArray, name: str, labels: xr.DataArray) -> None:
    check_dims(array, name, [str(dim) for dim in labels.dims])
    for dim in labels.dims:
        if array.sizes[dim] != labels.sizes[dim]:
            raise ValueError(
                f"{name} has {dim} size {array.sizes[dim]} but labels have {labels.sizes[dim]}"
            )
    if set(array.dims) != set(labels.dims):
        raise ValueError(f"{name} must have the dims of labels {labels.dims}, got {array.dims}")


def measure(
    im: xr.DataArray,
    labels: xr.DataArray,
    numerator: str | None = "G",
    denominator: str | None = "C",
    channels: Sequence[str] | None = None,
    ratio_image: xr.DataArray | Mapping[str, xr.DataArray] | None = None,
    ratios: Mapping[str, tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Measure every labelled cell at every time point (and Z plane).

    Building the per-plane tables is lazy; they are all computed together by
    one ``dask.compute`` call at the end, so each plane is read once. With
    labels numbered through time (``segment(..., through_time=True)``, the
    "nima" preset), a label is one cell at every time point: grouping the
    table by label gives each cell's time course.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims (T, C, [Z,] Y, X) and channel names as C coordinate.
    labels : xarray.DataArray
        Labels with the dims of ``im`` without C, e.g. from :func:`segment`.
    numerator, denominator : str or None
        Channels whose ratio of means fills the ``ratio`` column; ``None``
        leaves it out.
    channels : sequence of str, optional
        Channels measured; default all.
    ratio_image : DataArray or mapping of DataArrays, optional
        Ratio images with the dims of ``labels`` (e.g. ``result["ratio"]`` of
        :func:`run_pipeline`): the median of each over every cell, NaN pixels
        left out, in the column ``ratio_median`` (a single image) or
        ``<name>_median`` (a mapping ``{name: image}``, e.g.
        ``{"r_pH": ..., "r_cl": ...}`` gives nima's ``r_pH_median`` and
        ``r_cl_median``).
    ratios : mapping, optional
        More ratio-of-means columns, ``{column: (numerator, denominator)}``,
        e.g. nima's ``{"r_cl": ("C", "R"), "r_pH": ("G", "C")}``.

    Returns
    -------
    pandas.DataFrame
        Tidy table with columns T, label, area (pixels), mean_<channel> for
        each channel, ratio (mean numerator / mean denominator), the columns
        of ``ratios`` and the ``..._median`` columns; with more than one Z
        plane, a Z column after T (one row per plane and label).

    Raises
    ------
    ValueError
        If the dims of ``labels`` or a ratio image do not match ``im``, or a
        channel is unknown.

    Examples
    --------
    >>> image = np.ones((2, 2, 1, 3, 3)); image[:, 0] = 4.0
    >>> im = xr.DataArray(image, dims=("T", "C", "Z", "Y", "X"), coords={"C": ["G", "C"]})
    >>> cells = xr.DataArray(np.ones((2, 1, 3, 3), np.int32), dims=("T", "Z", "Y", "X"))
    >>> table = measure(im, cells, ratio_image=im.sel(C="G") / im.sel(C="C"))
    >>> table[["T", "label", "ratio_median"]]
       T  label  ratio_median
    0  0      1           4.0
    1  1      1           4.0
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
    images = _ratio_image_columns(ratio_image)
    for column, image in images.items():
        _check_like_labels(image, f"ratio_image {column!r}", labels)
    names = (
        [str(c) for c in im.coords["C"].values]
        if "C" in im.coords
        else [str(i) for i in range(im.sizes["C"])]
    )
    wanted = list(channels if channels is not None else names)
    pairs = dict(ratios or {})
    for name in (numerator, denominator, *(c for pair in pairs.values() for c in pair)):
        if name is not None and name not in wanted:
            wanted.append(name)
    im = select_channels(im.assign_coords(C=names), wanted, "channels")
    im = im.transpose("T", "C", *expected[1:])
    labels = labels.transpose(*expected)
    images = {column: image.transpose(*expected) for column, image in images.items()}
    times = im.coords["T"].values if "T" in im.coords else np.arange(im.sizes["T"])
    planes = [
        {"T": t, "Z": z} if "Z" in im.dims else {"T": t}
        for t in range(im.sizes["T"])
        for z in range(im.sizes.get("Z", 1))
    ]
    from nima_lessons.pipeline._lift import is_tiled
    from nima_lessons.pipeline._tiled_measure import tiled_tables

    if is_tiled(im) or is_tiled(labels):  # per-tile sums merged per label
        if images or pairs:
            raise ValueError(
                "medians of ratio images and extra ratio columns are not measured on planes "
                "split into tiles (a median needs every pixel of a cell at once): merge the "
                "tiles with nima_lessons.pipeline.whole_planes first, or leave ratio_image "
                "and ratios out"
            )
        computed = tiled_tables(im, labels, planes, wanted, numerator, denominator)
    else:
        tables = [
            dask.delayed(measure_plane)(
                im.isel(where).data,
                labels.isel(where).data,
                wanted,
                numerator,
                denominator,
                pairs,
                {column: image.isel(where).data for column, image in images.items()},
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
    columns += [*pairs, *images]
    return result.reindex(columns=columns)
