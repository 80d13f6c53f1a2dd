"""Connected components of a chunked mask, labelled tile by tile and merged into one image.

Same partition and same numbers as ``scipy.ndimage.label`` on the whole image,
with no serial pass over the pixels.

Why not ``scipy.ndimage.label`` on each tile: it writes a whole int32 label
image per tile, and the tiled algorithm must keep every tile's labels until the
merge has seen all of them (a label's final number depends on objects in other
tiles), so a large image would hold its whole label image twice over. Each tile
is labelled here by a compiled run-length pass instead: foreground runs along
the last axis, joined with the runs they touch on the neighbouring lines, and
numbered in raster order of their first pixel, as scipy numbers labels. The
runs (8 bytes each for lines shorter than 65536 pixels; far fewer runs than
pixels for blob-like masks, at worst half the pixels, for a checkerboard) are
all a tile keeps until the final relabelling paints them with their global
numbers.

The labelling also comes in two phases, for pipelines that must not hold a
plane's tiles in memory while the merge waits for all of them:
:func:`label_merge` (or :func:`label_merges` for several masks in one pass)
computes the merge now from the tiles' small summaries and returns it as a
:class:`LabelMerge` of numpy arrays; :func:`relabel` then gives lazy labels in
which every tile is labelled afresh and looked up in that merge, with no task
that reads more than one tile.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

import dask
import dask.array as da
import numba
import numpy as np
import scipy.ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "INT32_LIMIT",
    "LabelMerge",
    "label",
    "label_merge",
    "label_merges",
    "label_structure",
    "relabel",
]

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


def label(mask: da.Array | np.ndarray, connectivity: int = 1) -> tuple[da.Array, da.Array]:
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
        ``dask.compute(labels, n)`` labels each tile once; ``int(n)`` alone
        skips the final relabelling.

    Raises
    ------
    TypeError
        If ``mask`` is not an array.
    ValueError
        If ``mask`` has no dimensions or ``connectivity`` is out of range.

    Notes
    -----
    The graph has three stages, built with ``map_blocks`` and one
    ``dask.delayed`` merge; none of them holds the whole image:

    1. every block is labelled on its own into runs (see the module notes);
       it reports the number of its labels, the raster index of each label's
       first pixel and its labels on the faces it shares with other blocks;
    2. one merge task, fed only by those reports, lists the pairs of labels
       touching across every internal chunk boundary (comparing face pixels
       shifted by -1, 0 or +1 along the other axes as the connectivity allows,
       so edges and corners between diagonal blocks count), joins them with a
       connected-components pass, and ranks the objects by the raster index of
       their first pixel -- scipy's numbering;
    3. every block paints its runs with their final numbers, read from the
       merge's lookup table (a single graph key, sent once to each worker
       under dask.distributed).

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
    mask, out_dtype = _prepare_mask(mask, connectivity)
    if mask.size == 0:
        empty_n = da.from_array(np.array(0, dtype=np.int64))
        return da.zeros(mask.shape, dtype=out_dtype, chunks=mask.chunks), empty_n
    return _label_graph(mask, connectivity, out_dtype)


class LabelMerge(NamedTuple):
    """The merge of a chunked mask's tile labels, computed: what :func:`relabel` reads.

    Tiles are taken in C order of their block index; tile ``b`` labels its
    pieces 1..k on its own (raster order of their first pixels), and
    ``table[offsets[b] + local - 1]`` is the final label of its piece ``local``.

    Attributes
    ----------
    chunks : tuple of tuple of int
        Chunks of the mask the merge was computed on (zero-length chunks dropped).
    connectivity : int
        Connectivity of the labelling (see :func:`label_structure`).
    table : numpy.ndarray
        Final label of every tile's every piece; int32, or int64 for masks of
        more than 2**31 - 1 pixels (the dtype of the labels).
    offsets : numpy.ndarray
        int64, one more than the number of tiles: where each tile's pieces start
        in ``table``.
    n_objects : int
        Number of objects in the whole mask.
    """

    chunks: tuple[tuple[int, ...], ...]
    connectivity: int
    table: np.ndarray
    offsets: np.ndarray
    n_objects: int


def label_merge(mask: da.Array | np.ndarray, connectivity: int = 1) -> LabelMerge:
    """Compute now how a chunked mask's tile labels merge into scipy's labels.

    Phase 1 of the two-phase labelling: every tile is labelled and summarized
    (label count, first pixels, labels on its faces) and let go; one task joins
    the summaries. Phase 2 is :func:`relabel`.

    Parameters
    ----------
    mask : dask.array.Array or numpy.ndarray
        Foreground where non-zero; any number of dimensions and any chunking.
    connectivity : int
        1 (faces only) up to ``mask.ndim`` (faces, edges and corners).

    Returns
    -------
    LabelMerge
        Small numpy arrays: one entry per piece of a tile, not per pixel.

    Raises
    ------
    TypeError, ValueError
        As :func:`label` does: for a mask that is not an array or has no
        dimensions, or a connectivity out of range.

    See Also
    --------
    label_merges : the same for several masks in one pass over their tiles.

    Examples
    --------
    Two bars joined in the lower tiles: one piece in each of the four
    2 x 2 tiles is the same object, and the last tile also holds a lone
    corner pixel (its second piece, and the second object).

    >>> import dask.array as da
    >>> image = np.array([[1, 0, 1, 0],
    ...                   [1, 0, 1, 0],
    ...                   [1, 1, 1, 0],
    ...                   [0, 0, 0, 1]], dtype=bool)
    >>> merge = label_merge(da.from_array(image, chunks=2))
    >>> merge.n_objects, merge.table.tolist(), merge.offsets.tolist()
    (2, [1, 1, 1, 1, 2], [0, 1, 2, 3, 5])
    >>> relabel(da.from_array(image, chunks=2), merge).compute()
    array([[1, 0, 1, 0],
           [1, 0, 1, 0],
           [1, 1, 1, 0],
           [0, 0, 0, 2]], dtype=int32)
    """
    return label_merges([mask], connectivity)[0]


def label_merges(masks: Sequence[da.Array | np.ndarray], connectivity: int = 1) -> list[LabelMerge]:
    """:func:`label_merge` of several masks, computed in one pass over all their tiles.

    Parameters
    ----------
    masks : sequence of dask.array.Array or numpy.ndarray
        Foreground where non-zero, each with its own shape and chunking.
    connectivity : int
        1 (faces only) up to the masks' number of dimensions.

    Returns
    -------
    list of LabelMerge
        One per mask, in order.

    Raises
    ------
    TypeError
        If a mask is not an array.
    ValueError
        If a mask has no dimensions or ``connectivity`` is out of range for it.

    Examples
    --------
    >>> import dask.array as da
    >>> planes = da.from_array(np.eye(4, dtype=bool)[None].repeat(2, axis=0), chunks=2)
    >>> [merge.n_objects for merge in label_merges([planes[0], planes[1]], connectivity=2)]
    [1, 1]
    """
    prepared = [_prepare_mask(mask, connectivity) for mask in masks]
    lazy = [
        _merge_array(_reports_of_mask(mask, connectivity), mask.numblocks, connectivity, dtype)
        for mask, dtype in prepared
        if mask.size
    ]
    computed = iter(dask.compute(*lazy))
    merges = []
    for mask, dtype in prepared:
        if mask.size:
            table, offsets, count = next(computed).item()
        else:
            table, offsets, count = np.zeros(0, dtype), np.zeros(1, np.int64), 0
        merges.append(LabelMerge(mask.chunks, connectivity, table, offsets, count))
    return merges


def relabel(mask: da.Array | np.ndarray, merge: LabelMerge) -> da.Array:
    """Lazy labels of a chunked mask, each tile labelled and looked up in a computed merge.

    Phase 2 of the two-phase labelling (phase 1: :func:`label_merge`). Every
    task reads one tile of ``mask`` and the merge, so the labels stream tile
    by tile; the merge is one graph key, sent once to each worker under
    dask.distributed.

    Parameters
    ----------
    mask : dask.array.Array or numpy.ndarray
        The mask the merge was computed from, with the same chunks.
    merge : LabelMerge
        What :func:`label_merge` returned for ``mask``.

    Returns
    -------
    dask.array.Array
        The labels of :func:`label`: identical to ``scipy.ndimage.label`` on
        the whole image, dtype ``merge.table.dtype``, chunks ``merge.chunks``.

    Raises
    ------
    TypeError
        If ``mask`` is not an array.
    ValueError
        If the chunks of ``mask`` are not those of the merge, or (when
        computed) a tile has another number of pieces than the merge counted:
        the merge belongs to another mask.

    Examples
    --------
    >>> import dask.array as da
    >>> mask = da.from_array(np.eye(5, dtype=bool), chunks=(2, 3))
    >>> relabel(mask, label_merge(mask, connectivity=2)).compute().diagonal()
    array([1, 1, 1, 1, 1], dtype=int32)
    """
    mask, dtype = _prepare_mask(mask, merge.connectivity)
    if mask.chunks != merge.chunks:
        raise ValueError(
            f"relabel: mask chunks {mask.chunks} differ from the chunks the merge was "
            f"computed on, {merge.chunks}"
        )
    if merge.table.dtype != dtype:
        raise ValueError(
            f"relabel: the merge holds {merge.table.dtype} labels, a mask of shape "
            f"{mask.shape} has {dtype} labels"
        )
    if mask.size == 0:
        return da.zeros(mask.shape, dtype=dtype, chunks=mask.chunks)
    cell = np.empty((), dtype=object)
    cell[()] = (merge.table, merge.offsets, merge.n_objects)
    token = dask.base.tokenize(merge.table, merge.offsets, merge.n_objects)
    merged = da.from_array(cell, chunks=(), name=f"label-table-{token}")
    return da.map_blocks(
        _relabel_block,
        mask,
        merged,
        mask.numblocks,
        merge.connectivity,
        dtype=dtype,
        meta=np.empty((0,) * mask.ndim, dtype=dtype),
        token="label-relabel",
    )


# ---------------------------------------------------------------- validation


def _check_connectivity(ndim: int, connectivity: int) -> None:
    if ndim < 1:
        raise ValueError(f"mask must have at least 1 dimension, got ndim={ndim}")
    if isinstance(connectivity, bool) or not isinstance(connectivity, (int, np.integer)):
        raise ValueError(f"connectivity must be an integer from 1 to {ndim}, got {connectivity!r}")
    if not 1 <= connectivity <= ndim:
        raise ValueError(f"connectivity must be from 1 to ndim={ndim}, got {connectivity}")


def _prepare_mask(mask: object, connectivity: int) -> tuple[da.Array, np.dtype]:
    """The mask as dask without zero-length chunks, checked, and the dtype of its labels."""
    mask = _as_dask_mask(mask)
    _check_connectivity(mask.ndim, connectivity)
    out_dtype = np.dtype(np.int32) if mask.size <= INT32_LIMIT else np.dtype(np.int64)
    return _drop_empty_chunks(mask), out_dtype


def _as_dask_mask(mask: object) -> da.Array:
    if isinstance(mask, da.Array):
        return mask
    if isinstance(mask, np.ndarray):
        return da.asarray(mask)
    raise TypeError(f"mask must be a dask or numpy array, got {type(mask).__name__}")


def _drop_empty_chunks(mask: da.Array) -> da.Array:
    """Remove zero-length chunks, which have no faces to compare."""
    if mask.size == 0 or all(all(size for size in sizes) for sizes in mask.chunks):
        return mask
    return mask.rechunk(tuple(tuple(s for s in sizes if s) for sizes in mask.chunks))


# ---------------------------------------------------------------- graph


def _label_graph(
    mask: da.Array, connectivity: int, out_dtype: np.dtype
) -> tuple[da.Array, da.Array]:
    """Chain the three stages with map_blocks and one blockwise merge."""
    ndim = mask.ndim
    grid = mask.numblocks
    one_cell_per_block = tuple((1,) * n for n in grid)
    cell_meta = np.empty((0,) * ndim, dtype=object)
    # Stage 1: one object per block (held in a 1 x ... x 1 object array): its runs.
    tiles = da.map_blocks(
        _label_tile_cell,
        mask,
        connectivity,
        chunks=one_cell_per_block,
        dtype=object,
        meta=cell_meta,
        token="label-tiles",
    )
    # Only the small reports travel to the merge, not the runs.
    reports = da.map_blocks(
        _report_cell,
        tiles,
        mask.shape,
        grid,
        dtype=object,
        meta=cell_meta,
        token="label-reports",
    )
    merged = _merge_array(reports, grid, connectivity, out_dtype)
    labels = da.map_blocks(
        _paint_cell,
        tiles,
        merged,
        grid,
        out_dtype.str,
        chunks=mask.chunks,
        dtype=out_dtype,
        meta=np.empty((0,) * ndim, dtype=out_dtype),
        token="label-paint",
    )
    count = da.map_blocks(
        _object_count,
        merged,
        dtype=np.int64,
        meta=np.empty((), dtype=np.int64),
        token="label-count",
    )
    return labels, count


def _merge_array(
    reports: da.Array, grid: tuple[int, ...], connectivity: int, out_dtype: np.dtype
) -> da.Array:
    """Stage 2: every block's report contracted into one 0-d merge task."""
    return da.blockwise(
        _merge_reports,
        (),
        reports,
        tuple(range(len(grid))),
        concatenate=False,
        dtype=object,
        meta=np.empty((), dtype=object),
        token="label-merge",
        grid=grid,
        connectivity=connectivity,
        dtype_str=out_dtype.str,
    )


