"""Tests of the ratiometric time-lapse against its ground truth."""

import re

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from scipy import ndimage
from skimage.filters import threshold_otsu

from nima_lessons.course.synthetic import (
    max_cells,
    open_ratiometric,
    ratiometric_scene,
    ratiometric_timelapse,
    write_ratiometric,
)


@pytest.fixture(scope="module")
def data():
    return ratiometric_timelapse(n_t=3, n_z=2, shape=(200, 240), n_cells=12, seed=5)


def _corrected(data):
    """Dark- and flat-corrected image; xarray pairs the frames with the image by channel name."""
    corrected = (data.image.astype(np.float64) - data.dark) / data.flat
    assert corrected.dims == data.image.dims and corrected.sizes == data.image.sizes
    return corrected


def _plane(corrected, t, channel):
    """The (Z, Y, X) values of one time point and one named channel."""
    return corrected.sel(T=t, C=channel).values


def test_layout_and_coordinates(data):
    assert data.image.dims == ("T", "C", "Z", "Y", "X")
    assert data.image.shape == (3, 3, 2, 200, 240)
    assert data.image.dtype == np.uint16
    assert list(data.image.C.values) == ["G", "R", "C"]
    assert data.image.attrs["ratio"] == "G/C"
    assert data.dark.dims == data.flat.dims == ("C", "Y", "X")
    assert list(data.dark.C.values) == list(data.flat.C.values) == ["G", "R", "C"]
    assert data.labels.dims == ("Z", "Y", "X") and data.labels.dtype == np.int32
    assert list(data.truth.columns[:3]) == ["T", "label", "ratio"]
    assert len(data.truth) == 3 * 12


def test_flat_is_vignetting_with_mean_one(data):
    flat = data.flat.values
    np.testing.assert_allclose(flat.mean(axis=(1, 2)), 1.0, rtol=1e-5)
    centre = flat[:, 90:110, 110:130].mean()
    corners = flat[:, :10, :10].mean()
    assert centre > corners * 1.2


def test_cells_have_realistic_size_and_do_not_touch(data):
    labels = data.labels.values[0]
    assert labels.max() == 12
    assert ndimage.label(labels > 0)[1] == 12
    for found in ndimage.find_objects(labels):
        extent = max(s.stop - s.start for s in found)
        assert 15 <= extent <= 41
    grown = ndimage.grey_dilation(labels, size=(3, 3))
    assert not ((grown != labels) & (labels > 0)).any()


def test_measured_ratio_of_means_matches_truth(data):
    corrected = _corrected(data)
    labels = data.labels.values
    index = np.arange(1, labels.max() + 1)
    for t in range(data.image.sizes["T"]):
        numerator = _plane(corrected, t, "G") - data.background["G"]
        denominator = _plane(corrected, t, "C") - data.background["C"]
        measured = ndimage.mean(numerator, labels, index)
        measured /= ndimage.mean(denominator, labels, index)
        truth = data.truth.loc[data.truth["T"] == t].sort_values("label")
        np.testing.assert_array_equal(truth["label"].values, index)
        np.testing.assert_allclose(measured, truth["ratio"].values, rtol=0.01)


def test_truth_signal_matches_dataset(data):
    corrected = _corrected(data)
    labels = data.labels.values
    index = np.arange(1, labels.max() + 1)
    for t in range(data.image.sizes["T"]):
        truth = data.truth.loc[data.truth["T"] == t]
        # every channel of the image has the truth column of its name
        for name in data.image.C.values:
            means = ndimage.mean(_plane(corrected, t, name), labels, index) - data.background[name]
            np.testing.assert_allclose(means, truth[name].values, rtol=0.01)
        np.testing.assert_allclose(truth["ratio"], truth["G"] / truth["C"])


def test_standard_pipeline_recovers_every_cell_and_ratio(data):
    """Otsu segmentation with an estimated background finds each cell, ratios within 2 %."""
    corrected = _corrected(data)
    for t in range(data.image.sizes["T"]):
        plane_g, plane_c = _plane(corrected, t, "G")[0], _plane(corrected, t, "C")[0]
        found, n_found = ndimage.label(plane_c > threshold_otsu(plane_c))
        # drop specks of background noise, as any pipeline does (minimum size)
        areas = ndimage.sum_labels(np.ones_like(plane_c), found, np.arange(n_found + 1))
        areas[0] = 0
        mask = (areas >= 50)[found]
        found, n_found = ndimage.label(mask)
        assert n_found == 12
        background = ~ndimage.binary_dilation(mask, iterations=3)
        level_g = np.median(plane_g[background])
        level_c = np.median(plane_c[background])
        index = np.arange(1, n_found + 1)
        measured = ndimage.mean(plane_g - level_g, found, index) / ndimage.mean(
            plane_c - level_c, found, index
        )
        # match each found object to its true cell by its centre pixel
        centres = ndimage.center_of_mass(mask, found, index)
        true_label = [data.labels.values[0][round(y), round(x)] for y, x in centres]
        truth = data.truth.set_index(["T", "label"])["ratio"]
        expected = np.array([truth[(t, label)] for label in true_label])
        np.testing.assert_allclose(measured, expected, rtol=0.02)


