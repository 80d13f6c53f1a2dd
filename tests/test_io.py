"""Tests of nima_lessons.io: lazy (T, C, Z, Y, X) reading of TIFF and zarr sources.

Files are written by other tools (tifffile, scikit-image, imageio, zarr, ome-zarr) and
every read is compared with the array that was written.
"""

from __future__ import annotations

import collections
import json
import pickle
import warnings

import dask
import imageio.v3 as iio
import numpy as np
import pytest
import skimage.io
import tifffile
import xarray as xr
import zarr

from nima_lessons import io
from nima_lessons.course import readers
from nima_lessons.course.readers import imread_dask, imread_dask_image, lazy_imread
from nima_lessons.io import ome_zarr_image, read_image, select_channels

with warnings.catch_warnings():
    # ome-zarr builds a deprecated default argument when its writer is imported.
    warnings.simplefilter("ignore", DeprecationWarning)
    from ome_zarr.writer import write_image

N_T, N_C, N_Z, SHAPE = 3, 2, 4, (6, 7)


def random_array(shape, dtype=np.uint16, seed=0):
    high = 250 if np.dtype(dtype).itemsize == 1 else 60000
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


def write_folder(folder, n_t=N_T, n_c=N_C, n_z=N_Z, shape=SHAPE, seed=0, dtype=np.uint16,
                 name="t{t:04d}_c{c}.tif"):  # fmt: skip
    """Write one (Z, Y, X) file per time point and channel; return the (T, C, Z, Y, X) truth."""
    truth = random_array((n_t, n_c, n_z, *shape), dtype, seed)
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n_t):
        for c in range(n_c):
            tifffile.imwrite(folder / name.format(t=t, c=c), truth[t, c], photometric="minisblack")
    return truth


@pytest.fixture
def count_reads(monkeypatch):
    """Count the calls of each low-level reader, keyed by what they read."""
    counts = collections.Counter()

    def counting(reader):
        def wrapped(source, *args):
            counts[(reader.__name__, getattr(source, "where", str(source)), *map(str, args))] += 1
            return reader(source, *args)

        return wrapped

    for name in ("_read_tiff_page", "_read_zarr_block", "_read_whole_tiff"):
        monkeypatch.setattr(io, name, counting(getattr(io, name)))
    monkeypatch.setattr(readers, "_read_whole_tiff", io._read_whole_tiff)
    return counts


def refuse_to_compute(*args, **kwargs):
    raise AssertionError("something was computed while the graph was built")


def as_tczyx(array, axes):
    """The independent reference: numpy's own reordering of an array with named axes."""
    axes = axes.replace("S", "C")
    for dim in "TCZYX":
        if dim not in axes:
            array, axes = array[np.newaxis], dim + axes
    return np.transpose(array, [axes.index(d) for d in "TCZYX"])


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


def test_folder_of_stacks_written_by_plain_imwrite(tmp_path, count_reads):
    # tifffile.imwrite(path, stack) stores a contiguous series: read it by plane anyway.
    truth = random_array((2, 3, 5, 40, 30))
    for t in range(2):
        for c in range(3):
            tifffile.imwrite(tmp_path / f"t{t}_c{c}.tif", truth[t, c])
    im = read_image(tmp_path)
    assert im.shape == truth.shape
    np.testing.assert_array_equal(im.isel(T=1, C=2, Z=3).values, truth[1, 2, 3])
    assert sum(count_reads.values()) == 1
    np.testing.assert_array_equal(im.values, truth)