def _reports_of_mask(mask: da.Array, connectivity: int) -> da.Array:
    """Stages 1 and the report in one task per block: the runs are let go at once."""
    return da.map_blocks(
        _label_report_cell,
        mask,
        connectivity,
        mask.shape,
        mask.numblocks,
        chunks=tuple((1,) * n for n in mask.numblocks),
        dtype=object,
        meta=np.empty((0,) * mask.ndim, dtype=object),
        token="label-tile-reports",
    )


# ---------------------------------------------------------------- tiles


class _Tile(NamedTuple):
    """A block labelled as runs: what stage 1 keeps until the final painting.

    ``line_start[k]`` is the first run of line ``k`` (the block seen as
    ``(n_lines, width)``, lines along the last axis); run ``r`` covers
    ``starts[r] <= x < ends[r]`` and has local label ``run_labels[r]``
    (1..``n_labels``, in raster order of first pixels); ``first_runs[l - 1]``
    is the first run of label ``l``; ``origin`` is the block's first pixel
    in the image.
    """

    shape: tuple[int, ...]
    line_start: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    run_labels: np.ndarray
    first_runs: np.ndarray
    origin: tuple[int, ...]

    @property
    def n_labels(self) -> int:
        return len(self.first_runs)


def _wrap(value: object, ndim: int) -> np.ndarray:
    """Hold ``value`` in a 1 x ... x 1 object array: one cell per block."""
    cell = np.empty((1,) * ndim, dtype=object)
    cell[(0,) * ndim] = value
    return cell