def test_ratio_changes_over_time_and_between_cells(data):
    table = data.truth.pivot(index="T", columns="label", values="ratio")
    assert table.std(axis=1).min() > 0.05
    assert (table.iloc[-1] != table.iloc[0]).all()


def test_planes_are_reproducible_and_independent_of_order():
    first = ratiometric_timelapse(n_t=2, shape=(100, 100), n_cells=3, seed=11)
    scene = ratiometric_scene(n_t=2, shape=(100, 100), n_cells=3, seed=11)
    np.testing.assert_array_equal(scene.plane(1, 2, 0), first.image.values[1, 2, 0])
    again = ratiometric_timelapse(n_t=2, shape=(100, 100), n_cells=3, seed=11)
    np.testing.assert_array_equal(first.image.values, again.image.values)
    other = ratiometric_timelapse(n_t=2, shape=(100, 100), n_cells=3, seed=12)
    assert not np.array_equal(first.image.values, other.image.values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_t": 0}, "n_t"),
        ({"n_z": -1}, "n_z"),
        ({"shape": (0, 100)}, r"shape\[0\]"),
        ({"n_cells": 0}, "n_cells"),
        ({"shape": (100, 100), "n_cells": 5}, "n_cells=5"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ratiometric_timelapse(**kwargs)


def test_max_cells():
    assert max_cells((100, 100)) == 4


def test_written_folder_round_trips(tmp_path):
    kwargs = {"n_t": 2, "n_z": 2, "shape": (96, 120), "n_cells": 4, "seed": 8}
    folder = write_ratiometric(tmp_path / "ratio", **kwargs, progress=False)
    expected = ratiometric_timelapse(**kwargs)
    found = open_ratiometric(folder)
    assert found.image.dims == expected.image.dims
    assert list(found.image.C.values) == ["G", "R", "C"]
    assert found.image.data.chunksize == (1, 1, 1, 96, 120)
    np.testing.assert_array_equal(found.image.values, expected.image.values)
    np.testing.assert_array_equal(found.dark.values, expected.dark.values)
    np.testing.assert_array_equal(found.flat.values, expected.flat.values)
    np.testing.assert_array_equal(found.labels.values, expected.labels.values)
    pd.testing.assert_frame_equal(found.truth, expected.truth, check_dtype=False)
    assert found.background == expected.background


def test_written_files_read_with_their_own_tools(tmp_path):
    """The folder as the docstring lays it out, each file read by zarr, tifffile or pandas."""
    kwargs = {"n_t": 2, "n_z": 2, "shape": (96, 120), "n_cells": 4, "seed": 8}
    folder = write_ratiometric(tmp_path / "ratio", **kwargs, progress=False)
    expected = ratiometric_timelapse(**kwargs)
    names = ["dark.tif", "flat.tif", "image.zarr", "labels.tif", "truth.csv"]
    assert sorted(p.name for p in folder.iterdir()) == names
    root = zarr.open_group(str(folder / "image.zarr"), mode="r")
    multiscales = root.attrs["multiscales"][0]
    assert [axis["name"] for axis in multiscales["axes"]] == ["t", "c", "z", "y", "x"]
    assert [c["label"] for c in root.attrs["omero"]["channels"]] == ["G", "R", "C"]
    image = root[multiscales["datasets"][0]["path"]]
    assert image.chunks == (1, 1, 1, 96, 120)
    np.testing.assert_array_equal(image[:], expected.image.values)
    assert root.attrs["nima_lessons"]["background"] == expected.background
    for name, frames in (("dark", expected.dark), ("flat", expected.flat)):
        with tifffile.TiffFile(folder / f"{name}.tif") as tif:
            assert tif.series[0].axes == "CYX"
            np.testing.assert_array_equal(tif.asarray(), frames.values)
    with tifffile.TiffFile(folder / "labels.tif") as tif:
        assert tif.series[0].axes == "ZYX"
        np.testing.assert_array_equal(tif.asarray(), expected.labels.values)
    truth = pd.read_csv(folder / "truth.csv")
    assert list(truth.columns) == ["T", "label", "ratio", "G", "R", "C"]
    pd.testing.assert_frame_equal(truth, expected.truth, check_dtype=False)


def test_open_names_the_missing_file(tmp_path):
    folder = write_ratiometric(tmp_path / "r", n_t=1, shape=(64, 64), n_cells=1, progress=False)
    for path in sorted(folder.iterdir()):
        aside = tmp_path / path.name
        path.rename(aside)
        with pytest.raises(FileNotFoundError, match=f"missing.*{re.escape(path.name)}"):
            open_ratiometric(folder)
        aside.rename(path)
    assert open_ratiometric(folder).image.shape == (1, 3, 1, 64, 64)


def test_write_refuses_to_overwrite(tmp_path):
    folder = write_ratiometric(tmp_path / "r", n_t=1, shape=(64, 64), n_cells=1, progress=False)
    with pytest.raises(FileExistsError, match="r"):
        write_ratiometric(folder, n_t=1, shape=(64, 64), n_cells=1, progress=False)
    with pytest.raises(ValueError, match="n_cells"):
        write_ratiometric(tmp_path / "s", shape=(64, 64), n_cells=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    with pytest.raises(FileNotFoundError, match="missing"):
        open_ratiometric(tmp_path / "nothing")
