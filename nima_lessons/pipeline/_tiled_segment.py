"""Cell segmentation of planes split into tiles, identical to whole-plane ``segment_plane``.

The steps of ``segment_plane``, each made exact on tiles:

- geometric mean over channels: element-wise;
- automatic threshold: computed for the whole plane from per-tile summaries;
- small-object removal: an object smaller than ``min_size`` pixels lies within
  ``min_size - 1`` pixels of each of its pixels, so tiles overlapping by that much
  tell exactly which objects are small (a larger object reaching a tile's margin is
  kept in both cases);
- hole filling: a hole is background not connected to the plane's border; the
  background is labelled across tiles with a frame of background around the
  plane, so the border-connected background is the frame's label, 1, and every
  other background label is a hole;
- labels: tiled labelling with scipy's numbering.

Watershed splitting of touching cells is refused on tiles (see
:data:`WATERSHED_REFUSAL`).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from nima_lessons.pipeline._lift import PLANE_DIMS, overlap_planes, refuse_tiles
from nima_lessons.pipeline._segment import geometric_mean, remove_small
from nima_lessons.pipeline._tiled_labels import label_planes
from nima_lessons.pipeline._tiled_levels import (
    TILED_BACKGROUND_METHODS,
    TILED_THRESHOLD_METHODS,
    refusal_reason,
    tiled_thresholds,
)

#: Why watershed splitting is refused on tiled planes.
WATERSHED_REFUSAL = (
    "scikit-image's watershed gives a pixel claimed by two markers at equal priority to the "
    "one its single priority queue over the whole plane happens to pop first, so the labels "
    "of touching cells depend on every other cell of the plane and no tile can reproduce them "
    "pixel for pixel (the distances, seeds and markers themselves are local and could be)"
)


def check_tiled_options(
    im: xr.DataArray, background_method: str, segment_method: str, watershed: bool
) -> None:
    """Refuse, before anything is computed, pipeline options that have no tiled version.

    Raises
    ------
    ValueError
        If ``im`` has tiled planes and an option cannot run on them.
    """
    if background_method not in TILED_BACKGROUND_METHODS:
        refuse_tiles(im, f"background method {background_method!r}", refusal_reason(background_method))
    if segment_method not in TILED_THRESHOLD_METHODS:
        refuse_tiles(im, f"threshold method {segment_method!r}", refusal_reason(segment_method))
    if watershed:
        refuse_tiles(im, "watershed splitting (watershed=True)", WATERSHED_REFUSAL)


def tiled_segment(
    im: xr.DataArray,
    method: str = "yen",
    min_size: int = 20,
    watershed: bool = False,
    seed_depth_px: float = 2.0,
) -> xr.DataArray:
    """Label cells in every plane of a tiled image, as ``segment`` does on whole planes.

    Parameters
    ----------
    im : xarray.DataArray
        Dask-backed image with dims including ("C", "Y", "X"), Y or X in tiles.
    method, min_size, watershed, seed_depth_px
        As in :func:`nima_lessons.pipeline.segment`; ``watershed=True`` is
        refused (``seed_depth_px`` is then unused).

    Returns
    -------
    xarray.DataArray
        int32 labels, dims of ``im`` without C, with the tiles of ``im``.

    Raises
    ------
    ValueError
        If ``method`` has no tiled version, or ``watershed`` is true.
    """
    if method not in TILED_THRESHOLD_METHODS:
        refuse_tiles(im, f"threshold method {method!r}", refusal_reason(method))
    if watershed:
        refuse_tiles(im, "watershed splitting (watershed=True)", WATERSHED_REFUSAL)
    lead = tuple(dim for dim in im.dims if dim not in ("C", *PLANE_DIMS))
    data = im.transpose(*lead, "C", *PLANE_DIMS).data.rechunk({len(lead): -1})
    combined = channel_mean(data)
    thresholds = tiled_thresholds(combined, method)
    mask = above_thresholds(combined, thresholds)
    mask = remove_small_tiled(mask, min_size)
    mask = fill_holes_tiled(mask)
    labels = label_planes(mask, connectivity=1)
    coords = {name: im.coords[name] for name in (*lead, *PLANE_DIMS) if name in im.coords}
    return xr.DataArray(labels, dims=(*lead, *PLANE_DIMS), coords=coords, name="labels")


def channel_mean(data: da.Array) -> da.Array:
    """Geometric mean over the channel axis (just before Y, X), tile by tile, float64."""
    return da.map_blocks(
        _channel_mean_block, data, drop_axis=data.ndim - 3, dtype=np.float64,
        meta=np.empty((0,) * (data.ndim - 1), dtype=np.float64),
    )  # fmt: skip


def _channel_mean_block(block: np.ndarray) -> np.ndarray:
    out = np.empty(block.shape[:-3] + block.shape[-2:], dtype=np.float64)
    for index in np.ndindex(*block.shape[:-3]):
        out[index] = geometric_mean(block[index])
    return out


def above_thresholds(data: da.Array, thresholds: np.ndarray) -> da.Array:
    """``plane > threshold`` for every plane, with one threshold per leading index."""
    levels = da.from_array(thresholds, chunks=data.chunks[:-2] or ())
    return data > levels[(..., None, None)]


def remove_small_tiled(mask: da.Array, min_size: int) -> da.Array:
    """``remove_small`` on every plane, with tiles overlapping by ``min_size - 1`` pixels.

    A 4-connected object of fewer than ``min_size`` pixels reaches at most
    ``min_size - 1`` pixels from any of its pixels, so in a tile grown by that
    margin it is seen whole; an object cut by the grown tile's edge has at least
    ``min_size`` pixels inside it and is kept, as it is on the whole plane.
    """
    if min_size <= 1:
        return mask  # every object has at least one pixel
    return overlap_planes(remove_small, mask, min_size - 1, bool, min_size=min_size)


def fill_holes_tiled(mask: da.Array) -> da.Array:
    """``scipy.ndimage.binary_fill_holes`` of every plane, through tiled labelling.

    The background is labelled (4-connected, as scipy fills holes) inside a
    one-pixel frame of background: the frame starts the raster order, so the
    background connected to the plane's border is label 1 and any other
    background label is a hole.
    """
    pad = [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)]
    framed = da.pad(~mask, pad, mode="constant", constant_values=True)
    background = label_planes(framed, connectivity=1)
    inner = background[(..., slice(1, -1), slice(1, -1))].rechunk(mask.chunks)
    return mask | (inner > 1)


__all__ = [
    "WATERSHED_REFUSAL",
    "channel_mean",
    "check_tiled_options",
    "fill_holes_tiled",
    "remove_small_tiled",
    "tiled_segment",
]
