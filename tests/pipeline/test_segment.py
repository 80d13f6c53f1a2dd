"""Segmentation against the same steps done with skimage / scipy on whole planes."""

import dask
import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.stats
import skimage.filters
import skimage.measure
import skimage.morphology
import xarray as xr

from nima_lessons.pipeline import segment, segment_plane

DIMS = ("T", "C", "Z", "Y", "X")


def blobs_image(seed, shape=(2, 2, 2, 64, 64)):
    """Bright discs of various sizes (some with holes, some tiny) on noise."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(1.0, 20.0, shape)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    for _ in range(8):
        cy, cx = rng.uniform(6, shape[-2] - 6, 2)
        radius = rng.uniform(1.0, 7.0)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        data[..., disc] += rng.uniform(100, 300, (*shape[:3], 1))
    data[..., 30:33, 40:43] = 2.0  # a hole when it falls inside a disc
    return xr.DataArray(data, dims=DIMS, coords={"C": ["G", "C"]})


def reference_labels(planes, method, min_size):
    combined = scipy.stats.gmean(planes, axis=0)
    threshold = {
        "yen": skimage.filters.threshold_yen,
        "li": skimage.filters.threshold_li,
        "otsu": skimage.filters.threshold_otsu,
    }[method](combined)
    objects = skimage.measure.label(combined > threshold, connectivity=1)
    sizes = np.bincount(objects.ravel())
    kept = np.isin(objects, np.flatnonzero(sizes >= min_size)) & (objects > 0)
    return skimage.measure.label(ndi.binary_fill_holes(kept), connectivity=1)


@pytest.mark.parametrize("method", ["yen", "li", "otsu"])
def test_labels_equal_the_whole_plane_reference(method):
    im = blobs_image(0)
    lazy = segment(im.chunk({"T": 1, "C": 1, "Z": 1}), method, min_size=12)
    assert lazy.dims == ("T", "Z", "Y", "X") and lazy.dtype == np.int32
    assert lazy.chunks == ((1, 1), (1, 1), (64,), (64,))
    result = lazy.values
    for t in range(2):
        for z in range(2):
            expected = reference_labels(im.values[t, :, z], method, 12)
            np.testing.assert_array_equal(result[t, z], expected)


def test_thresholds_are_not_computed_while_building():
    im = blobs_image(1).chunk({"T": 1, "C": 1, "Z": 1})

    def refuse(*args, **kwargs):
        raise AssertionError("computed while building")

    with dask.config.set(scheduler=refuse):
        segment(im, "yen", watershed=True)


def test_constant_plane_gives_an_empty_mask():
    im = xr.DataArray(np.full((1, 2, 1, 16, 16), 5.0), dims=DIMS, coords={"C": ["G", "C"]})
    for method in ("yen", "li", "otsu"):
        assert int(segment(im, method).max()) == 0


def test_watershed_splits_touching_cells():
    yy, xx = np.mgrid[:40, :60]
    mask = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 37) ** 2 <= 100)
    plane = np.where(mask, 200.0, 10.0)[None]
    assert segment_plane(plane, "otsu", min_size=5).max() == 1
    split = segment_plane(plane, "otsu", min_size=5, watershed=True)
    assert split.max() == 2
    assert ((split > 0) == mask).all()
    left, right = split[20, 12], split[20, 45]
    assert left != right and left > 0 and right > 0


def test_channel_subset_and_errors():
    im = blobs_image(2)
    one = segment(im, "otsu", channels=["C"], min_size=12).values
    expected = reference_labels(im.values[0, 1:2, 0], "otsu", 12)
    np.testing.assert_array_equal(one[0, 0], expected)
    with pytest.raises(ValueError, match=r"\['X'\].*\['G', 'C'\]"):
        segment(im, channels=["X"])
    with pytest.raises(ValueError, match="method"):
        segment(im, "triangle")
    with pytest.raises(ValueError, match="min_size"):
        segment(im, min_size=-1)


def test_closing_cleanup_equals_skimage_closing():
    im = blobs_image(3)
    result = segment(im.chunk({"T": 1, "C": 1, "Z": 1}), "yen", min_size=12, cleanup="closing")
    for t in range(2):
        for z in range(2):
            combined = scipy.stats.gmean(im.values[t, :, z], axis=0)
            mask = combined > skimage.filters.threshold_yen(combined)
            mask = skimage.morphology.remove_small_objects(mask, max_size=11)
            expected = skimage.measure.label(skimage.morphology.closing(mask), connectivity=1)
            np.testing.assert_array_equal(result.values[t, z], expected)


def moving_cells(n_t=4, shape=(40, 50)):
    """Two discs drifting right; a third appears at T=2; channels G and C."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    data = np.full((n_t, 2, 2, *shape), 5.0)
    for t in range(n_t):
        for cy, cx in ((12, 8 + 2 * t), (28, 30 + 2 * t)):
            data[t, :, :, (yy - cy) ** 2 + (xx - cx) ** 2 <= 30] = 200.0
        if t >= 2:
            data[t, :, 1, (yy - 30) ** 2 + (xx - 8) ** 2 <= 20] = 150.0  # only in Z=1
    return xr.DataArray(data, dims=DIMS, coords={"C": ["G", "C"]})


@pytest.mark.parametrize("lazy", [True, False])
def test_through_time_labels_equal_scipy_on_the_txy_volume(lazy):
    im = moving_cells()
    source = im.chunk({"T": 1, "C": 1, "Z": 1}) if lazy else im
    linked = segment(source, "otsu", min_size=5, through_time=True)
    assert linked.dims == ("T", "Z", "Y", "X") and linked.dtype == np.int32
    assert (linked.chunks is not None) == lazy
    per_plane = segment(im, "otsu", min_size=5).values
    for z in range(2):
        expected, _ = ndi.label(per_plane[:, z] > 0)  # nima's labelling of the volume
        np.testing.assert_array_equal(linked.values[:, z], expected)
    # each cell keeps its number: the same label sits on the disc at every time point
    assert {int(linked.values[t, 0, 12, 8 + 2 * t]) for t in range(4)} == {1}
    assert sorted(np.unique(linked.values[3, 1]).tolist()) == [0, 1, 2, 3]


def test_through_time_builds_without_computing():
    im = moving_cells().chunk({"T": 1, "C": 1, "Z": 1})

    def refuse(*args, **kwargs):
        raise AssertionError("computed while building")

    with dask.config.set(scheduler=refuse):
        linked = segment(im, "otsu", min_size=5, through_time=True)
    assert linked.chunks == ((1,) * 4, (1, 1), (40,), (50,))


def test_through_time_refuses_watershed_and_missing_time():
    im = moving_cells()
    with pytest.raises(ValueError, match="watershed"):
        segment(im, "otsu", watershed=True, through_time=True)
    with pytest.raises(ValueError, match="T dim"):
        segment(im.isel(T=0), "otsu", through_time=True)
    with pytest.raises(ValueError, match="cleanup"):
        segment(im, "otsu", cleanup="open")
