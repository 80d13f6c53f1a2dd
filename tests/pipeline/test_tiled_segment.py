"""Segmentation steps on tiles, against scipy and the whole-plane steps on whole planes."""

import threading

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.filters
import xarray as xr

import nima_lessons.labels
from nima_lessons.pipeline import segment
from nima_lessons.pipeline._segment import remove_small, segment_plane
from nima_lessons.pipeline._tiled_labels import fill_holes_planes, label_planes
from nima_lessons.pipeline._tiled_segment import (
    close_tiled,
    remove_small_tiled,
    tiled_segment,
)

CHUNKINGS = [
    (1, 25, 30),  # even tiles
    (1, (7, 50, 33), (1, 60, 29)),  # uneven, one tile a single pixel wide
    (2, 90, (45, 45)),  # Y whole, X split
]


def blob_masks(seed: int, shape=(90, 90), fill: float = 0.45) -> np.ndarray:
    """Two planes of irregular blobs, many crossing tile borders, some with holes."""
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.random((2, *shape)), sigma=(0, 2.5, 2.5))
    masks = smooth > np.quantile(smooth, 1 - fill)
    # Rings (holes) larger than a tile, and one touching the border (not a hole).
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for centre, radius in (((45, 45), 30), ((5, 80), 12)):
        distance = np.hypot(yy - centre[0], xx - centre[1])
        masks[0] |= (distance >= radius - 2) & (distance <= radius)
    return masks


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("connectivity", [1, 2])
def test_labels_of_every_plane_are_scipy_s(chunks, connectivity):
    masks = blob_masks(0)
    labels = label_planes(da.from_array(masks, chunks=chunks), connectivity)
    assert labels.dtype == np.int32 and labels.chunks == da.from_array(masks, chunks=chunks).chunks
    structure = ndi.generate_binary_structure(2, connectivity)
    computed = labels.compute()
    for plane, mask in zip(computed, masks, strict=True):
        np.testing.assert_array_equal(plane, ndi.label(mask, structure)[0])


def test_merges_are_computed_when_building_and_relabelling_is_tile_local(monkeypatch):
    events = []
    lock = threading.Lock()
    merge = nima_lessons.labels._merge_reports

    def recorded_merge(*args, **kwargs):
        with lock:
            events.append("merge")
        return merge(*args, **kwargs)

    def make_mask(block):
        if block.size:  # not dask's call on an empty block to learn the output type
            with lock:
                events.append("tile")
        return block > 0.5

    monkeypatch.setattr(nima_lessons.labels, "_merge_reports", recorded_merge)
    image = ndi.gaussian_filter(np.random.default_rng(1).random((60, 70)), 2)
    mask = da.from_array(image, chunks=(20, 35)).map_blocks(make_mask, dtype=bool)
    lazy = label_planes(mask, 1)
    # Building: six tiles summarized, then the merge.
    assert events == ["tile"] * 6 + ["merge"]
    events.clear()
    labels = lazy.compute(scheduler="threads")
    # Computing: every tile labelled afresh and looked up; no merge, no barrier.
    assert events == ["tile"] * 6
    np.testing.assert_array_equal(labels, ndi.label(image > 0.5)[0])


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("min_size", [0, 1, 2, 20, 60])
def test_small_objects_are_removed_as_on_whole_planes(chunks, min_size):
    masks = blob_masks(2, fill=0.3)
    tiled = remove_small_tiled(da.from_array(masks, chunks=chunks), min_size)
    expected = np.stack([remove_small(mask, min_size) for mask in masks])
    np.testing.assert_array_equal(tiled.compute(), expected)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_holes_are_filled_as_scipy_fills_them(chunks):
    for seed in range(3):
        masks = blob_masks(seed)
        filled = fill_holes_planes(da.from_array(masks, chunks=chunks)).compute()
        expected = np.stack([ndi.binary_fill_holes(mask) for mask in masks])
        assert (expected != masks).any()  # there are holes to fill
        np.testing.assert_array_equal(filled, expected)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_closing_is_the_whole_plane_closing(chunks):
    cross = ndi.generate_binary_structure(2, 1)
    for seed in range(2):
        masks = blob_masks(seed, fill=0.5)
        masks[:, ::7, ::5] ^= True  # one-pixel specks and gaps for the closing to change
        closed = close_tiled(da.from_array(masks, chunks=chunks)).compute()
        for plane, mask in zip(closed, masks, strict=True):
            dilated = ndi.grey_dilation(mask, footprint=cross, mode="reflect")
            expected = ndi.grey_erosion(dilated, footprint=cross, mode="reflect")
            assert (expected != mask).any()
            np.testing.assert_array_equal(plane, expected)


