"""Connected components of a chunked mask, labelled tile by tile and merged into one image.

Same partition and same numbers as scipy.ndimage.label on the whole image, with no serial pass.
"""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import scipy.ndimage as ndi
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: Largest label count stored as int32; bigger images get int64 labels.
INT32_LIMIT = np.iinfo(np.int32).max


def label_structure(ndim: int, connectivity: int = 1) -> np.ndarray:
    """Return the scipy structuring element that a connectivity stands for.

    Parameters
    ----------
    ndim : int
        Number of image dimensions (at least 1).
    connectivity : int
        Largest number of coordinates in which two neighbouring pixels may
        differ (by one each): 1 links faces only, ``ndim`` links faces, edges
        and corners ("full" connectivity).

    Returns
    -------
    numpy.ndarray
        ``scipy.ndimage.generate_binary_structure(ndim, connectivity)``.

    Raises
    ------
    ValueError
        If ``connectivity`` is not between 1 and ``ndim``.

    Examples
    --------
    >>> label_structure(2, 2).astype(int)
    array([[1, 1, 1],
           [1, 1, 1],
           [1, 1, 1]])
    """
    _check_connectivity(ndim, connectivity)
    return ndi.generate_binary_structure(ndim, connectivity)


def label(mask, connectivity: int = 1) -> tuple[da.Array, da.Array]:
    """Label the connected components of a chunked mask, like scipy on the whole image.

    Parameters
    ----------
    mask : dask.array.Array or numpy.ndarray
        Foreground where non-zero; any number of dimensions and any chunking
        (a numpy array is wrapped with ``dask.array.asarray``).
    connectivity : int
        1 (faces only, scipy's default) up to ``mask.ndim`` (faces, edges and
        corners); see :func:`label_structure`.

    Returns
    -------
    labels : dask.array.Array
        Lazy labels with the chunks of ``mask``: 0 for background, 1..n for the
        objects, numbered in raster order of each object's first pixel, which
        is the numbering of ``scipy.ndimage.label`` -- the two results are
        identical. dtype int32, or int64 when the image has more than
        2**31 - 1 pixels.
    n : dask.array.Array
        Lazy 0-d int64 count of objects. It shares the graph with ``labels``:
        ``dask.compute(labels, n)`` computes the labelling once; ``int(n)``
        alone skips the final relabelling.

    Raises
    ------
    TypeError
        If ``mask`` is not an array.
    ValueError
        If ``mask`` has no dimensions or ``connectivity`` is out of range.

    Notes
    -----
    The graph has four stages, none of which holds the whole image:

    1. every block is labelled on its own with ``scipy.ndimage.label``;
    2. every block reports small summaries: the raster index of the first
       pixel of each local label (scipy numbers labels in order of first
       appearance, so these are where the flat labels exceed their running
       maximum) and its faces on internal chunk boundaries; one task per
       internal boundary lists the pairs of labels touching across it,
       comparing pixels shifted by -1, 0 or +1 along the other axes as the
       connectivity allows (edges and corners between diagonal blocks
       included);
    3. one merge task, fed only by those summaries, joins touching labels
       with a connected-components pass over the face labels, and ranks the
       objects by the raster index of their first pixel -- scipy's numbering;
    4. every block is relabelled through the resulting lookup table, which is
       a single graph key (sent once to each worker under dask.distributed).

    Every function in the graph is a module-level function, so the graph
    pickles and runs under dask.distributed.

    Examples
    --------
    >>> import dask.array as da
    >>> mask = da.from_array(np.eye(4, dtype=bool), chunks=2)
    >>> labels, n = label(mask, connectivity=2)
    >>> int(n), labels.compute().diagonal().tolist()
    (1, [1, 1, 1, 1])
    """
    mask = _as_dask_mask(mask)
    _check_connectivity(mask.ndim, connectivity)
    out_dtype = np.dtype(np.int32) if mask.size <= INT32_LIMIT else np.dtype(np.int64)
    mask = _drop_empty_chunks(mask)
    if mask.size == 0:
        empty_n = da.from_array(np.array(0, dtype=np.int64))
        return da.zeros(mask.shape, dtype=out_dtype, chunks=mask.chunks), empty_n
    return _build_label_graph(mask, connectivity, out_dtype)