def test_folder_of_three_plane_stacks_stored_as_samples(tmp_path):
    # tifffile stores a plain (3, Y, X) stack as the samples of one page; the names
    # give the channel, so those samples are Z planes.
    truth = random_array((2, 2, 3, 10, 12), seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for t in range(2):
            for c in range(2):
                tifffile.imwrite(tmp_path / f"t{t}c{c}.tif", truth[t, c])
    np.testing.assert_array_equal(read_image(tmp_path).values, truth)


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
    np.testing.assert_array_equal(data[0, 1, [3, 0], 2].compute(), truth[0, 1, [3, 0], 2])


def test_a_time_point_reads_only_its_planes(tmp_path, count_reads):
    write_folder(tmp_path / "lapse")
    read_image(tmp_path / "lapse").isel(T=1).compute()
    assert sum(count_reads.values()) == N_C * N_Z
    assert all("t0001" in key[2] for key in count_reads)


def test_pattern_natural_order_and_2d_files(tmp_path):
    rng = np.random.default_rng(1)
    planes = {t: rng.integers(0, 255, SHAPE).astype(np.uint8) for t in (1, 2, 10)}
    for t, plane in planes.items():
        tifffile.imwrite(tmp_path / f"cell_t{t}_c0.tif", plane)
    tifffile.imwrite(tmp_path / "notes_t1_c0.tif", planes[1])  # not matched
    im = read_image(str(tmp_path / "cell_*.tif"))
    assert im.shape == (3, 1, 1, *SHAPE)
    np.testing.assert_array_equal(im.values[:, 0, 0], np.stack([planes[t] for t in (1, 2, 10)]))


@pytest.mark.parametrize("name", ["t{t}c{c}.tif", "T{t}-C{c}.tiff", "img_c{c}_t{t:03d}.tif"])
def test_tokens_with_any_separator_or_none(tmp_path, name):
    truth = random_array((3, 2, 9, 8), seed=2)
    for t in range(3):
        for c in range(2):
            tifffile.imwrite(tmp_path / name.format(t=t, c=c), truth[t, c])
    im = read_image(tmp_path)
    assert im.shape == (3, 2, 1, 9, 8) and im.C.values.tolist() == ["0", "1"]
    np.testing.assert_array_equal(im.values[:, :, 0], truth)


def test_z_tokens_build_the_z_axis_from_planes(tmp_path):
    truth = random_array((2, 1, 3, 5, 6), seed=3)
    for t in range(2):
        for z in range(3):
            tifffile.imwrite(tmp_path / f"s_t{t}_z{z:02d}.tif", truth[t, 0, z])
    im = read_image(tmp_path)
    assert im.shape == truth.shape
    np.testing.assert_array_equal(im.values, truth)


def test_names_without_tokens_are_refused_with_examples(tmp_path):
    frames = random_array((3, 4, 5), seed=4)
    for index, name in enumerate(["frame2", "frame10", "frame100"]):
        tifffile.imwrite(tmp_path / f"{name}.tif", frames[index])
    with pytest.raises(ValueError, match=r"frame10\.tif.*t<digits>.*layout") as error:
        read_image(tmp_path)
    assert "\n" not in str(error.value)
    im = read_image(tmp_path, layout=r"frame(?P<t>\d+)")
    np.testing.assert_array_equal(im.values[:, 0, 0], frames)


def test_names_missing_a_token_others_have_are_named(tmp_path):
    write_folder(tmp_path, n_t=2, n_c=1)
    tifffile.imwrite(
        tmp_path / "extra.tif", np.zeros((N_Z, *SHAPE), np.uint16), photometric="minisblack"
    )
    with pytest.raises(ValueError, match=r"extra\.tif"):
        read_image(tmp_path)


def test_layout_pattern_with_channel_words(tmp_path):
    truth = random_array((2, 2, 5, 6), seed=5)
    for t in range(2):
        for c, word in enumerate(["GFP", "RFP"]):
            tifffile.imwrite(tmp_path / f"well-{word}-{t}.tif", truth[t, c])
    im = read_image(tmp_path, layout=r"-(?P<c>[A-Z]+)-(?P<t>\d+)")
    assert im.C.values.tolist() == ["GFP", "RFP"]
    np.testing.assert_array_equal(im.values[:, :, 0], truth)
    with pytest.raises(ValueError, match="groups among t, c, z"):
        read_image(tmp_path, layout=r"(?P<time>\d+)")
    with pytest.raises(ValueError, match=r"well-GFP-0\.tif.*does not match"):
        read_image(tmp_path, layout=r"cell(?P<t>\d+)")


def test_layout_mapping_lists_files_and_positions(tmp_path):
    truth = random_array((2, 2, 5, 6), seed=6)
    names = {}
    for t in range(2):
        for c in range(2):
            name = f"acquisition {2 * t + c}.tif"
            tifffile.imwrite(tmp_path / name, truth[t, c])
            names[name] = {"t": t, "c": "GR"[c]}
    im = read_image(tmp_path, layout=names)
    assert im.C.values.tolist() == ["G", "R"]
    np.testing.assert_array_equal(im.values[:, :, 0], truth)


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


def test_select_channels_names_the_argument():
    im = xr.DataArray(np.zeros((2, 3, 3)), dims=("C", "Y", "X"), coords={"C": ["G", "C"]})
    with pytest.raises(ValueError, match=r"numerator: unknown channels \['R'\].*\['G', 'C'\]"):
        select_channels(im, ["R"], "numerator")
    assert select_channels(im, "C").C.values.tolist() == ["C"]


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


def test_truncated_file_is_named_when_computed(tmp_path):
    truth = random_array((5, 64, 64), seed=7)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, truth)
    im = read_image(path)  # headers are intact
    path.write_bytes(path.read_bytes()[: path.stat().st_size - 64 * 64 * 2])
    with pytest.raises(ValueError, match=r"cannot read TIFF file .*stack\.tif"):
        im.isel(T=4).compute()


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
    with pytest.raises(ValueError, match=r"image\.png"):
        read_image(tmp_path / "image.png")
    with pytest.raises(TypeError, match="source"):
        read_image(42)
    with pytest.raises(ValueError, match="missing_chunks"):
        read_image(tmp_path / "image.png", missing_chunks="ignore")


