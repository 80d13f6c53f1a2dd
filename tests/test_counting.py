"""Tiled nuclei counting against the whole-image count and the generator's ground truth.

"global" and "centroid" must be exact for every seed and tile size; "naive" must over-count;
per-tile numbers are checked against scipy on each tile cut out by hand.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage.segmentation import clear_border

from nima_lessons.counting import (
    compare_strategies,
    count_map,
    count_nuclei,
    count_tiled,
    segment_nuclei,
)
from nima_lessons.course.synthetic import NUCLEI_THRESHOLD, nuclei_image

SHAPE = (420, 630)
TILE_SIZES = [64, 100, (90, 150)]


@pytest.fixture(scope="module", params=[0, 1, 2])
def nuclei(request):
    return nuclei_image(SHAPE, seed=request.param)


def tiles_by_hand(image: np.ndarray, tile):
    rows, cols = (tile, tile) if np.isscalar(tile) else tile
    for y in range(0, image.shape[0], rows):
        yield [image[y : y + rows, x : x + cols] for x in range(0, image.shape[1], cols)]


def scipy_count(image: np.ndarray) -> int:
    return ndi.label(image > NUCLEI_THRESHOLD)[1]


def counts_with_and_without_cut(image: np.ndarray, tile) -> tuple[int, int]:
    """Objects of every tile counted by scipy, with and without those touching a tile border."""
    with_cut, without_cut = 0, 0
    for row in tiles_by_hand(image, tile):
        for part in row:
            mask = part > NUCLEI_THRESHOLD
            with_cut += ndi.label(mask)[1]
            # Nuclei never touch the image border, so clearing every tile
            # border removes exactly the objects cut by tiling.
            without_cut += ndi.label(clear_border(mask))[1]
    return with_cut, without_cut


def test_whole_image_count_is_the_truth(nuclei):
    assert count_nuclei(nuclei.image) == scipy_count(nuclei.image) == nuclei.count
    assert count_nuclei(nuclei.image, watershed=True) == nuclei.count
    labels, n = segment_nuclei(nuclei.image)
    assert n == nuclei.count and labels.dtype == np.int32
    # One segmented object per true nucleus, and the other way round.
    both = (labels > 0) & (nuclei.labels > 0)
    pairs = np.unique(np.stack([labels[both], nuclei.labels[both]]), axis=1)
    assert pairs.shape[1] == len(set(pairs[0])) == len(set(pairs[1])) == nuclei.count


def touching_nuclei() -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Pairs of overlapping discs (radius 10, centres 16 apart), an ellipse and a thin bar.

    Returns the image and the centre of every nucleus drawn: the truth by construction.
    """
    yy, xx = np.mgrid[:120, :200]
    image = np.full(yy.shape, 10, dtype=np.uint8)
    centres = []
    for y, x in [(25, 25), (25, 100), (80, 40)]:
        for cx in (x, x + 16):
            image[(yy - y) ** 2 + (xx - cx) ** 2 <= 100] = 200
            centres.append((y, cx))
    # One elongated nucleus (its ridge must give one seed) and one too thin to seed.
    image[((yy - 85) / 8.0) ** 2 + ((xx - 130) / 25.0) ** 2 <= 1] = 200
    centres.append((85, 130))
    image[100:102, 170:190] = 200
    centres.append((100, 180))
    return image, centres


def test_watershed_splits_touching_nuclei_as_drawn():
    image, centres = touching_nuclei()
    assert count_nuclei(image) == scipy_count(image) == len(centres) - 3
    labels, n = segment_nuclei(image, watershed=True)
    assert n == count_nuclei(image, watershed=True) == len(centres)
    np.testing.assert_array_equal(labels > 0, image > NUCLEI_THRESHOLD)
    # Every drawn nucleus has its own label, found at its centre.
    assert sorted(int(labels[y, x]) for y, x in centres) == list(range(1, n + 1))
    # The neck of each pair is about 4 px (10 - 6) shallower than the discs:
    # a deeper seed depth keeps each pair whole.
    assert count_nuclei(image, watershed=True, seed_depth_px=6) == len(centres) - 3


def test_count_map_passes_the_seed_depth_to_every_tile():
    image, _ = touching_nuclei()
    # The tile borders at x = 80 and 160 cut no nucleus: two pairs in the
    # first tile, a pair and the ellipse in the second, the bar in the last.
    tiles = da.from_array(image, chunks=(120, 80))
    assert count_map(tiles, watershed=True).compute().ravel().tolist() == [4, 3, 1]
    kept = count_map(tiles, watershed=True, seed_depth_px=6)
    assert kept.compute().ravel().tolist() == [2, 2, 1]


@pytest.mark.parametrize("tile", TILE_SIZES)
def test_exact_strategies_equal_the_whole_image_count(nuclei, tile):
    image = da.from_array(nuclei.image, chunks=tile)
    whole = scipy_count(nuclei.image)
    assert int(count_tiled(image, "global")) == whole == nuclei.count
    assert int(count_tiled(image, "centroid")) == whole
    assert int(count_tiled(image, "centroid", depth=33)) == whole