# ---------------------------------------------------------------- validation


def _check_connectivity(ndim: int, connectivity: int) -> None:
    if ndim < 1:
        raise ValueError(f"mask must have at least 1 dimension, got ndim={ndim}")
    if isinstance(connectivity, bool) or not isinstance(connectivity, (int, np.integer)):
        raise ValueError(
            f"connectivity must be an integer from 1 to {ndim}, got {connectivity!r}"
        )
    if not 1 <= connectivity <= ndim:
        raise ValueError(
            f"connectivity must be from 1 to ndim={ndim}, got {connectivity}"
        )


def _as_dask_mask(mask) -> da.Array:
    if isinstance(mask, da.Array):
        return mask
    if isinstance(mask, np.ndarray):
        return da.asarray(mask)
    raise TypeError(
        f"mask must be a dask or numpy array, got {type(mask).__name__}"
    )


def _drop_empty_chunks(mask: da.Array) -> da.Array:
    """Remove zero-length chunks, which have no faces to compare."""
    if mask.size == 0 or all(all(size for size in sizes) for sizes in mask.chunks):
        return mask
    return mask.rechunk(tuple(tuple(s for s in sizes if s) for sizes in mask.chunks))


# ---------------------------------------------------------------- graph


def _build_label_graph(mask: da.Array, connectivity: int, out_dtype: np.dtype):
    """Assemble the four stages as named layers of one high-level graph."""
    token = tokenize(mask, connectivity)
    names = {
        stage: f"label-{stage}-{token}"
        for stage in ("local", "first", "faces", "pairs", "merge", "relabel", "count")
    }
    local = mask.map_blocks(
        _label_block, connectivity, dtype=np.int32, name=names["local"]
    )
    grid = mask.numblocks
    block_indices = list(np.ndindex(*grid))
    starts = [np.cumsum((0, *sizes[:-1])).tolist() for sizes in mask.chunks]
    # A block's provisional ids are local + linear_index * stride: distinct
    # across blocks before the label counts (hence the offsets) are known.
    stride = max(int(np.prod(shape)) for shape in itertools.product(*mask.chunks)) + 1

    first_layer, faces_layer = {}, {}
    for linear, index in enumerate(block_indices):
        local_key = (names["local"], *index)
        block_start = tuple(starts[axis][i] for axis, i in enumerate(index))
        first_layer[(names["first"], *index)] = (
            _first_pixels, local_key, block_start, mask.shape,
        )
        needed = tuple(
            (i > 0, i < grid[axis] - 1) for axis, i in enumerate(index)
        )
        faces_layer[(names["faces"], *index)] = (
            _block_faces, local_key, linear * stride, needed,
        )

    pairs_layer = {}
    for axis in range(mask.ndim):
        for boundary in range(grid[axis] - 1):
            low = _nested_keys(names["faces"], grid, axis, boundary)
            high = _nested_keys(names["faces"], grid, axis, boundary + 1)
            pairs_layer[(names["pairs"], axis, boundary)] = (
                _boundary_pairs, low, high, axis, connectivity,
            )

    merge_key = (names["merge"],)
    merge_layer = {
        merge_key: (
            _merge_labels,
            [(names["first"], *index) for index in block_indices],
            list(pairs_layer),
            stride,
            out_dtype.str,
        )
    }
    relabel_layer = {
        (names["relabel"], *index): (
            _relabel_block, (names["local"], *index), merge_key, linear,
        )
        for linear, index in enumerate(block_indices)
    }
    count_layer = {(names["count"],): (_object_count, merge_key)}

    layers = dict(local.dask.layers)
    dependencies = dict(local.dask.dependencies)
    new_layers = {
        names["first"]: (first_layer, {names["local"]}),
        names["faces"]: (faces_layer, {names["local"]}),
        names["pairs"]: (pairs_layer, {names["faces"]}),
        names["merge"]: (merge_layer, {names["first"], names["pairs"]}),
        names["relabel"]: (relabel_layer, {names["local"], names["merge"]}),
        names["count"]: (count_layer, {names["merge"]}),
    }
    for name, (layer, deps) in new_layers.items():
        layers[name] = layer
        dependencies[name] = deps
    graph = HighLevelGraph(layers, dependencies)
    labels = da.Array(
        graph, names["relabel"], chunks=mask.chunks, dtype=out_dtype,
        meta=np.empty((0,) * mask.ndim, dtype=out_dtype),
    )
    count = da.Array(
        graph, names["count"], chunks=(), dtype=np.int64,
        meta=np.empty((), dtype=np.int64),
    )
    return labels, count


