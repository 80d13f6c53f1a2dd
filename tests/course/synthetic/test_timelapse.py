"""Tests of the TIFF-folder time-lapse: files, metadata, round trip and motion."""

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from nima_lessons.course.synthetic import timelapse_array, timelapse_scene, write_tiff_timelapse

SIZES = {"n_t": 3, "n_c": 2, "n_z": 4, "shape": (64, 80), "seed": 2}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiff_timelapse(tmp_path_factory.mktemp("tl") / "lapse", **SIZES, progress=False)


def test_file_names_sort_in_time_order(folder):
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"t{t:04d}_c{c}.tif" for t in range(3) for c in range(2)]


def test_round_trip_equals_in_memory_array(folder):
    expected = timelapse_array(**SIZES)
    assert expected.shape == (3, 2, 4, 64, 80) and expected.dtype == np.uint16
    for t in range(3):
        for c in range(2):
            with tifffile.TiffFile(folder / f"t{t:04d}_c{c}.tif") as tif:
                assert tif.series[0].axes == "ZYX"
                volume = tif.asarray()
            assert volume.dtype == np.uint16
            np.testing.assert_array_equal(volume, expected[t, c])


def test_nuclei_move_between_time_points():
    scene = timelapse_scene(**SIZES)
    frames = timelapse_array(**SIZES)
    assert not np.allclose(scene.centres(0), scene.centres(2))
    # brightest blob centroid of the projection follows the scene's positions
    first = frames[0, 0].max(axis=0) > 600
    last = frames[2, 0].max(axis=0) > 600
    assert ndimage.label(first)[1] >= 1 and not np.array_equal(first, last)


def test_centres_stay_inside_the_image():
    scene = timelapse_scene(n_t=500, n_c=1, n_z=3, shape=(60, 90), seed=1)
    for t in (0, 17, 250, 499):
        centres = scene.centres(t)
        assert (centres[:, 1] >= 0).all() and (centres[:, 1] <= 59).all()
        assert (centres[:, 2] >= 0).all() and (centres[:, 2] <= 89).all()


def test_refuses_to_overwrite(folder):
    with pytest.raises(FileExistsError, match="lapse"):
        write_tiff_timelapse(folder, **SIZES, progress=False)
    write_tiff_timelapse(folder, **{**SIZES, "n_t": 1}, overwrite=True, progress=False)
    assert len(list(folder.iterdir())) == 2
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_t": 0}, "n_t"), ({"n_c": -1}, "n_c"), ({"n_z": 0}, "n_z"),
     ({"shape": (64,)}, "shape"), ({"shape": (10, 64)}, "too small")],
)  # fmt: skip
def test_bad_arguments_raise_and_write_nothing(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_tiff_timelapse(tmp_path / "out", **kwargs, progress=False)
    assert not list(tmp_path.iterdir())


def test_tiff_folder_of_planes_reads_back_with_tifffile_and_read_image(tmp_path):
    from nima_lessons.course.synthetic import write_tiff_folder
    from nima_lessons.io import read_image

    planes = np.random.default_rng(0).integers(0, 4000, (2, 3, 16, 24)).astype(np.uint16)
    folder = write_tiff_folder(tmp_path / "planes", planes, progress=False)
    with tifffile.TiffFile(folder / "t0001_c2.tif") as tif:
        assert tif.series[0].axes == "YX"
        np.testing.assert_array_equal(tif.asarray(), planes[1, 2])
    np.testing.assert_array_equal(read_image(folder).values[:, :, 0], planes)
    with pytest.raises(FileExistsError):
        write_tiff_folder(folder, planes, progress=False)
    with pytest.raises(ValueError, match=r"\(T, C, Y, X\)"):
        write_tiff_folder(tmp_path / "flat", planes[0], progress=False)
    with pytest.raises(ValueError, match="n_t and n_c"):
        write_tiff_folder(tmp_path / "lazy", lambda t, c: planes[t, c], progress=False)
