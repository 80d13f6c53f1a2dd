"""Labels of every plane of a tiled mask, with memory that follows the tile size.

:func:`nima_lessons.labels.label` gives scipy's labels of a chunked mask: every tile is
labelled on its own, one merge task joins the pieces (from small per-tile summaries),
and every tile is relabelled. The merge is a barrier: computed in one go with its
relabelling, the tiles' provisional labels (and, in a pipeline, whatever else is
needed on both sides, such as the image tiles the ratio reads beside the labels) wait
in memory for it, a whole plane's worth.

So the merge is computed here when the graph is built, like the thresholds: a pass that
keeps only the summaries. The lazy labels then read the merge's result as a constant,
and relabelling is local to each tile: every tile is labelled afresh and looked up,
streamed tile by tile.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
from dask.typing import Key

from nima_lessons.labels import label

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
        The labels of :func:`nima_lessons.labels.label`, lazy, with each merge's
        result in the graph as a constant: computing a tile labels that tile
        and looks it up, nothing more.

    Examples
    --------
    >>> mask = da.from_array(np.eye(6, dtype=bool) | np.eye(6, dtype=bool)[::-1], chunks=3)
    >>> (labels,) = label_merged([mask], connectivity=2)
    >>> int(labels.max()), labels.chunks
    (1, ((3, 3), (3, 3)))
    """
    labelled = [label(mask, connectivity) for mask in masks]
    merges = [_merge_of(count) for _, count in labelled]
    # One pass for every merge: tiles are labelled, summarized and let go.
    wanted = [
        Delayed(merge[1], count.__dask_graph__(), layer=merge[0])
        for merge, (_, count) in zip(merges, labelled, strict=True)
        if merge is not None
    ]
    values = iter(dask.compute(*wanted))
    frozen = []
    for (labels, _), merge in zip(labelled, merges, strict=True):
        frozen.append(labels if merge is None else _with_constant(labels, *merge, next(values)))
    return frozen


def _merge_of(count: da.Array) -> tuple[str, Key] | None:
    """The layer and key of the merge that an object count reads (None if not one task).

    An empty mask has no merge: its labels are zeros already.
    """
    graph = _graph_of(count)
    (name,) = count.__dask_layers__()
    read = list(graph.dependencies.get(name, ()))
    if len(read) != 1:
        return None
    keys = list(graph.layers[read[0]].get_output_keys())
    return (read[0], keys[0]) if len(keys) == 1 else None


def _graph_of(array: da.Array) -> HighLevelGraph:
    """The layered graph of a dask array (what dask arrays always carry)."""
    graph = array.__dask_graph__()
    if not isinstance(graph, HighLevelGraph):
        raise TypeError(f"expected a layered dask graph, got {type(graph).__name__}")
    return graph


def _with_constant(labels: da.Array, layer: str, key: Key, value: object) -> da.Array:
    """``labels`` with the task ``key`` (alone in ``layer``) replaced by its computed ``value``."""
    graph = _graph_of(labels)
    layers = dict(graph.layers)
    dependencies = {name: set(deps) for name, deps in graph.dependencies.items()}
    layers[layer] = MaterializedLayer({key: (_constant, value)})
    dependencies[layer] = set()
    return da.Array(
        HighLevelGraph(layers, dependencies), labels.name, labels.chunks, dtype=labels.dtype,
        meta=np.empty((0,) * labels.ndim, dtype=labels.dtype),
    )  # fmt: skip


def _constant(value: object) -> object:
    return value


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