def _label_tile_cell(
    block: np.ndarray, connectivity: int, block_info: dict[Any, Any] | None = None
) -> np.ndarray:
    """Stage 1 for one block: label it into runs."""
    if block_info is None:
        raise ValueError("_label_tile_cell needs the block_info that map_blocks passes")
    return _wrap(_label_tile(block, connectivity, _origin(block_info[0])), block.ndim)


def _origin(location: dict[str, Any]) -> tuple[int, ...]:
    """The first pixel of a block in the image, from its ``block_info`` entry."""
    return tuple(low for low, _ in location["array-location"])


def _label_tile(block: np.ndarray, connectivity: int, origin: tuple[int, ...]) -> _Tile:
    """Label one block into runs along its last axis (compiled passes)."""
    block = np.asarray(block)
    lines = block.reshape(-1, block.shape[-1])
    if lines.dtype != np.bool_:
        lines = lines != 0
    offsets, steps, widened = _neighbour_lines(block.shape, connectivity)
    line_start, starts, ends = _find_runs(lines)
    parent = _join_runs(
        line_start,
        starts,
        ends,
        np.asarray(block.shape[:-1], dtype=np.int64),
        offsets,
        steps,
        widened,
    )
    run_labels, first_runs = _number_runs(parent)
    if block.shape[-1] < 2**16:
        # Held until the painting: half the bytes where lines are short enough.
        starts, ends = starts.astype(np.uint16), ends.astype(np.uint16)
    return _Tile(block.shape, line_start, starts, ends, run_labels, first_runs, origin)


