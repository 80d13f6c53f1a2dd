"""Labels of every plane of a tiled mask, in two passes so that memory follows the tile size.

:func:`nima_lessons.labels.label` gives scipy's labels of a chunked mask: every tile is
labelled on its own, one merge task joins the pieces, and every tile is relabelled.
Computed in one go, the tiles' provisional labels wait in memory for the merge, so
the whole plane's labels are held at once. Here the relabelling pass works from
provisional labels computed afresh after the merge (``dask.graph_manipulation.bind``):
the first pass keeps only the small summaries the merge needs, the second streams
tile by tile. The price is computing the mask twice.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.graph_manipulation import bind

from nima_lessons.labels import label

#: Largest number of pixels in a plane whose labels are int32: a 4-connected
#: labelling never has more objects than half the pixels.
LARGEST_INT32_PLANE = 2 * int(np.iinfo(np.int32).max)


def label_two_pass(mask: da.Array, connectivity: int = 1) -> tuple[da.Array, da.Array]:
    """Label a chunked mask like ``scipy.ndimage.label``, merging before relabelling.

    Parameters
    ----------
    mask : dask.array.Array
        Foreground where true, any chunking.
    connectivity : int
        1 (faces) to ``mask.ndim`` (faces, edges and corners).

    Returns
    -------
    labels : dask.array.Array
        The labels of :func:`nima_lessons.labels.label`, computed so that the
        relabelling of a tile waits for the merge and recomputes the tile's
        provisional labels instead of keeping them.
    count : dask.array.Array
        0-d number of objects.

    Examples
    --------
    >>> mask = da.from_array(np.eye(6, dtype=bool) | np.eye(6, dtype=bool)[::-1], chunks=3)
    >>> labels, count = label_two_pass(mask, connectivity=2)
    >>> int(count), int(labels.max())
    (1, 1)
    """
    labels, count = label(mask, connectivity)
    graph = count.__dask_graph__()
    # The count is read from the merge: keep the layers it reads (the merge) as
    # they are, and recompute everything else the relabelling uses, after it.
    merge_keys = set()
    for name in count.__dask_layers__():
        for dependency in graph.dependencies.get(name, ()):
            merge_keys |= set(graph.layers[dependency].get_output_keys())
    kept = [Delayed(key, {key: None}, layer=_layer_of(key)) for key in merge_keys]
    return bind(labels, count, omit=kept, assume_layers=False), count


def _layer_of(key) -> str:
    return key[0] if isinstance(key, tuple) else key


def label_planes(mask: da.Array, connectivity: int = 1) -> da.Array:
    """Label every (Y, X) plane of a chunked mask on its own, as int32, in two passes.

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
    plane_pixels = int(np.prod(mask.shape[-2:]))
    if plane_pixels > LARGEST_INT32_PLANE:
        raise ValueError(
            f"planes of {mask.shape[-2]} x {mask.shape[-1]} pixels may hold more objects "
            f"than int32 labels can number (at most {LARGEST_INT32_PLANE} pixels)"
        )
    lead = mask.shape[:-2]
    planes = []
    for index in np.ndindex(*lead):
        # Keep only this plane's graph: the second pass copies what it recomputes.
        with dask.config.set({"optimization.fuse.active": False}):
            (plane,) = dask.optimize(mask[index])
        labels, _ = label_two_pass(plane, connectivity)
        planes.append(labels.astype(np.int32))
    if not lead:
        return planes[0]
    stacked = da.stack(planes).reshape(lead + mask.shape[-2:])
    return stacked.rechunk(mask.chunks)


__all__ = ["LARGEST_INT32_PLANE", "label_planes", "label_two_pass"]