def _nested_keys(name: str, grid: tuple[int, ...], axis: int, position: int):
    """Keys of the blocks at ``position`` along ``axis``, nested over the other axes."""
    other_axes = [a for a in range(len(grid)) if a != axis]

    def nest(level: int, index: list[int]):
        if level == len(other_axes):
            full = list(index)
            full.insert(axis, position)
            return (name, *full)
        return [nest(level + 1, index + [i]) for i in range(grid[other_axes[level]])]

    return nest(0, [])


# ---------------------------------------------------------------- block tasks


def _label_block(block: np.ndarray, connectivity: int) -> np.ndarray:
    """Label one block on its own (stage 1)."""
    structure = ndi.generate_binary_structure(block.ndim, connectivity)
    labels = np.empty(block.shape, dtype=np.int32)
    ndi.label(block, structure=structure, output=labels)
    return labels


def _first_pixels(
    labels: np.ndarray, block_start: tuple[int, ...], image_shape: tuple[int, ...]
) -> np.ndarray:
    """Global raster index of the first pixel of each local label, in label order.

    scipy numbers labels in order of first appearance, so a label's first
    pixel is where the flat labels exceed their running maximum.
    """
    flat = labels.ravel()
    if flat.size == 0:
        return np.empty(0, dtype=np.int64)
    running_max = np.maximum.accumulate(flat)
    first_flat = np.flatnonzero(flat[1:] > running_max[:-1]) + 1
    if flat[0] > 0:
        first_flat = np.concatenate(([0], first_flat))
    coords = np.unravel_index(first_flat, labels.shape)
    global_coords = tuple(c + s for c, s in zip(coords, block_start))
    return np.ravel_multi_index(global_coords, image_shape).astype(np.int64)


def _block_faces(
    labels: np.ndarray, base: int, needed: tuple[tuple[bool, bool], ...]
) -> tuple:
    """First and last slice of the block along each axis, as provisional ids.

    Only faces on internal chunk boundaries are kept (``needed``); the others
    are ``None``.
    """
    faces = []
    for axis, (need_first, need_last) in enumerate(needed):
        for want, position in ((need_first, 0), (need_last, -1)):
            if not want:
                faces.append(None)
                continue
            face = np.take(labels, position, axis=axis).astype(np.int64)
            faces.append(np.where(face > 0, face + base, 0))
    # A tuple, not a list: dask would read a list as nested keys to resolve.
    return tuple(faces)


def _assemble(grid, level: int = 0) -> np.ndarray:
    """Concatenate a nested list of faces into one strip spanning the image."""
    if isinstance(grid, list):
        return np.concatenate([_assemble(item, level + 1) for item in grid], axis=level)
    return grid


