"""Tiled connected components against scipy.ndimage.label on the whole image.

Same labels, same numbers, same count: random masks of several densities with uneven chunks,
2-D and 3-D, every connectivity, objects crossing many chunks, empty and full masks.
"""

from __future__ import annotations

import itertools
import pickle

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from dask.callbacks import Callback
from dask.core import get_dependencies

from nima_lessons.labels import (
    LabelMerge,
    label,
    label_merge,
    label_merges,
    label_structure,
    relabel,
)

UNEVEN_2D = ((7, 30, 1, 25, 17), (13, 2, 40, 25))  # shape (80, 80)
UNEVEN_3D = ((5, 9, 1, 7), (3, 10, 11), (12, 1, 6, 5))  # shape (22, 24, 24)


def scipy_labels(mask: np.ndarray, connectivity: int):
    structure = ndi.generate_binary_structure(mask.ndim, connectivity)
    return ndi.label(mask, structure=structure)


def assert_same_as_scipy(mask: np.ndarray, chunks, connectivity: int) -> None:
    expected, expected_n = scipy_labels(mask, connectivity)
    labels, n = label(da.from_array(mask, chunks=chunks), connectivity=connectivity)
    got, got_n = dask.compute(labels, n)
    assert int(got_n) == expected_n
    assert got.dtype == np.int32
    assert labels.chunks == da.from_array(mask, chunks=chunks).chunks
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("density", [0.2, 0.45, 0.6, 0.8])
@pytest.mark.parametrize("connectivity", [1, 2])
def test_random_2d_masks_with_uneven_chunks(density, connectivity):
    mask = np.random.default_rng(int(density * 100)).random((80, 80)) < density
    assert_same_as_scipy(mask, UNEVEN_2D, connectivity)


@pytest.mark.parametrize("density", [0.15, 0.3, 0.5])
@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_random_3d_masks_with_uneven_chunks(density, connectivity):
    mask = np.random.default_rng(int(density * 100)).random((22, 24, 24)) < density
    assert_same_as_scipy(mask, UNEVEN_3D, connectivity)


def random_chunks(rng, size: int) -> tuple[int, ...]:
    """Uneven chunk sizes summing to ``size``, single pixels and long runs mixed."""
    cuts = np.sort(rng.choice(np.arange(1, size), size=rng.integers(1, 8), replace=False))
    return tuple(np.diff(np.concatenate(([0], cuts, [size]))).tolist())


@pytest.mark.parametrize("seed", range(12))
def test_random_masks_with_random_chunkings(seed):
    rng = np.random.default_rng(100 + seed)
    shape = tuple(rng.integers(20, 60, size=2))
    mask = rng.random(shape) < rng.uniform(0.3, 0.7)
    chunks = tuple(random_chunks(rng, size) for size in shape)
    for connectivity in (1, 2):
        assert_same_as_scipy(mask, chunks, connectivity)


@pytest.mark.parametrize("seed", range(4))
def test_random_3d_masks_with_random_chunkings(seed):
    rng = np.random.default_rng(200 + seed)
    shape = tuple(rng.integers(8, 20, size=3))
    mask = rng.random(shape) < rng.uniform(0.2, 0.5)
    chunks = tuple(random_chunks(rng, size) for size in shape)
    for connectivity in (1, 2, 3):
        assert_same_as_scipy(mask, chunks, connectivity)


def test_four_dimensional_masks():
    mask = np.random.default_rng(9).random((5, 6, 7, 8)) < 0.3
    for connectivity in (1, 2, 4):
        assert_same_as_scipy(mask, (2, 3, 4, 5), connectivity)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_blobs_crossing_chunk_borders(connectivity):
    noise = np.random.default_rng(3).random((150, 170))
    mask = ndi.gaussian_filter(noise, 2.5) > 0.5
    assert_same_as_scipy(mask, (23, 31), connectivity)


