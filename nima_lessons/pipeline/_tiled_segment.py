"""Cell segmentation of planes split into tiles, identical to whole-plane ``segment_plane``.

The steps of ``segment_plane``, each made exact on tiles:

- geometric mean over channels: element-wise;
- automatic threshold: computed for the whole plane from per-tile summaries;
- small-object removal: an object smaller than ``min_size`` pixels lies within
  ``min_size - 1`` pixels of each of its pixels, so tiles overlapping by that much
  tell exactly which objects are small (a larger object reaching a tile's margin is
  kept in both cases);
- hole filling: a hole is background not connected to the plane's border; the
  background is labelled across tiles inside a one-pixel frame of background, so
  the background reaching the border shares the frame's label, 1, and every other
  background label is a hole;
- nima's closing (``cleanup="closing"``): tiles overlapping by 2 pixels;
- labels: tiled labelling with scipy's numbering.

The merges of the tiled labellings are computed when the graph is built, like the
thresholds (see ``_tiled_labels``): what remains is local to each tile.

Watershed splitting of touching cells is refused on tiles (see
:data:`WATERSHED_REFUSAL`).
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.ndimage as ndi
import xarray as xr

from nima_lessons.pipeline._lift import PLANE_DIMS, overlap_planes, refuse_tiles
from nima_lessons.pipeline._segment import MaskCleanup, geometric_mean, remove_small
from nima_lessons.pipeline._tile_stats import row_batches
from nima_lessons.pipeline._tiled_labels import fill_holes_planes, label_planes
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
        refuse_tiles(
            im, f"background method {background_method!r}", refusal_reason(background_method)
        )
    _check_segment_options(im, segment_method, watershed)


def _check_segment_options(im: xr.DataArray, method: str, watershed: bool) -> None:
    """Refuse a threshold method or watershed splitting that has no tiled version."""
    if method not in TILED_THRESHOLD_METHODS:
        refuse_tiles(im, f"threshold method {method!r}", refusal_reason(method))
    if watershed:
        refuse_tiles(im, "watershed splitting (watershed=True)", WATERSHED_REFUSAL)


def tiled_segment(
    im: xr.DataArray,
    method: str = "yen",
    min_size: int = 20,
    watershed: bool = False,
    seed_depth_px: float = 2.0,
    cleanup: MaskCleanup = "fill_holes",
) -> xr.DataArray:
    """Label cells in every plane of a tiled image, as ``segment`` does on whole planes.

    Parameters
    ----------
    im : xarray.DataArray
        Dask-backed image with dims including ("C", "Y", "X"), Y or X in tiles.
    method, min_size, watershed, seed_depth_px
        As in :func:`nima_lessons.pipeline.segment`; ``watershed=True`` is
        refused (``seed_depth_px`` is then unused).
    cleanup : {"fill_holes", "closing"}
        Fill the mask's holes, or close it with the 4-neighbour cross
        (:func:`close_tiled`).

    Returns
    -------
    xarray.DataArray
        int32 labels, dims of ``im`` without C, with the tiles of ``im``.

    Raises
    ------
    ValueError
        If ``method`` has no tiled version, or ``watershed`` is true.
    """
    _check_segment_options(im, method, watershed)
    lead = tuple(dim for dim in im.dims if dim not in ("C", *PLANE_DIMS))
    data = im.transpose(*lead, "C", *PLANE_DIMS).data.rechunk({len(lead): -1})
    combined = channel_mean(data)
    thresholds = tiled_thresholds(combined, method)
    mask = above_thresholds(combined, thresholds)
    mask = keep_packed(remove_small_tiled(mask, min_size))
    mask = close_tiled(mask) if cleanup == "closing" else fill_holes_planes(mask)
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


def keep_packed(mask: da.Array) -> da.Array:
    """Compute a tiled mask now, band of tiles by band, and keep it at one bit per pixel.

    The labellings that follow read the mask several times (their merges, then
    the labels); computed from the image each time, the overlapping steps
    before it would let dask hold many of the plane's tiles at once. Kept
    packed, the mask costs an eighth of a byte per pixel (31 MB for a
    16,384^2 plane, 313 MB for 50,000^2) and is unpacked tile by tile.

    Parameters
    ----------
    mask : dask.array.Array
        Boolean, (Y, X) last.

    Returns
    -------
    dask.array.Array
        The same mask, chunks and values, computed.
    """
    blocks = mask.to_delayed(optimize_graph=True)
    rows: dict[int, list] = {}
    for index in np.ndindex(*blocks.shape):
        rows.setdefault(index[-2], []).append((index, dask.delayed(np.packbits)(blocks[index])))
    packed = np.empty(blocks.shape, dtype=object)
    tile_pixels = max(y * x for y in mask.chunks[-2] for x in mask.chunks[-1])
    for batch in row_batches(list(rows.values()), tile_pixels):
        found = dask.compute(*[task for _, task in batch])
        for (index, _), bits in zip(batch, found, strict=True):
            packed[index] = bits
    tiles = da.from_array(packed, chunks=(1,) * packed.ndim)
    return da.map_blocks(
        _unpack_block, tiles, chunks=mask.chunks, dtype=bool, meta=np.empty((0,) * mask.ndim, bool)
    )


def _unpack_block(
    packed: np.ndarray, block_info: dict[int | None, dict[str, Any]] | None = None
) -> np.ndarray:
    if block_info is None:
        raise ValueError("unpacking a mask tile needs dask's block_info (run it via map_blocks)")
    shape = tuple(block_info[None]["chunk-shape"])
    bits = packed.reshape(-1)[0]
    return np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).astype(bool)


def close_cross(mask: np.ndarray) -> np.ndarray:
    """Morphological closing with the 4-neighbour cross, borders reflected, of one plane.

    A dilation then an erosion (``scipy.ndimage`` grey operations on the
    boolean mask, ``mode="reflect"``).
    """
    cross = ndi.generate_binary_structure(2, 1)
    dilated = ndi.grey_dilation(mask, footprint=cross, mode="reflect")
    return ndi.grey_erosion(dilated, footprint=cross, mode="reflect")


def close_tiled(mask: da.Array) -> da.Array:
    """:func:`close_cross` of every plane, in tiles overlapping by 2 pixels.

    The dilation reads one pixel around each pixel and the erosion one more:
    two pixels of overlap make every tile exact; at the plane's border the
    tile is not grown and the reflection happens where it does on the plane.
    """
    return overlap_planes(close_cross, mask, 2, bool)


__all__ = [
    "WATERSHED_REFUSAL",
    "channel_mean",
    "check_tiled_options",
    "close_cross",
    "close_tiled",
    "keep_packed",
    "remove_small_tiled",
    "tiled_segment",
]