def _boundary_pairs(low_faces, high_faces, axis: int, connectivity: int) -> np.ndarray:
    """Pairs of provisional ids touching across one internal chunk boundary.

    ``low`` is the last slice before the boundary and ``high`` the first slice
    after it, both across the whole image. A pixel of ``low`` touches the
    pixels of ``high`` shifted by -1, 0 or +1 along the other axes, as long as
    the offset has at most ``connectivity`` non-zero coordinates.
    """
    low = _assemble(_pick_face(low_faces, 2 * axis + 1))
    high = _assemble(_pick_face(high_faces, 2 * axis))
    found = []
    for shift in itertools.product((-1, 0, 1), repeat=low.ndim):
        if 1 + sum(s != 0 for s in shift) > connectivity:
            continue
        # low[x] faces high[x + shift]: crop both to where that exists.
        low_part = low[tuple(slice(max(0, -s), n - max(0, s)) for s, n in zip(shift, low.shape))]
        high_part = high[
            tuple(slice(max(0, s), n - max(0, -s)) for s, n in zip(shift, high.shape))
        ]
        touching = (low_part > 0) & (high_part > 0)
        if touching.any():
            found.append(np.stack((low_part[touching], high_part[touching]), axis=1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


def _pick_face(grid, face_index: int):
    if isinstance(grid, list):
        return [_pick_face(item, face_index) for item in grid]
    return grid[face_index]


def _merge_labels(first_pixels: list, pairs: list, stride: int, dtype_str: str):
    """Join touching labels and number objects in scipy's order (stage 3).

    Only labels on chunk faces take part in the connected-components pass;
    every object is then represented by its piece with the earliest first
    pixel, and objects are ranked by that pixel's raster index.

    Returns
    -------
    tuple
        ``(table, offsets, n)``: ``table[offsets[b] + local]`` is the final
        label of local label ``local`` of block ``b`` (``table[0] == 0``).
    """
    dtype = np.dtype(dtype_str)
    counts = np.array([len(f) for f in first_pixels], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    total = int(offsets[-1])
    table = np.zeros(total + 1, dtype=dtype)
    if total == 0:
        return table, offsets, 0
    # First pixels are distinct, so they identify pieces and order objects.
    first = np.concatenate(first_pixels)
    representative = np.arange(total, dtype=np.int64)
    edges = np.concatenate([np.empty((0, 2), dtype=np.int64), *pairs])
    if len(edges):
        block, local = np.divmod(edges, stride)
        nodes, edge_nodes = np.unique(offsets[block] + local - 1, return_inverse=True)
        edge_nodes = edge_nodes.reshape(edges.shape)
        graph = coo_matrix(
            (np.ones(len(edge_nodes), dtype=np.int8), (edge_nodes[:, 0], edge_nodes[:, 1])),
            shape=(len(nodes), len(nodes)),
        )
        n_components, component = connected_components(graph, directed=False)
        earliest = np.full(n_components, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(earliest, component, first[nodes])
        is_earliest = first[nodes] == earliest[component]
        piece_of_component = np.empty(n_components, dtype=np.int64)
        piece_of_component[component[is_earliest]] = nodes[is_earliest]
        representative[nodes] = piece_of_component[component]
    objects = np.flatnonzero(representative == np.arange(total))
    # Blocks list their pieces in raster order, so the keys come in long
    # sorted runs, which a stable (merge) sort handles several times faster.
    order = np.argsort(first[objects], kind="stable")
    rank = np.zeros(total, dtype=dtype)
    rank[objects[order]] = np.arange(1, len(objects) + 1, dtype=dtype)
    table[1:] = rank[representative]
    return table, offsets, len(objects)


def _relabel_block(labels: np.ndarray, merged: tuple, linear: int) -> np.ndarray:
    """Map a block's local labels to final labels through the table (stage 4)."""
    table, offsets, _ = merged
    lookup = table[offsets[linear] : offsets[linear + 1] + 1].copy()
    lookup[0] = 0
    return lookup[labels]


def _object_count(merged: tuple) -> np.ndarray:
    return np.array(merged[2], dtype=np.int64)


__all__ = ["INT32_LIMIT", "label", "label_structure"]
