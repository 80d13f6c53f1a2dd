"""Labels of every plane of a tiled mask, with memory that follows the tile size.

:func:`nima_lessons.labels.label` gives scipy's labels of a chunked mask: every tile is
labelled on its own, one merge task joins the pieces (from small per-tile summaries),
and every tile is relabelled. The merge is a barrier: computed in one go with its
relabelling, the tiles' provisional labels (and, in a pipeline, whatever else is
needed on both sides, such as the image tiles the ratio reads beside the labels) wait
in memory for it, a whole plane's worth.

So the merge is computed here when the graph is built, like the thresholds, with the
two-phase labelling of :mod:`nima_lessons.labels`: a pass that
keeps only the summaries. The lazy labels then read the merge's result as a constant,
and relabelling is local to each tile: every tile is labelled afresh and looked up,
streamed tile by tile.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from nima_lessons.labels import label_merges, relabel

#: Largest number of pixels in a plane whose labels are int32: a 4-connected
#: labelling never has more objects than half the pixels.
LARGEST_INT32_PLANE = 2 * int(np.iinfo(np.int32).max)


def label_merged(masks: list[da.Array], connectivity: int = 1) -> list[da.Array]:
    """Label chunked masks like ``scipy.ndimage.label``, their merges computed now.

    Parameters
    ----------
    masks : list of dask.array.Array
        Foreground where true, any chunking (e.g. the planes of an image).
    connectivity : int
        1 (faces) to the masks' number of dimensions (faces, edges and corners).

    Returns
    -------
    list of dask.array.Array
        The labels of :func:`nima_lessons.labels.label`, lazy, reading each
        merge as a computed constant (:func:`nima_lessons.labels.relabel`):
        computing a tile labels that tile and looks it up, nothing more.

    Examples
    --------
    >>> mask = da.from_array(np.eye(6, dtype=bool) | np.eye(6, dtype=bool)[::-1], chunks=3)
    >>> (labels,) = label_merged([mask], connectivity=2)
    >>> int(labels.max()), labels.chunks
    (1, ((3, 3), (3, 3)))
    """
    # One pass for every merge: tiles are labelled, summarized and let go.
    merges = label_merges(masks, connectivity)
    return [relabel(mask, merge) for mask, merge in zip(masks, merges, strict=True)]


def label_planes(mask: da.Array, connectivity: int = 1) -> da.Array:
    """Label every (Y, X) plane of a chunked mask on its own, as int32.

    The merges are computed now (one pass over the tiles for all planes); the
    labels are lazy and tile-local.

    Parameters
    ----------
    mask : dask.array.Array
        Boolean, (Y, X) as its last two axes; any leading axes.
    connectivity : int
        1 (4-connected) or 2 (8-connected).

    Returns
    -------
    dask.array.Array
        int32 labels with the chunks of ``mask``: in each plane exactly
        ``scipy.ndimage.label(plane, generate_binary_structure(2, connectivity))``.

    Raises
    ------
    ValueError
        If a plane has more pixels than int32 labels can always number.
    """
    _check_plane_size(mask)
    lead = mask.shape[:-2]
    planes = label_merged([mask[index] for index in np.ndindex(*lead)], connectivity)
    planes = [plane.astype(np.int32) for plane in planes]
    if not lead:
        return planes[0]
    return da.stack(planes).reshape(mask.shape).rechunk(mask.chunks)


def fill_holes_planes(mask: da.Array) -> da.Array:
    """``scipy.ndimage.binary_fill_holes`` of every plane of a chunked mask.

    A hole is background not connected (4-connected, as scipy fills holes) to
    the plane's border. The background is labelled inside a one-pixel frame of
    background: the frame comes first in raster order, so the background that
    reaches the border is label 1 and any other background label is a hole.
    """
    pad = [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)]
    framed = da.pad(~mask, pad, mode="constant", constant_values=True)
    background = label_planes(framed, connectivity=1)
    inner = background[(..., slice(1, -1), slice(1, -1))].rechunk(mask.chunks)
    return mask | (inner > 1)


def _check_plane_size(mask: da.Array) -> None:
    plane_pixels = int(np.prod(mask.shape[-2:]))
    if plane_pixels > LARGEST_INT32_PLANE:
        raise ValueError(
            f"planes of {mask.shape[-2]} x {mask.shape[-1]} pixels may hold more objects "
            f"than int32 labels can number (at most {LARGEST_INT32_PLANE} pixels)"
        )


__all__ = ["LARGEST_INT32_PLANE", "fill_holes_planes", "label_merged", "label_planes"]