def _neighbour_lines(
    shape: tuple[int, ...], connectivity: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The earlier lines a line touches, as offsets over the leading axes.

    A pixel touches those whose coordinates differ by one in at most
    ``connectivity`` axes. Seen from a line, a neighbouring line differs in
    ``k`` leading axes; its runs touch when they overlap (``k ==
    connectivity``) or also when they are one pixel apart along the line
    (``k < connectivity``: the diagonal step adds one differing axis).
    Only lines earlier in raster order are listed; each pair is joined once.

    Returns
    -------
    offsets : (m, ndim - 1) int64, steps : (m,) int64 (offsets in flat line
    index), widened : (m,) bool
    """
    lead = shape[:-1]
    line_strides = np.cumprod((1, *lead[::-1][:-1]))[::-1] if lead else np.empty(0, np.int64)
    offsets, steps, widened = [], [], []
    for offset in itertools.product((-1, 0, 1), repeat=len(lead)):
        differing = sum(o != 0 for o in offset)
        step = int(np.dot(offset, line_strides)) if lead else 0
        # Earlier lines only: the first non-zero coordinate is negative.
        if differing == 0 or differing > connectivity or next(o for o in offset if o) > 0:
            continue
        offsets.append(offset)
        steps.append(step)
        widened.append(differing < connectivity)
    return (
        np.asarray(offsets, dtype=np.int64).reshape(len(offsets), len(lead)),
        np.asarray(steps, dtype=np.int64),
        np.asarray(widened, dtype=np.bool_),
    )


@numba.njit(cache=True, nogil=True)
def _find_runs(lines):
    """Runs of True along each line: (line_start, starts, ends), ends exclusive."""
    n_lines, width = lines.shape
    # Every position where a line switches between background and foreground,
    # collected without branches (each pixel is written, the count moves on a
    # switch): data-dependent branches would be mispredicted at every switch.
    switches = np.empty(n_lines * (width + 1), np.int32)
    line_start = np.empty(n_lines + 1, np.int64)
    count = 0
    for k in range(n_lines):
        line_start[k] = count // 2
        row = lines[k]
        previous = False
        for x in range(width):
            value = row[x]
            switches[count] = x
            count += value != previous
            previous = value
        switches[count] = width  # a run reaching the end of the line closes there
        count += previous
    line_start[n_lines] = count // 2
    # Copies, so that the unused capacity is freed.
    return line_start, switches[0:count:2].copy(), switches[1:count:2].copy()


@numba.njit(cache=True, nogil=True)
def _root(parent, run):
    while parent[run] != run:
        parent[run] = parent[parent[run]]  # path halving
        run = parent[run]
    return run


@numba.njit(cache=True, nogil=True)
def _join_runs(line_start, starts, ends, lead_shape, offsets, steps, widened):
    """Union-find over runs: ``parent`` links each set to its earliest run."""
    n_runs = starts.shape[0]
    n_lines = line_start.shape[0] - 1
    n_lead = lead_shape.shape[0]
    parent = np.arange(n_runs)
    index = np.zeros(n_lead, np.int64)  # multi-index of the current line
    for line in range(n_lines):
        for o in range(steps.shape[0]):
            inside = True
            for axis in range(n_lead):
                other = index[axis] + offsets[o, axis]
                inside &= 0 <= other < lead_shape[axis]
            if not inside:
                continue
            reach = 1 if widened[o] else 0
            i, i_stop = line_start[line], line_start[line + 1]
            j = line_start[line + steps[o]]
            j_stop = line_start[line + steps[o] + 1]
            while i < i_stop and j < j_stop:
                if ends[j] + reach <= starts[i]:
                    j += 1
                elif ends[i] + reach <= starts[j]:
                    i += 1
                else:
                    a = _root(parent, i)
                    b = _root(parent, j)
                    # The larger root joins the smaller: roots stay earliest runs.
                    if a < b:
                        parent[b] = a
                    elif b < a:
                        parent[a] = b
                    if ends[i] < ends[j]:
                        i += 1
                    else:
                        j += 1
        # Next multi-index (odometer over the leading axes).
        axis = n_lead - 1
        while axis >= 0:
            index[axis] += 1
            if index[axis] < lead_shape[axis]:
                break
            index[axis] = 0
            axis -= 1
    return parent


@numba.njit(cache=True, nogil=True)
def _number_runs(parent):
    """Local labels 1..n in raster order of first runs, and each label's first run."""
    n_runs = parent.shape[0]
    run_labels = np.empty(n_runs, np.int32)
    first_runs = np.empty(n_runs, np.int64)
    n = 0
    for run in range(n_runs):
        root = _root(parent, run)
        if root == run:
            first_runs[n] = run
            n += 1
            run_labels[run] = n
        else:
            # Roots are earliest runs, numbered already.
            run_labels[run] = run_labels[root]
    return run_labels, first_runs[:n].copy()


@numba.njit(cache=True, nogil=True)
def _paint_lines(line_start, starts, ends, run_labels, lookup, lines, out):
    """Write ``lookup[label]`` over each run of the chosen ``lines``, 0 elsewhere."""
    for row in range(lines.shape[0]):
        line = lines[row]
        target = out[row]
        target[:] = 0
        for run in range(line_start[line], line_start[line + 1]):
            value = lookup[run_labels[run]]
            for x in range(starts[run], ends[run]):
                target[x] = value


@numba.njit(cache=True, nogil=True)
def _line_ends(line_start, starts, ends, run_labels, width):
    """Local labels of the first and the last pixel of every line (0: background)."""
    n_lines = line_start.shape[0] - 1
    first = np.zeros(n_lines, np.int32)
    last = np.zeros(n_lines, np.int32)
    for line in range(n_lines):
        if line_start[line + 1] > line_start[line]:
            if starts[line_start[line]] == 0:
                first[line] = run_labels[line_start[line]]
            if ends[line_start[line + 1] - 1] == width:
                last[line] = run_labels[line_start[line + 1] - 1]
    return first, last


# ---------------------------------------------------------------- reports

# (n_labels, first pixels, faces): what one block tells the merge, see _report.
_Report: TypeAlias = tuple[int, np.ndarray, tuple[np.ndarray | None, ...]]


def _report_cell(
    cell: np.ndarray,
    image_shape: tuple[int, ...],
    grid: tuple[int, ...],
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    """What the merge needs from one block: label count, first pixels, faces."""
    if block_id is None:
        raise ValueError("_report_cell needs the block_id that map_blocks passes")
    tile = cell.item()
    return _wrap(_report(tile, image_shape, block_id, grid), len(grid))


def _label_report_cell(
    block: np.ndarray,
    connectivity: int,
    image_shape: tuple[int, ...],
    grid: tuple[int, ...],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """The report of one block, labelled here and not kept (phase 1)."""
    if block_info is None:
        raise ValueError("_label_report_cell needs the block_info that map_blocks passes")
    location = block_info[0]
    tile = _label_tile(block, connectivity, _origin(location))
    return _wrap(_report(tile, image_shape, location["chunk-location"], grid), len(grid))


def _report(
    tile: _Tile, image_shape: tuple[int, ...], block_id: tuple[int, ...], grid: tuple[int, ...]
) -> _Report:
    """(n_labels, global raster index of each label's first pixel, faces).

    ``faces[2 * axis]`` and ``faces[2 * axis + 1]`` are the local labels of
    the first and last slice along ``axis``, ``None`` where that side is the
    image border (no other block to join).
    """
    width = tile.shape[-1]
    first_lines = np.searchsorted(tile.line_start, tile.first_runs, side="right") - 1
    local_flat = first_lines * width + tile.starts[tile.first_runs]
    coords = np.unravel_index(local_flat, tile.shape)
    global_coords = tuple(c + s for c, s in zip(coords, tile.origin, strict=True))
    first_pixels = np.ravel_multi_index(global_coords, image_shape).astype(np.int64)
    faces: list[np.ndarray | None] = []
    for axis, position in enumerate(block_id):
        for side, wanted in ((0, position > 0), (-1, position < grid[axis] - 1)):
            faces.append(_face(tile, axis, side) if wanted else None)
    return tile.n_labels, first_pixels, tuple(faces)


def _face(tile: _Tile, axis: int, side: int) -> np.ndarray:
    """Local labels of the first (``side=0``) or last (``-1``) slice along ``axis``."""
    lead = tile.shape[:-1]
    if axis == len(tile.shape) - 1:
        first, last = _line_ends(
            tile.line_start, tile.starts, tile.ends, tile.run_labels, tile.shape[-1]
        )
        return (first if side == 0 else last).reshape(lead)
    lines = np.arange(int(np.prod(lead)), dtype=np.int64).reshape(lead)
    chosen = np.take(lines, side, axis=axis).ravel()
    face = np.empty((chosen.size, tile.shape[-1]), dtype=np.int32)
    identity = np.arange(tile.n_labels + 1, dtype=np.int32)
    _paint_lines(tile.line_start, tile.starts, tile.ends, tile.run_labels, identity, chosen, face)
    return face.reshape(tile.shape[:axis] + tile.shape[axis + 1 :])


# ---------------------------------------------------------------- merge


def _merge_reports(
    nested_reports: list[Any], grid: tuple[int, ...], connectivity: int, dtype_str: str
) -> np.ndarray:
    """Join touching labels and number objects in scipy's order (stage 2).

    Returns
    -------
    numpy.ndarray
        0-d object array holding ``(table, offsets, n)``:
        ``table[offsets[b] + local - 1]`` is the final label of local label
        ``local`` of block ``b`` (blocks in C order).
    """
    reports = [cell.item() for cell in _flatten(nested_reports)]
    merged = np.empty((), dtype=object)
    merged[()] = _merge(reports, grid, connectivity, np.dtype(dtype_str))
    return merged


def _flatten(nested: list[Any] | np.ndarray) -> list[np.ndarray]:
    """The blocks of a nested list (one level per axis), in C order."""
    if isinstance(nested, list):
        return [cell for item in nested for cell in _flatten(item)]
    return [nested]


def _merge(
    reports: list[_Report], grid: tuple[int, ...], connectivity: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, int]:
    counts = np.array([report[0] for report in reports], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, dtype=dtype), offsets, 0
    # First pixels are distinct, so they identify pieces and order objects.
    first = np.concatenate([report[1] for report in reports])
    representative = np.arange(total, dtype=np.int64)
    edges = _touching_pairs(reports, offsets, grid, connectivity)
    if len(edges):
        nodes, edge_nodes = np.unique(edges, return_inverse=True)
        edge_nodes = edge_nodes.reshape(edges.shape)
        graph = coo_matrix(
            (np.ones(len(edge_nodes), dtype=np.int8), (edge_nodes[:, 0], edge_nodes[:, 1])),
            shape=(len(nodes), len(nodes)),
        )
        n_components, component = connected_components(graph, directed=False)
        # Each object is represented by its piece with the earliest first pixel.
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
    return rank[representative], offsets, len(objects)


def _touching_pairs(
    reports: list[_Report], offsets: np.ndarray, grid: tuple[int, ...], connectivity: int
) -> np.ndarray:
    """(m, 2) global piece ids touching across the internal chunk boundaries."""
    found = [np.empty((0, 2), dtype=np.int64)]
    for axis in range(len(grid)):
        for boundary in range(grid[axis] - 1):
            low = _strip(reports, offsets, grid, axis, boundary, 2 * axis + 1)
            high = _strip(reports, offsets, grid, axis, boundary + 1, 2 * axis)
            found.extend(_pairs_across(low, high, connectivity))
    return np.concatenate(found)


def _strip(
    reports: list[_Report],
    offsets: np.ndarray,
    grid: tuple[int, ...],
    axis: int,
    position: int,
    face_index: int,
) -> np.ndarray:
    """One face of every block at ``position`` along ``axis``, as a strip of global ids.

    Background is -1; the blocks' faces are laid side by side in the order of
    the other axes (``np.block``'s nesting).
    """

    def global_ids(index: tuple[int, ...]) -> np.ndarray:
        linear = int(np.ravel_multi_index(index, grid))
        face = reports[linear][2][face_index]
        # Only image borders have no face, and strips lie on internal boundaries.
        assert face is not None
        return np.where(face > 0, face.astype(np.int64) + offsets[linear] - 1, -1)

    other_axes = [a for a in range(len(grid)) if a != axis]

    def nest(level: int, index: list[int]) -> np.ndarray | list[Any]:
        if level == len(other_axes):
            full = list(index)
            full.insert(axis, position)
            return global_ids(tuple(full))
        return [nest(level + 1, [*index, i]) for i in range(grid[other_axes[level]])]

    if not other_axes:
        return global_ids((position,))
    return np.block(nest(0, []))


def _pairs_across(low: np.ndarray, high: np.ndarray, connectivity: int) -> list[np.ndarray]:
    """Pairs of ids touching from ``low`` (last slice before a boundary) to ``high``.

    A pixel of ``low`` touches the pixels of ``high`` shifted by -1, 0 or +1
    along the other axes, as long as the offset (with the step across the
    boundary) has at most ``connectivity`` non-zero coordinates.
    """
    found: list[np.ndarray] = []
    for shift in itertools.product((-1, 0, 1), repeat=low.ndim):
        if 1 + sum(s != 0 for s in shift) > connectivity:
            continue
        # low[x] faces high[x + shift]: crop both to where that exists.
        low_part = low[
            tuple(slice(max(0, -s), n - max(0, s)) for s, n in zip(shift, low.shape, strict=True))
        ]
        high_part = high[
            tuple(slice(max(0, s), n - max(0, -s)) for s, n in zip(shift, high.shape, strict=True))
        ]
        touching = (low_part >= 0) & (high_part >= 0)
        if touching.any():
            pairs = np.stack((low_part[touching], high_part[touching]), axis=1)
            found.append(np.unique(pairs, axis=0))
    return found


# ---------------------------------------------------------------- painting


def _paint_cell(
    cell: np.ndarray,
    merged: np.ndarray,
    grid: tuple[int, ...],
    dtype_str: str,
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Stage 3 for one block: paint its runs with their final labels."""
    if block_id is None:
        raise ValueError("_paint_cell needs the block_id that map_blocks passes")
    table, offsets, _ = merged.item()
    linear = int(np.ravel_multi_index(block_id, grid))
    return _paint(cell.item(), table[offsets[linear] : offsets[linear + 1]], np.dtype(dtype_str))


def _relabel_block(
    block: np.ndarray,
    merged: np.ndarray,
    grid: tuple[int, ...],
    connectivity: int,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """Phase 2 for one block: label it afresh and paint it from the computed merge."""
    if block_info is None:
        raise ValueError("_relabel_block needs the block_info that map_blocks passes")
    location = block_info[0]
    block_id = location["chunk-location"]
    tile = _label_tile(block, connectivity, _origin(location))
    table, offsets, _ = merged.item()
    linear = int(np.ravel_multi_index(block_id, grid))
    pieces = table[offsets[linear] : offsets[linear + 1]]
    if len(pieces) != tile.n_labels:
        raise ValueError(
            f"relabel: block {tuple(block_id)} has {tile.n_labels} pieces, the merge counted "
            f"{len(pieces)}: the merge was computed from another mask"
        )
    return _paint(tile, pieces, table.dtype)


def _paint(tile: _Tile, pieces: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The tile's runs painted with ``pieces[local - 1]``, the final label of each piece."""
    lookup = np.empty(tile.n_labels + 1, dtype=dtype)
    lookup[0] = 0
    lookup[1:] = pieces
    n_lines = int(np.prod(tile.shape[:-1]))
    out = np.empty((n_lines, tile.shape[-1]), dtype=lookup.dtype)
    _paint_lines(
        tile.line_start,
        tile.starts,
        tile.ends,
        tile.run_labels,
        lookup,
        np.arange(n_lines, dtype=np.int64),
        out,
    )
    return out.reshape(tile.shape)


def _object_count(merged: np.ndarray) -> np.ndarray:
    return np.array(merged.item()[2], dtype=np.int64)