def channels_image(seed: int) -> xr.DataArray:
    """(T, C, Z, Y, X) float image of bright blobs of varying brightness on a dim background."""
    rng = np.random.default_rng(seed)
    masks = blob_masks(seed, fill=0.25)
    brightness = rng.uniform(50, 200, (2, 3, 1, 1, 1))
    data = rng.normal(10, 2, (2, 3, 1, 90, 90)) + brightness * masks[:, None, None]
    return xr.DataArray(data, dims=("T", "C", "Z", "Y", "X"))


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("method", ["yen", "li", "otsu"])
def test_segment_on_tiles_gives_the_whole_plane_labels(chunks, method):
    image = channels_image(3)
    _, y_chunks, x_chunks = chunks
    tiled = image.chunk({"T": 1, "C": 1, "Z": 1, "Y": y_chunks, "X": x_chunks})
    labels = segment(tiled, method, min_size=15)
    assert labels.dims == ("T", "Z", "Y", "X") and labels.dtype == np.int32
    assert labels.chunks[-2:] == tiled.chunks[-2:]
    computed = labels.values
    for t in range(2):
        expected = segment_plane(image.values[t, :, 0], method, min_size=15)
        assert expected.max() > 1
        np.testing.assert_array_equal(computed[t, 0], expected)


def test_closing_instead_of_hole_filling_on_tiles():
    image = channels_image(5)
    tiled = image.chunk({"T": 1, "C": 1, "Z": 1, "Y": 25, "X": 40})
    labels = tiled_segment(tiled, "li", min_size=15, cleanup="closing").values
    cross = ndi.generate_binary_structure(2, 1)
    for t in range(2):
        planes = image.values[t, :, 0]
        combined = np.prod(np.clip(planes, 0, None), axis=0) ** (1 / 3)
        mask = remove_small(combined > skimage.filters.threshold_li(combined), 15)
        closed = ndi.grey_erosion(
            ndi.grey_dilation(mask, footprint=cross, mode="reflect"),
            footprint=cross,
            mode="reflect",
        )
        np.testing.assert_array_equal(labels[t, 0], ndi.label(closed)[0])


def test_watershed_and_unknown_methods_are_refused_on_tiles():
    tiled = channels_image(4).chunk({"Y": 30})
    with pytest.raises(
        ValueError, match=r"watershed splitting .* cannot run on planes split into tiles"
    ):
        segment(tiled, "li", watershed=True)
    # On whole planes nothing changes.
    assert segment(channels_image(4), "li", watershed=True).shape == (2, 1, 90, 90)


@pytest.mark.parametrize("through_time", [False, True])
def test_segment_passes_cleanup_and_through_time_to_tiles(through_time):
    image = channels_image(5)
    tiled = image.chunk({"T": 1, "C": 1, "Z": 1, "Y": 25, "X": 40})
    options = {"min_size": 15, "cleanup": "closing", "through_time": through_time}
    on_tiles = segment(tiled, "li", **options).values
    on_planes = segment(image.chunk({"T": 1, "C": 1, "Z": 1}), "li", **options).values
    np.testing.assert_array_equal(on_tiles, on_planes)
