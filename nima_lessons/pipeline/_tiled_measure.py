"""Per-cell measurements of planes split into tiles: per-tile partial sums merged per label.

Every tile reports, for each label present in it, its pixel count and the sum of
each channel; the counts and sums of a label are added over the tiles it spans,
and the means follow. The table is the whole-plane table of ``measure_plane``, to
floating-point rounding of the sums (they are added in another order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr


def tile_sums(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels present in a tile (0 excluded), their pixel counts and channel sums.

    Parameters
    ----------
    image : numpy.ndarray
        (C, y, x) channels of the tile.
    labels : numpy.ndarray
        (y, x) integer labels.

    Returns
    -------
    present, area, sums : numpy.ndarray
        int64 labels, int64 counts and (n, C) float64 sums.

    Examples
    --------
    >>> present, area, sums = tile_sums(np.ones((1, 2, 2)), np.array([[0, 3], [3, 3]]))
    >>> present.tolist(), area.tolist(), sums[:, 0].tolist()
    ([3], [3], [3.0])
    """
    flat = np.asarray(labels).ravel()
    cells = flat > 0
    if not cells.any():
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, image.shape[0]))
    first = int(flat[cells].min())
    # Labels in a tile span a narrow range: count from the smallest one.
    index = np.where(cells, flat.astype(np.int64) - (first - 1), 0)
    area = np.bincount(index)
    present = np.flatnonzero(area[1:]) + 1
    sums = np.empty((present.size, image.shape[0]), dtype=np.float64)
    for channel, plane in enumerate(np.asarray(image)):
        weights = plane.ravel().astype(np.float64)
        sums[:, channel] = np.bincount(index, weights=weights, minlength=area.size)[present]
    return (present + (first - 1)).astype(np.int64), area[present].astype(np.int64), sums


def merge_sums(parts: Sequence[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add the per-tile counts and sums of every label (see :func:`tile_sums`)."""
    labels = np.concatenate([part[0] for part in parts])
    n_channels = parts[0][2].shape[1] if parts else 0
    if labels.size == 0:
        return labels, np.empty(0, np.int64), np.empty((0, n_channels))
    present, inverse = np.unique(labels, return_inverse=True)
    area = np.bincount(inverse, weights=np.concatenate([p[1] for p in parts]))
    stacked = np.concatenate([part[2] for part in parts])
    sums = np.stack(
        [
            np.bincount(inverse, weights=stacked[:, c], minlength=present.size)
            for c in range(n_channels)
        ],
        axis=1,
    )
    return present, area.astype(np.int64), sums


def table_from_sums(
    present: np.ndarray,
    area: np.ndarray,
    sums: np.ndarray,
    channel_names: Sequence[str],
    numerator: str | None,
    denominator: str | None,
) -> pd.DataFrame:
    """The table of ``measure_plane`` from merged counts and sums."""
    table: dict[str, np.ndarray] = {
        "label": present.astype(np.int64),
        "area": area.astype(np.int64),
    }
    for index, name in enumerate(channel_names):
        table[f"mean_{name}"] = sums[:, index] / area
    if numerator is not None and denominator is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            table["ratio"] = table[f"mean_{numerator}"] / table[f"mean_{denominator}"]
    return pd.DataFrame(table)


def tiled_tables(
    im: xr.DataArray,
    labels: xr.DataArray,
    planes: Sequence[Mapping[str, int]],
    channel_names: Sequence[str],
    numerator: str | None,
    denominator: str | None,
) -> list[pd.DataFrame]:
    """One ``measure_plane`` table per plane, from per-tile sums computed together.

    Parameters
    ----------
    im : xarray.DataArray
        (T, C, [Z,] Y, X) image, channels ``channel_names``.
    labels : xarray.DataArray
        Labels with the dims of ``im`` without C.
    planes : sequence of dict
        ``isel`` selections ({"T": t} or {"T": t, "Z": z}), one per table.
    channel_names, numerator, denominator
        As in :func:`nima_lessons.pipeline.measure_plane`.

    Returns
    -------
    list of pandas.DataFrame
        In the order of ``planes``.
    """
    image = im.data if im.chunks is not None else da.asarray(im.data)
    label_data = labels.data if labels.chunks is not None else da.asarray(labels.data)
    tasks, owners = [], []
    for number, where in enumerate(planes):
        plane_image = _select(im, image, where)
        plane_labels = _select(labels, label_data, where)
        # Channels together in each tile, and the labels' tiles on the image's.
        plane_image = plane_image.rechunk({0: -1})
        plane_labels = plane_labels.rechunk(plane_image.chunks[1:])
        image_blocks = plane_image.to_delayed(optimize_graph=True)[0]
        label_blocks = plane_labels.to_delayed(optimize_graph=True)
        for index in np.ndindex(*label_blocks.shape):
            tasks.append(dask.delayed(_tile_sums_task)(image_blocks[index], label_blocks[index]))
            owners.append(number)
    computed = dask.compute(*tasks)
    parts: list[list] = [[] for _ in planes]
    for number, part in zip(owners, computed, strict=True):
        parts[number].append(part)
    return [
        table_from_sums(*merge_sums(plane_parts), channel_names, numerator, denominator)
        for plane_parts in parts
    ]


def _tile_sums_task(image: np.ndarray, labels: np.ndarray) -> tuple:
    return tile_sums(image, labels)


def _select(array: xr.DataArray, data: da.Array, where: Mapping[str, int]) -> da.Array:
    index = tuple(where.get(str(dim), slice(None)) for dim in array.dims)
    return data[index]


__all__ = ["merge_sums", "table_from_sums", "tile_sums", "tiled_tables"]