@pytest.mark.parametrize("tile", TILE_SIZES)
def test_naive_over_counts_and_matches_tiles_counted_by_hand(nuclei, tile):
    image = da.from_array(nuclei.image, chunks=tile)
    per_tile = np.array(
        [[scipy_count(part) for part in row] for row in tiles_by_hand(nuclei.image, tile)]
    )
    tile_map = count_map(image)
    np.testing.assert_array_equal(tile_map.compute(), per_tile)
    naive = int(count_tiled(image, "naive"))
    assert naive == per_tile.sum() > nuclei.count


@pytest.mark.parametrize("tile", TILE_SIZES)
def test_edge_half_is_the_mean_with_and_without_cut_objects(nuclei, tile):
    image = da.from_array(nuclei.image, chunks=tile)
    with_cut, without_cut = counts_with_and_without_cut(nuclei.image, tile)
    edge_half = count_tiled(image, "edge_half", compute=True)
    assert isinstance(edge_half, float)
    assert edge_half == (with_cut + without_cut) / 2
    assert without_cut < nuclei.count < with_cut


def test_count_map_repr_shows_the_true_shape():
    image = da.zeros((1000, 2000), dtype=np.uint8, chunks=(100, 100))
    tile_map = count_map(image)
    assert tile_map.shape == (10, 20)
    assert tile_map.chunks == ((1,) * 10, (1,) * 20)
    assert tile_map.dtype == np.int64
    assert "(10, 20)" in repr(tile_map)
    assert int(tile_map.sum()) == 0


def test_centroid_on_a_tile_boundary_is_counted_once():
    image = np.zeros((200, 200), dtype=np.uint8)
    image[99:102, 99:102] = 255  # centroid (100, 100): the corner of four cores
    image[20:24, 49:52] = 255  # centroid (21.5, 50): on a vertical core boundary
    image[150:153, 150:153] = 255  # inside one tile
    for depth in (3, 5, 50):
        counted = count_tiled(image, "centroid", depth=depth, chunks=50, compute=True)
        assert counted == ndi.label(image > NUCLEI_THRESHOLD)[1] == 3
    assert count_tiled(image, "naive", chunks=50, compute=True) == 3 + 3 + 1


def test_centroid_merges_tiles_smaller_than_depth():
    nuclei = nuclei_image((300, 330), seed=5)
    # 330 = 3 * 100 + 30: the last 30-px column of tiles is thinner than the depth.
    counted = count_tiled(nuclei.image, "centroid", depth=34, chunks=100, compute=True)
    assert counted == nuclei.count
    # Deeper than the image is tall: one tile along that axis.
    strip = nuclei_image((60, 400), seed=6)
    counted = count_tiled(strip.image, "centroid", depth=70, chunks=(20, 100), compute=True)
    assert counted == strip.count


def test_count_tiled_is_lazy_by_default():
    nuclei = nuclei_image((200, 300), seed=0)
    lazy = count_tiled(nuclei.image, "global", chunks=100)
    assert isinstance(lazy, da.Array) and lazy.shape == ()
    assert int(lazy) == nuclei.count


def test_compare_strategies_table(nuclei):
    chunk_sizes = [100, (90, 150)]
    table = compare_strategies(nuclei.image, chunk_sizes=chunk_sizes, truth=nuclei.count)
    whole = scipy_count(nuclei.image)
    # Every row against scipy on the whole image or on tiles cut out by hand.
    expected, n_tiles = {}, {}
    for tile in chunk_sizes:
        with_cut, without_cut = counts_with_and_without_cut(nuclei.image, tile)
        expected[tile, "naive"] = with_cut
        expected[tile, "edge_half"] = (with_cut + without_cut) / 2
        expected[tile, "centroid"] = expected[tile, "global"] = whole
        n_tiles[tile] = sum(len(row) for row in tiles_by_hand(nuclei.image, tile))
    # By default all four strategies are compared, once per tile size.
    rows = list(zip(table.chunk_size, table.strategy, strict=True))
    assert sorted(rows, key=str) == sorted(expected, key=str)
    assert table["count"].tolist() == [expected[row] for row in rows]
    assert table.n_tiles.tolist() == [n_tiles[tile] for tile, _ in rows]
    assert (table.whole_image_count == whole).all()
    np.testing.assert_array_equal(table.error, table["count"] - whole)
    np.testing.assert_allclose(table.relative_error, (table["count"] - whole) / whole)
    np.testing.assert_array_equal(table.error_vs_truth, table["count"] - nuclei.count)
    assert (table.truth == nuclei.count).all()


def test_compare_strategies_without_truth_and_with_a_known_count():
    nuclei = nuclei_image((200, 300), seed=1)
    table = compare_strategies(
        da.from_array(nuclei.image, chunks=50),
        chunk_sizes=[100],
        strategies=["global"],
        whole_image_count=nuclei.count,
    )
    assert "truth" not in table.columns
    assert table["count"].tolist() == [nuclei.count]


def test_invalid_arguments():
    image = np.zeros((100, 100), dtype=np.uint8)
    with pytest.raises(ValueError, match="strategy"):
        count_tiled(image, "median", chunks=50)
    with pytest.raises(ValueError, match="strateg"):
        compare_strategies(image, chunk_sizes=[50], strategies=["naive", "guess"])
    with pytest.raises(ValueError, match="depth"):
        count_tiled(image, "centroid", depth=-1, chunks=50)
    with pytest.raises(TypeError, match="image"):
        count_tiled([[0, 1]], "naive")
