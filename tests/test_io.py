"""Tests of nima_lessons.io: lazy (T, C, Z, Y, X) reading of TIFF and zarr sources."""

from __future__ import annotations

import collections
import pickle
import warnings

import dask
import numpy as np
import pytest
import tifffile
import zarr

from nima_lessons import io
from nima_lessons.course import readers
from nima_lessons.course.readers import imread_dask, imread_dask_image, lazy_imread
from nima_lessons.io import read_image

with warnings.catch_warnings():
    # ome-zarr builds a deprecated default argument when its writer is imported.
    warnings.simplefilter("ignore", DeprecationWarning)
    from ome_zarr.writer import write_image

N_T, N_C, N_Z, SHAPE = 3, 2, 4, (6, 7)


def write_folder(folder, n_t=N_T, n_c=N_C, n_z=N_Z, shape=SHAPE, seed=0, dtype=np.uint16):
    """Write t{t:04d}_c{c}.tif files and return the (T, C, Z, Y, X) truth."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 60000, (n_t, n_c, n_z, *shape)).astype(dtype)
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n_t):
        for c in range(n_c):
            tifffile.imwrite(folder / f"t{t:04d}_c{c}.tif", truth[t, c], photometric="minisblack")
    return truth


@pytest.fixture
def count_reads(monkeypatch):
    """Count the calls of each low-level reader, keyed by their arguments."""
    counts = collections.Counter()

    def counting(reader):
        def wrapped(*args):
            counts[(reader.__name__, *map(str, args[:2]))] += 1
            return reader(*args)

        return wrapped

    for name in ("_read_tiff_page", "_read_zarr_block", "_read_whole_tiff"):
        monkeypatch.setattr(io, name, counting(getattr(io, name)))
    monkeypatch.setattr(readers, "_read_whole_tiff", io._read_whole_tiff)
    return counts


def refuse_to_compute(*args, **kwargs):
    raise AssertionError("something was computed while the graph was built")


# ---------------------------------------------------------------- TIFF folder / pattern


def test_folder_reads_as_tczyx_with_plane_chunks(tmp_path):
    truth = write_folder(tmp_path / "lapse")
    im = read_image(tmp_path / "lapse")
    assert im.dims == ("T", "C", "Z", "Y", "X")
    assert im.shape == truth.shape and im.dtype == truth.dtype
    assert im.chunks == ((1,) * N_T, (1,) * N_C, (1,) * N_Z, (SHAPE[0],), (SHAPE[1],))
    assert im.C.values.tolist() == ["0", "1"]
    assert im["T"].values.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(im.values, truth)


def test_building_reads_no_pixel_and_each_plane_is_read_once(tmp_path, count_reads):
    truth = write_folder(tmp_path / "lapse")
    with dask.config.set(scheduler=refuse_to_compute):
        im = read_image(tmp_path / "lapse")
    assert not count_reads
    plane = im.isel(T=2, C=1, Z=3).values
    np.testing.assert_array_equal(plane, truth[2, 1, 3])
    assert sum(count_reads.values()) == 1
    count_reads.clear()
    im.compute(scheduler="threads")
    assert sum(count_reads.values()) == N_T * N_C * N_Z
    assert set(count_reads.values()) == {1}


def test_sliced_planes_read_only_what_they_need(tmp_path, count_reads):
    truth = write_folder(tmp_path / "lapse")
    data = read_image(tmp_path / "lapse").data
    np.testing.assert_array_equal(data[1, :, 2, 3:5, ::-2].compute(), truth[1, :, 2, 3:5, ::-2])
    assert sum(count_reads.values()) == N_C
    np.testing.assert_array_equal(data[..., 0].compute(), truth[..., 0])


def test_a_time_point_reads_only_its_planes(tmp_path, count_reads):
    write_folder(tmp_path / "lapse")
    read_image(tmp_path / "lapse").isel(T=1).compute()
    assert sum(count_reads.values()) == N_C * N_Z
    assert all("t0001" in key[1] for key in count_reads)


def test_pattern_natural_order_and_2d_files(tmp_path):
    rng = np.random.default_rng(1)
    planes = {t: rng.integers(0, 255, SHAPE).astype(np.uint8) for t in (1, 2, 10)}
    for t, plane in planes.items():
        tifffile.imwrite(tmp_path / f"cell_t{t}_c0.tif", plane)
    tifffile.imwrite(tmp_path / "notes_t1_c0.tif", planes[1])  # not matched
    im = read_image(str(tmp_path / "cell_*.tif"))
    assert im.shape == (3, 1, 1, *SHAPE)
    np.testing.assert_array_equal(im.values[:, 0, 0], np.stack([planes[t] for t in (1, 2, 10)]))


def test_files_without_time_tokens_are_time_points_in_natural_order(tmp_path):
    frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    for index, name in enumerate(["frame2", "frame10", "frame100"]):
        tifffile.imwrite(tmp_path / f"{name}.tif", frames[index])
    np.testing.assert_array_equal(read_image(tmp_path).values[:, 0, 0], frames)


def test_synthetic_timelapse_folder(tmp_path):
    from nima_lessons.course.synthetic import write_tiff_timelapse

    folder = write_tiff_timelapse(
        tmp_path / "lapse", n_t=2, n_c=2, n_z=3, shape=(48, 48), progress=False
    )
    im = read_image(folder)
    assert im.shape == (2, 2, 3, 48, 48)
    expected = tifffile.imread(folder / "t0001_c0.tif")
    np.testing.assert_array_equal(im.isel(T=1, C=0).values, expected)


def test_channel_selection_and_renaming(tmp_path):
    truth = write_folder(tmp_path / "lapse")
    im = read_image(tmp_path / "lapse", channels=["1"])
    np.testing.assert_array_equal(im.values[:, 0], truth[:, 1])
    renamed = read_image(tmp_path / "lapse", channels={"1": "C", "0": "G"})
    assert renamed.C.values.tolist() == ["C", "G"]
    np.testing.assert_array_equal(renamed.sel(C="G").values, truth[:, 0])


def test_source_survives_pickling(tmp_path):
    truth = write_folder(tmp_path / "lapse")
    im = read_image(tmp_path / "lapse")
    again = pickle.loads(pickle.dumps(im.data))
    np.testing.assert_array_equal(again.compute(), truth)


# ---------------------------------------------------------------- bad input


def test_pattern_matching_nothing_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "missing_*.tif")
    with pytest.raises(FileNotFoundError, match="missing_"):
        read_image(pattern)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_image(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        read_image(tmp_path / "empty")


def test_mismatched_shapes_name_the_file_and_both_shapes(tmp_path, count_reads):
    write_folder(tmp_path, n_t=3, n_c=1)
    tifffile.imwrite(
        tmp_path / "t0002_c0.tif", np.zeros((N_Z, 5, 7), np.uint16), photometric="minisblack"
    )
    with pytest.raises(ValueError, match=r"t0002_c0\.tif.*\(4, 5, 7\).*\(4, 6, 7\)"):
        read_image(tmp_path)
    assert not count_reads  # found from the headers alone


def test_mismatched_dtypes_are_refused(tmp_path):
    write_folder(tmp_path, n_t=2, n_c=1)
    tifffile.imwrite(
        tmp_path / "t0001_c0.tif", np.zeros((N_Z, *SHAPE), np.float32), photometric="minisblack"
    )
    with pytest.raises(ValueError, match=r"t0001_c0\.tif.*float32.*uint16"):
        read_image(tmp_path)


def test_corrupt_file_is_named(tmp_path):
    write_folder(tmp_path, n_t=2, n_c=1)
    (tmp_path / "t0001_c0.tif").write_bytes(b"this is not a TIFF file at all")
    with pytest.raises(ValueError, match=r"t0001_c0\.tif"):
        read_image(tmp_path)
    with pytest.raises(ValueError, match=r"t0001_c0\.tif"):
        read_image(tmp_path / "t0001_c0.tif")


def test_unknown_channel_lists_the_available_ones(tmp_path):
    write_folder(tmp_path)
    with pytest.raises(ValueError, match=r"\['G'\].*\['0', '1'\]"):
        read_image(tmp_path, channels=["G"])


def test_missing_time_channel_file_is_named(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "t0001_c1.tif").unlink()
    with pytest.raises(ValueError, match="time 1, channel 1"):
        read_image(tmp_path)


def test_unsupported_source(tmp_path):
    (tmp_path / "image.png").write_bytes(b"")
    with pytest.raises(ValueError, match="image.png"):
        read_image(tmp_path / "image.png")
    with pytest.raises(TypeError, match="source"):
        read_image(42)


# ---------------------------------------------------------------- multi-dimensional TIFF


def test_imagej_hyperstack_axes_from_metadata(tmp_path, count_reads):
    rng = np.random.default_rng(2)
    tzcyx = rng.integers(0, 1000, (2, 3, 2, *SHAPE)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", tzcyx, imagej=True, metadata={"axes": "TZCYX"})
    im = read_image(tmp_path / "stack.tif")
    assert im.shape == (2, 2, 3, *SHAPE)
    assert not count_reads
    np.testing.assert_array_equal(im.isel(T=1, C=0, Z=2).values, tzcyx[1, 2, 0])
    assert sum(count_reads.values()) == 1
    np.testing.assert_array_equal(im.values, tzcyx.transpose(0, 2, 1, 3, 4))


def test_ome_tiff_channel_names(tmp_path):
    czyx = np.random.default_rng(3).random((2, 3, *SHAPE)).astype(np.float32)
    tifffile.imwrite(
        tmp_path / "image.ome.tif", czyx, ome=True,
        metadata={"axes": "CZYX", "Channel": {"Name": ["G", "C"]}},
    )  # fmt: skip
    im = read_image(tmp_path / "image.ome.tif")
    assert im.C.values.tolist() == ["G", "C"] and im.sizes["T"] == 1
    np.testing.assert_array_equal(im.values[0], czyx)


def test_rgb_samples_become_channels(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 255, (*SHAPE, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    im = read_image(tmp_path / "rgb.tif")
    assert im.shape == (1, 3, 1, *SHAPE)
    np.testing.assert_array_equal(im.values[0, :, 0], rgb.transpose(2, 0, 1))


# ---------------------------------------------------------------- zarr / OME-Zarr


def test_ome_zarr_axes_and_channel_names(tmp_path, count_reads):
    tczyx = np.random.default_rng(5).integers(0, 900, (2, 3, 1, 16, 18)).astype(np.uint16)
    root = zarr.open_group(str(tmp_path / "image.zarr"), mode="w")
    write_image(tczyx, group=root, axes="tczyx", scale_factors=None)
    # Channel names as the NGFF omero block spells them.
    attrs = root.attrs.asdict()
    attrs["ome"]["omero"] = {"channels": [{"label": name} for name in ("G", "R", "C")]}
    root.attrs.put(attrs)
    im = read_image(tmp_path / "image.zarr")
    assert im.C.values.tolist() == ["G", "R", "C"]
    assert im.chunks == ((1, 1), (1, 1, 1), (1,), (16,), (18,))
    assert not count_reads
    np.testing.assert_array_equal(im.sel(C="R").values, tczyx[:, 1])
    assert sum(count_reads.values()) == 2


def test_ome_zarr_without_time_and_z(tmp_path):
    cyx = np.random.default_rng(6).random((2, 16, 16))
    root = zarr.open_group(str(tmp_path / "cyx.zarr"), mode="w")
    write_image(cyx, group=root, axes="cyx", scale_factors=None)
    im = read_image(tmp_path / "cyx.zarr")
    assert im.shape == (1, 2, 1, 16, 16)
    np.testing.assert_array_equal(im.values[0, :, 0], cyx)


def test_plain_zarr_array_with_dimension_names(tmp_path):
    zyx = np.arange(2 * 5 * 6, dtype=np.int32).reshape(2, 5, 6)
    array = zarr.create_array(
        str(tmp_path / "plain.zarr"), shape=zyx.shape, dtype=zyx.dtype, chunks=(1, 5, 3),
        dimension_names=("z", "y", "x"),
    )  # fmt: skip
    array[:] = zyx
    im = read_image(tmp_path / "plain.zarr")
    assert im.shape == (1, 1, 2, 5, 6)
    np.testing.assert_array_equal(im.values[0, 0], zyx)


def test_zarr_group_without_multiscales_lists_its_arrays(tmp_path):
    root = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    root.create_array("raw", shape=(4, 4), dtype="u1")
    with pytest.raises(ValueError, match="raw"):
        read_image(tmp_path / "group.zarr")


# ---------------------------------------------------------------- classic constructions


def test_lazy_imread_reads_one_file_per_frame(tmp_path, count_reads):
    truth = write_folder(tmp_path, n_c=1)
    with dask.config.set(scheduler=refuse_to_compute):
        stack = lazy_imread(tmp_path / "*.tif")
    assert stack.shape == (N_T, N_Z, *SHAPE) and stack.chunksize == (1, N_Z, *SHAPE)
    np.testing.assert_array_equal(stack[1].compute(), truth[1, 0])
    assert list(count_reads) == [("_read_whole_tiff", str(tmp_path / "t0001_c0.tif"))]
    assert sum(count_reads.values()) == 1


def test_lazy_imread_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        lazy_imread(tmp_path / "nothing*.tif")
    write_folder(tmp_path, n_c=1)
    tifffile.imwrite(tmp_path / "t0009_c0.tif", np.zeros(SHAPE, np.uint16))
    with pytest.raises(ValueError, match=r"t0009_c0\.tif.*\(6, 7\)"):
        lazy_imread(tmp_path / "*.tif")


# dask-image reads through pims, which still calls skimage.io's plugin layer.
@pytest.mark.filterwarnings("ignore:The plugin infrastructure:FutureWarning")
def test_dask_image_and_dask_imread_agree(tmp_path):
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 255, (3, *SHAPE)).astype(np.uint8)
    for t, frame in enumerate(frames):
        tifffile.imwrite(tmp_path / f"t{t}.tif", frame)
    np.testing.assert_array_equal(imread_dask_image(tmp_path / "t*.tif").compute(), frames)
    np.testing.assert_array_equal(imread_dask(tmp_path / "t*.tif").compute(), frames)
    with pytest.raises(FileNotFoundError):
        imread_dask_image(tmp_path / "x*.tif")