# ---------------------------------------------------------------- one TIFF file, many layouts


def write_with_tifffile(path, array, **kwargs):
    tifffile.imwrite(path, array, **kwargs)


def write_with_skimage(path, array):
    skimage.io.imsave(path, array, check_contrast=False)


def write_with_imageio(path, array):
    iio.imwrite(path, array)


LAYOUTS = {
    # name: (array shape, dtype, axes of the array as written, writer, writer options)
    "2d": ((20, 30), np.uint16, "YX", write_with_tifffile, {}),
    "stack default": ((5, 20, 30), np.uint16, "TYX", write_with_tifffile, {}),
    # tifffile stores (3, Y, X) as samples of one page today, as pages in future versions
    "3 channels default": ((3, 20, 30), np.uint16, None, write_with_tifffile, {}),
    "rgb interleaved": ((20, 30, 3), np.uint8, "YXC", write_with_tifffile, {}),
    "minisblack 3d": ((3, 20, 30), np.uint8, "TYX", write_with_tifffile,
                      {"photometric": "minisblack"}),
    "imagej TZCYX": ((2, 3, 2, 20, 30), np.uint16, "TZCYX", write_with_tifffile,
                     {"imagej": True, "metadata": {"axes": "TZCYX"}}),
    "ome TCZYX": ((2, 2, 3, 20, 30), np.float32, "TCZYX", write_with_tifffile,
                  {"ome": True, "metadata": {"axes": "TCZYX"}}),
    "ome CYX": ((3, 20, 30), np.uint16, "CYX", write_with_tifffile,
                {"ome": True, "metadata": {"axes": "CYX"}}),
    "tiles": ((2, 100, 90), np.uint16, "TYX", write_with_tifffile,
              {"tile": (32, 32), "photometric": "minisblack"}),
    "strips": ((2, 100, 90), np.uint16, "TYX", write_with_tifffile,
               {"rowsperstrip": 7, "photometric": "minisblack"}),
    "lzw": ((5, 20, 30), np.uint16, "TYX", write_with_tifffile, {"compression": "lzw"}),
    "zstd": ((5, 20, 30), np.uint16, "TYX", write_with_tifffile, {"compression": "zstd"}),
    "jpeg2000": ((5, 20, 30), np.uint16, "TYX", write_with_tifffile,
                 {"compression": "jpeg2000"}),
    "skimage 3 channels": ((3, 20, 30), np.uint16, None, write_with_skimage, {}),
    "skimage stack": ((6, 20, 30), np.uint16, "TYX", write_with_skimage, {}),
    "imageio 3 channels": ((3, 20, 30), np.uint16, None, write_with_imageio, {}),
    "imageio rgb": ((20, 30, 3), np.uint8, "YXC", write_with_imageio, {}),
}  # fmt: skip


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tiff_layouts_read_as_written(tmp_path, layout, count_reads):
    shape, dtype, axes, writer, options = LAYOUTS[layout]
    truth = random_array(shape, dtype, seed=len(layout))
    path = tmp_path / "image.tif"
    with warnings.catch_warnings():
        # tifffile announces its coming default for (3, Y, X); imageio notes low contrast
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        writer(path, truth, **options)
    if axes is None:  # as tifffile itself reads the file: samples (S) or pages (Q)
        axes = tifffile.TiffFile(path).series[0].axes.replace("Q", "T")
    with dask.config.set(scheduler=refuse_to_compute):
        im = read_image(path)
    assert im.data.chunksize[:3] == (1, 1, 1)
    expected = as_tczyx(truth, axes)
    assert im.shape == expected.shape and im.dtype == truth.dtype
    assert not count_reads
    np.testing.assert_array_equal(im.values, expected)
    # every stored page is read exactly once
    assert set(count_reads.values()) == {1}
    pages = int(np.prod(expected.shape[:3])) // (3 if axes in ("YXC", "YXS") else 1)
    assert sum(count_reads.values()) == pages