def square_spiral(size: int) -> np.ndarray:
    """A one-pixel-wide square spiral with one-pixel gaps: a single long object."""
    mask = np.zeros((size, size), dtype=bool)

    def inside(y, x):
        return 0 <= y < size and 0 <= x < size

    def can_step(y, x, dy, dx):
        # Step only if the next cell is free and the one after it too, which
        # keeps a gap between successive turns of the spiral.
        if not inside(y + dy, x + dx) or mask[y + dy, x + dx]:
            return False
        return not (inside(y + 2 * dy, x + 2 * dx) and mask[y + 2 * dy, x + 2 * dx])

    y = x = 0
    mask[y, x] = True
    directions = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    heading, idle_turns = 0, 0
    while idle_turns < 2:
        dy, dx = directions[heading]
        steps = 0
        while can_step(y, x, dy, dx):
            y, x = y + dy, x + dx
            mask[y, x] = True
            steps += 1
        idle_turns = idle_turns + 1 if steps == 0 else 0
        heading = (heading + 1) % 4
    return mask


def diagonal_snake(size: int) -> np.ndarray:
    """A staircase of diagonal steps: one object with full connectivity only."""
    mask = np.zeros((size, size), dtype=bool)
    for row in range(size):
        column = row if (row // 20) % 2 == 0 else size - 1 - row
        mask[row, column] = True
    return mask


def test_spiral_spanning_many_chunks():
    spiral = square_spiral(97)
    assert spiral.sum() > 4000  # long: it winds through every chunk below
    assert scipy_labels(spiral, 1)[1] == scipy_labels(spiral, 2)[1] == 1
    for chunks in [(8, 8), (13, 5), ((40, 1, 56), (3, 90, 4))]:
        for connectivity in (1, 2):
            assert_same_as_scipy(spiral, chunks, connectivity)


def test_boustrophedon_snake_spanning_every_chunk():
    snake = np.zeros((60, 60), dtype=bool)
    snake[::2] = True
    snake[1::4, -1] = True
    snake[3::4, 0] = True
    assert scipy_labels(snake, 1)[1] == 1
    assert_same_as_scipy(snake, (7, 11), 1)
    assert_same_as_scipy(snake, (1, 60), 2)


def test_diagonal_steps_join_only_with_full_connectivity():
    snake = diagonal_snake(90)
    assert scipy_labels(snake, 1)[1] == snake.sum()
    assert scipy_labels(snake, 2)[1] < 10
    for connectivity in (1, 2):
        assert_same_as_scipy(snake, (9, 9), connectivity)


def test_corner_contact_between_diagonal_chunks_3d():
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[3, 3, 3] = mask[4, 4, 4] = True  # touch across a corner of 8 chunks
    mask[3, 3, 6] = mask[4, 4, 6] = True  # touch across an edge
    for connectivity in (1, 2, 3):
        assert_same_as_scipy(mask, 4, connectivity)


def test_3d_helix_across_chunks():
    mask = np.zeros((30, 40, 40), dtype=bool)
    angle = np.linspace(0, 6 * np.pi, 600)
    z = np.round(np.linspace(0, 29, 600)).astype(int)
    y = np.round(19.5 + 15 * np.sin(angle)).astype(int)
    x = np.round(19.5 + 15 * np.cos(angle)).astype(int)
    mask[z, y, x] = True
    for connectivity in (1, 2, 3):
        assert_same_as_scipy(mask, (7, 9, 11), connectivity)


@pytest.mark.parametrize("fill", [False, True])
@pytest.mark.parametrize("shape, chunks", [((40, 50), (9, 13)), ((10, 12, 14), (3, 5, 4))])
def test_empty_and_full_masks(fill, shape, chunks):
    mask = np.full(shape, fill)
    for connectivity in range(1, len(shape) + 1):
        assert_same_as_scipy(mask, chunks, connectivity)


def test_one_dimensional_and_single_chunk_masks():
    mask = np.random.default_rng(0).random(300) < 0.5
    assert_same_as_scipy(mask, 17, 1)
    assert_same_as_scipy(mask, 300, 1)
    grid = np.random.default_rng(1).random((30, 40)) < 0.5
    assert_same_as_scipy(grid, (30, 40), 2)


def test_single_pixel_chunks():
    mask = np.random.default_rng(2).random((12, 10)) < 0.55
    for connectivity in (1, 2):
        assert_same_as_scipy(mask, 1, connectivity)


def test_numpy_input_non_boolean_mask_and_zero_length_chunks():
    values = np.random.default_rng(4).integers(0, 3, size=(40, 30))
    labels, n = label(values, connectivity=2)
    expected, expected_n = scipy_labels(values > 0, 2)
    np.testing.assert_array_equal(labels.compute(), expected)
    assert int(n) == expected_n
    with_empty = da.from_array(values > 0, chunks=((10, 0, 30), (15, 0, 15)))
    np.testing.assert_array_equal(label(with_empty, 2)[0].compute(), expected)


def task_prefix(key) -> str:
    name = key[0] if isinstance(key, tuple) else key
    return name.rsplit("-", 1)[0]


def test_count_is_lazy_and_blocks_are_labelled_once():
    mask = np.random.default_rng(5).random((50, 50)) < 0.5
    labels, n = label(da.from_array(mask, chunks=20))
    assert isinstance(n, da.Array) and n.shape == () and n.dtype == np.int64
    ran = []
    with Callback(posttask=lambda key, *_: ran.append(task_prefix(key))):
        _, got_n = dask.compute(labels, n, scheduler="synchronous")
    assert ran.count("label-tiles") == labels.npartitions == 9
    assert ran.count("label-paint") == 9
    assert int(got_n) == ndi.label(mask)[1]
    ran.clear()
    with Callback(posttask=lambda key, *_: ran.append(task_prefix(key))):
        assert int(n.compute(scheduler="synchronous")) == ndi.label(mask)[1]
    # Alone, the count needs no painting (dask may fuse labelling into the reports).
    assert ran.count("label-reports") == 9 and "label-paint" not in ran


def test_only_small_reports_reach_the_merge():
    mask = np.random.default_rng(6).random((64, 64)) < 0.5
    labels, _ = label(da.from_array(mask, chunks=16), connectivity=2)
    graph = dict(labels.__dask_graph__())
    tiles = {key for key in graph if task_prefix(key) == "label-tiles"}
    assert len(tiles) == 16
    for key in graph:
        assert len(get_dependencies(graph, key) & tiles) <= 1, key
    (merge,) = [key for key in graph if task_prefix(key) == "label-merge"]
    reports = {key for key in graph if task_prefix(key) == "label-reports"}
    assert get_dependencies(graph, merge) == reports


def test_graph_pickles_and_computes_after_a_round_trip():
    mask = np.random.default_rng(7).random((30, 40)) < 0.5
    collections = label(da.from_array(mask, chunks=(11, 13)), connectivity=2)
    labels, n = pickle.loads(pickle.dumps(collections))
    expected, expected_n = scipy_labels(mask, 2)
    got, got_n = dask.compute(labels, n)
    np.testing.assert_array_equal(got, expected)
    assert int(got_n) == expected_n


# ---------------------------------------------------------------- two phases


@pytest.mark.parametrize(
    ("shape", "chunks", "connectivity"),
    [((80, 80), UNEVEN_2D, 1), ((80, 80), UNEVEN_2D, 2)]
    + [((22, 24, 24), UNEVEN_3D, c) for c in (1, 2, 3)],
)
def test_two_phase_labels_are_scipy_s_on_uneven_chunks(shape, chunks, connectivity):
    mask = np.random.default_rng(len(shape) * 10 + connectivity).random(shape) < 0.45
    expected, expected_n = scipy_labels(mask, connectivity)
    lazy_mask = da.from_array(mask, chunks=chunks)
    merge = label_merge(lazy_mask, connectivity)
    assert isinstance(merge, LabelMerge) and merge.n_objects == expected_n
    assert merge.chunks == lazy_mask.chunks and len(merge.offsets) == lazy_mask.npartitions + 1
    # Every piece of every tile has a final label, and every object has a piece.
    assert len(merge.table) == merge.offsets[-1]
    assert set(merge.table.tolist()) == set(range(1, expected_n + 1))
    labels = relabel(lazy_mask, merge)
    assert labels.dtype == np.int32 and labels.chunks == lazy_mask.chunks
    np.testing.assert_array_equal(labels.compute(), expected)


def test_merges_of_several_masks_in_one_pass():
    rng = np.random.default_rng(11)
    masks = [
        da.from_array(rng.random((40, 30)) < 0.5, chunks=((9, 1, 30), (17, 13))),
        da.from_array(rng.random((13, 50)) < 0.7, chunks=(5, (1, 24, 25))),
        da.zeros((6, 6), dtype=bool, chunks=4),
        da.zeros((0, 5), dtype=bool, chunks=2),
    ]
    merges = label_merges(masks, connectivity=2)
    for mask, merge in zip(masks, merges, strict=True):
        expected, expected_n = scipy_labels(mask.compute(), 2)
        assert merge.n_objects == expected_n
        np.testing.assert_array_equal(relabel(mask, merge).compute(), expected)


def test_relabelling_labels_each_tile_once_and_never_merges():
    mask = da.from_array(np.random.default_rng(12).random((45, 50)) < 0.5, chunks=(20, 17))
    labels = relabel(mask, label_merge(mask))
    graph = dict(labels.__dask_graph__())
    blocks = {key for key in graph if task_prefix(key) == task_prefix(mask.name)}
    for key in graph:
        assert len(get_dependencies(graph, key) & blocks) <= 1, key
    ran = []
    with Callback(posttask=lambda key, *_: ran.append(task_prefix(key))):
        got = labels.compute(scheduler="synchronous")
    assert ran.count("label-relabel") == mask.npartitions == 9
    assert not [name for name in ran if name.startswith(("label-merge", "label-tile"))]
    np.testing.assert_array_equal(got, ndi.label(mask.compute())[0])
    # The graph pickles (dask.distributed) and the merge travels with it.
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(labels)).compute(), got)