def test_imagej_hyperstack_reads_one_page_per_plane(tmp_path, count_reads):
    tzcyx = random_array((2, 3, 2, *SHAPE), seed=2)
    tifffile.imwrite(tmp_path / "stack.tif", tzcyx, imagej=True, metadata={"axes": "TZCYX"})
    im = read_image(tmp_path / "stack.tif")
    assert im.shape == (2, 2, 3, *SHAPE)
    np.testing.assert_array_equal(im.isel(T=1, C=0, Z=2).values, tzcyx[1, 2, 0])
    assert sum(count_reads.values()) == 1


def test_ome_tiff_channel_names(tmp_path):
    czyx = np.random.default_rng(3).random((2, 3, *SHAPE)).astype(np.float32)
    tifffile.imwrite(
        tmp_path / "image.ome.tif", czyx, ome=True,
        metadata={"axes": "CZYX", "Channel": {"Name": ["G", "C"]}},
    )  # fmt: skip
    im = read_image(tmp_path / "image.ome.tif")
    assert im.C.values.tolist() == ["G", "C"] and im.sizes["T"] == 1
    np.testing.assert_array_equal(im.values[0], czyx)


def test_folder_of_rgb_files_gives_channels_from_samples(tmp_path):
    truth = random_array((2, 10, 12, 3), np.uint8, seed=8)
    for t in range(2):
        tifffile.imwrite(tmp_path / f"t{t}.tif", truth[t], photometric="rgb")
    im = read_image(tmp_path)
    assert im.shape == (2, 3, 1, 10, 12)
    np.testing.assert_array_equal(im.values[:, :, 0], truth.transpose(0, 3, 1, 2))


def test_pyramid_reads_full_resolution(tmp_path):
    full = random_array((256, 256), np.uint8, seed=9)
    with tifffile.TiffWriter(tmp_path / "pyramid.ome.tif") as tif:
        tif.write(full, subifds=1, tile=(64, 64))
        tif.write(full[::2, ::2], subfiletype=1, tile=(64, 64))
    np.testing.assert_array_equal(read_image(tmp_path / "pyramid.ome.tif").values[0, 0, 0], full)


def test_unknown_axes_are_refused(tmp_path):
    tifffile.imwrite(
        tmp_path / "positions.ome.tif", np.zeros((2, 3, 8, 8), np.uint8), ome=True,
        metadata={"axes": "TCYX"},
    )  # fmt: skip
    assert read_image(tmp_path / "positions.ome.tif").shape == (2, 3, 1, 8, 8)
    with pytest.raises(ValueError, match="axis 'E'"):
        io._standard_axes("EYX", (2, 8, 8), "file.tif", generic="T")


# ---------------------------------------------------------------- zarr / OME-Zarr


def ome_zarr(path, data, axes="tczyx", channels=None, chunks=None):
    root = zarr.open_group(str(path), mode="w")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Dimension . is too small", UserWarning)
        write_image(data, group=root, axes=axes, scale_factors=None,
                    storage_options={"chunks": chunks} if chunks else None)  # fmt: skip
    if channels is not None:
        attrs = root.attrs.asdict()
        attrs["ome"]["omero"] = {"channels": [{"label": name} for name in channels]}
        root.attrs.put(attrs)
    return root


def test_ome_zarr_axes_and_channel_names(tmp_path, count_reads):
    tczyx = random_array((2, 3, 1, 16, 18), seed=5)
    ome_zarr(tmp_path / "image.zarr", tczyx, channels=("G", "R", "C"), chunks=(1, 1, 1, 16, 18))
    im = read_image(tmp_path / "image.zarr")
    assert im.C.values.tolist() == ["G", "R", "C"]
    assert im.chunks == ((1, 1), (1, 1, 1), (1,), (16,), (18,))
    assert not count_reads
    np.testing.assert_array_equal(im.sel(C="R").values, tczyx[:, 1])
    assert sum(count_reads.values()) == 2


def test_zarr_chunk_holding_many_planes_is_read_once(tmp_path, count_reads):
    tczyx = random_array((2, 3, 2, 16, 18), seed=6)
    ome_zarr(tmp_path / "image.zarr", tczyx, chunks=(2, 3, 1, 8, 9))
    im = read_image(tmp_path / "image.zarr")
    assert im.data.chunksize == (1, 1, 1, 16, 18)
    np.testing.assert_array_equal(im.values, tczyx)
    assert sum(count_reads.values()) == 2 and set(count_reads.values()) == {1}


def test_ome_zarr_without_time_and_z(tmp_path):
    cyx = np.random.default_rng(6).random((2, 16, 16))
    ome_zarr(tmp_path / "cyx.zarr", cyx, axes="cyx")
    im = read_image(tmp_path / "cyx.zarr")
    assert im.shape == (1, 2, 1, 16, 16)
    np.testing.assert_array_equal(im.values[0, :, 0], cyx)


def test_plain_zarr_array_with_dimension_names(tmp_path):
    zyx = np.arange(1, 2 * 5 * 6 + 1, dtype=np.int32).reshape(2, 5, 6)
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


def test_missing_chunks_are_named_unless_accepted(tmp_path):
    data = random_array((3, 8, 8), seed=7) + 1
    array = zarr.create_array(
        str(tmp_path / "sparse.zarr"), shape=data.shape, dtype=data.dtype, chunks=(1, 8, 4),
        dimension_names=("t", "y", "x"),
    )  # fmt: skip
    array[:] = data
    (tmp_path / "sparse.zarr" / "c" / "1" / "0" / "1").unlink()
    with pytest.raises(ValueError, match=r"lacks 1 of its 6 chunks.*'c/1/0/1'.*missing_chunks"):
        read_image(tmp_path / "sparse.zarr")
    im = read_image(tmp_path / "sparse.zarr", missing_chunks="fill")
    expected = data.copy()
    expected[1, :, 4:] = 0
    np.testing.assert_array_equal(im.values[:, 0, 0], expected)


def test_missing_chunks_of_a_v2_array_are_named(tmp_path):
    array = zarr.create_array(
        str(tmp_path / "v2.zarr"), shape=(2, 4, 4), dtype="u1", chunks=(1, 4, 4), zarr_format=2
    )
    array[:] = 7
    (tmp_path / "v2.zarr" / "1.0.0").unlink()
    with pytest.raises(ValueError, match=r"'1\.0\.0'"):
        read_image(tmp_path / "v2.zarr")


def test_corrupt_chunk_is_one_line_naming_store_and_chunk(tmp_path):
    data = random_array((2, 2, 1, 16, 16), seed=8)
    ome_zarr(tmp_path / "image.zarr", data, chunks=(1, 1, 1, 16, 16))
    (tmp_path / "image.zarr" / "s0" / "c" / "1" / "0" / "0" / "0" / "0").write_bytes(b"garbage")
    im = read_image(tmp_path / "image.zarr")
    np.testing.assert_array_equal(im.isel(T=0).values, data[0])  # the rest reads fine
    with pytest.raises(ValueError) as error:
        im.isel(T=1).compute()
    message = str(error.value)
    assert "\n" not in message
    assert "image.zarr" in message and "'c/1/0/0/0/0'" in message
    assert error.value.__cause__ is None and error.value.__suppress_context__


def ome_attrs(path):
    meta = json.loads((path / "zarr.json").read_text())
    return meta, meta["attributes"]["ome"]


def rewrite_ome(path, edit):
    meta, ome = ome_attrs(path)
    edit(ome)
    (path / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ome: ome["multiscales"][0]["datasets"][0].update(path="7"),
         r"path '7' is not an array of the store \(arrays: \['s0', "),
        (lambda ome: ome["multiscales"][0].update(datasets=[]), "has no datasets"),
        (lambda ome: ome.update(multiscales="garbage"), "must be a non-empty list"),
        (lambda ome: ome["multiscales"][0].update(axes=["t", "y", "x"]), "has 5 dims"),
        (lambda ome: ome.update(omero={"channels": [{"label": "G"}, {"label": "C"}]}),
         "names 2 channels but the image has 3"),
    ],
)  # fmt: skip
def test_broken_ome_metadata_is_one_line(tmp_path, edit, message):
    ome_zarr(tmp_path / "image.zarr", random_array((1, 3, 1, 8, 8), seed=9))
    rewrite_ome(tmp_path / "image.zarr", edit)
    with pytest.raises(ValueError, match=message) as error:
        read_image(tmp_path / "image.zarr")
    assert "\n" not in str(error.value) and "image.zarr" in str(error.value)


def test_ome_zarr_image_reads_ngff_04_metadata(tmp_path):
    root = zarr.open_group(str(tmp_path / "v04.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=(2, 4, 4), dtype="u1")
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": [{"name": "c"}, {"name": "y"}, {"name": "x"}],
         "datasets": [{"path": "0"}]}
    ]  # fmt: skip
    found = ome_zarr_image(root, "v04.zarr")
    assert (found.array_path, found.axes, found.channels) == ("0", ("C", "Y", "X"), None)


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