def test_relabel_rejects_a_merge_of_another_mask():
    rng = np.random.default_rng(13)
    mask = da.from_array(rng.random((20, 20)) < 0.5, chunks=10)
    merge = label_merge(mask)
    with pytest.raises(ValueError, match=r"chunks .* differ"):
        relabel(mask.rechunk(5), merge)
    with pytest.raises(ValueError, match=r"connectivity"):
        relabel(mask, merge._replace(connectivity=3))
    other = da.from_array(np.ones((20, 20), dtype=bool), chunks=10)
    with pytest.raises(ValueError, match=r"block \(\d, \d\) has 1 pieces, the merge counted"):
        relabel(other, merge).compute()


@pytest.mark.parametrize("connectivity", [0, 3, 1.5, True])
def test_invalid_connectivity_is_rejected(connectivity):
    with pytest.raises(ValueError, match="connectivity"):
        label(da.zeros((4, 4), dtype=bool, chunks=2), connectivity=connectivity)


def test_non_array_mask_is_rejected():
    with pytest.raises(TypeError, match="mask"):
        label([[True, False]])


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_structure_links_offsets_differing_in_at_most_connectivity_axes(ndim):
    for connectivity in range(1, ndim + 1):
        structure = label_structure(ndim, connectivity)
        assert structure.shape == (3,) * ndim and structure.dtype == bool
        for offset in itertools.product((-1, 0, 1), repeat=ndim):
            differing = sum(o != 0 for o in offset)
            position = tuple(o + 1 for o in offset)
            assert structure[position] == (differing <= connectivity), (connectivity, offset)


def test_structure_joins_diagonal_pixels_only_with_full_connectivity():
    mask = np.array([[1, 0], [0, 1]], dtype=bool)
    assert ndi.label(mask, structure=label_structure(2, 1))[1] == 2
    assert ndi.label(mask, structure=label_structure(2, 2))[1] == 1


@pytest.mark.parametrize("ndim", [0, 2])
def test_structure_rejects_bad_connectivity(ndim):
    with pytest.raises(ValueError, match=r"connectivity|dimension"):
        label_structure(ndim, 3)
