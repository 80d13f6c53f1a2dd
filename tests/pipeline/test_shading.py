"""Shading correction against the plain numpy formula."""

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from nima_lessons.pipeline import shading
from nima_lessons.pipeline._shading import as_constant, shading_plane

DIMS = ("T", "C", "Z", "Y", "X")


def make_image(rng, shape=(2, 3, 1, 8, 9)):
    data = rng.integers(0, 3000, shape).astype(np.uint16)
    return xr.DataArray(data, dims=DIMS, coords={"C": ["G", "R", "C"]})


def test_per_channel_frames_match_the_formula():
    rng = np.random.default_rng(0)
    im = make_image(rng)
    dark = rng.uniform(90, 110, (3, 8, 9)).astype(np.float32)
    flat = rng.uniform(0.7, 1.3, (3, 8, 9)).astype(np.float32)
    result = shading(im.chunk({"T": 1, "C": 1}), dark, flat)
    assert isinstance(result.data, da.Array)
    assert result.dims == DIMS and result.dtype == np.float32
    corrected = (im.values.astype(np.float32) - dark[None, :, None]) / flat[None, :, None]
    expected = np.clip(corrected, 0, None)
    np.testing.assert_allclose(result.values, expected, rtol=1e-6)
    assert (result.values >= 0).all()


def test_shared_frame_and_named_channels_are_aligned():
    rng = np.random.default_rng(1)
    im = make_image(rng)
    dark = np.full((8, 9), 100.0)
    flat_values = rng.uniform(0.5, 1.5, (3, 8, 9))
    # Given in another channel order: aligned by name, not by position.
    flat = xr.DataArray(flat_values[::-1], dims=("C", "Y", "X"), coords={"C": ["C", "R", "G"]})
    result = shading(im, dark, flat)
    expected = np.clip((im.values - 100.0) / flat_values[None, :, None], 0, None)
    np.testing.assert_allclose(result.values, expected)
    assert result.dtype == np.float64


def test_non_positive_flat_gives_zero():
    im = make_image(np.random.default_rng(2))
    flat = np.ones((3, 8, 9))
    flat[1, 2, 3] = 0
    result = shading(im, np.zeros((8, 9)), flat)
    assert (result.values[:, 1, :, 2, 3] == 0).all()
    assert np.isfinite(result.values).all()


def test_frames_become_one_chunk_per_channel():
    im = make_image(np.random.default_rng(3)).chunk({"T": 1, "C": 1})
    frame = as_constant(np.ones((3, 8, 9)), im, "flat")
    assert frame.chunks == ((1, 1, 1), (8,), (9,))


@pytest.mark.parametrize(
    ("dark", "message"),
    [
        (np.zeros((8, 10)), "dark has X size 10"),
        (np.zeros((2, 8, 9)), "dark has 2 channels"),
        (np.zeros((1, 1, 8, 9)), "dark must be 2-D"),
        (
            xr.DataArray(np.zeros((1, 8, 9)), dims=("C", "Y", "X"), coords={"C": ["G"]}),
            r"\['R', 'C'\]",
        ),
    ],
)
def test_bad_frames_are_explained(dark, message):
    im = make_image(np.random.default_rng(4))
    with pytest.raises(ValueError, match=message):
        shading(im, dark, np.ones((8, 9)))


def numpy_formula(plane, dark, flat, dtype):
    """The correction written out independently: convert, subtract, divide, clip, zero."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        corrected = (plane.astype(dtype) - dark.astype(dtype)) / flat.astype(dtype)
    return np.where(flat > 0, np.maximum(corrected, 0), 0).astype(dtype)


def awkward_frames(rng, plane_type, dark_type, flat_type, shape=(37, 41)):
    plane = (rng.random(shape) * 4000 - 200).astype(plane_type)
    dark = (rng.random(shape) * 300).astype(dark_type)
    flat = (rng.random(shape) * 1.5 - 0.1).astype(flat_type)
    if plane_type.kind == "f":
        plane[0, :5] = np.nan
        plane[2, :3] = [np.inf, -np.inf, -0.0]
        plane[3, :4] = dark[3, :4]  # exact zeros before the division
    if flat_type.kind == "f":
        flat[1, :5] = np.nan
        flat[4, :3] = [np.inf, 0.0, -0.0]
        flat[5, :2] = np.finfo(flat_type).tiny  # overflows to inf after the division
    return plane, dark, flat


@pytest.mark.parametrize(
    "dtypes",
    [
        ("uint16", "float32", "float32"),
        ("uint16", "float64", "float64"),
        ("float64", "float64", "float64"),
        ("float32", "float64", "float32"),
        ("float32", "float32", "float32"),
        ("float64", "float32", "float32"),
        ("float16", "float16", "float16"),
        ("uint8", "float32", "float32"),
        ("int32", "float32", "float32"),
        ("int64", "uint16", "float32"),
        ("uint16", "uint16", "float32"),
        ("uint16", "uint16", "uint16"),
        ("int16", "int8", "uint8"),
    ],
)
def test_compiled_plane_is_bit_identical_to_the_numpy_formula(dtypes):
    plane_type, dark_type, flat_type = map(np.dtype, dtypes)
    plane, dark, flat = awkward_frames(np.random.default_rng(7), plane_type, dark_type, flat_type)
    dtype = np.result_type(plane_type, dark_type, flat_type, np.float32)
    got = shading_plane(plane, dark, flat)
    assert got.dtype == dtype
    expected = numpy_formula(plane, dark, flat, dtype)
    # Bytes, not values: NaN payloads and the signs of zeros must agree too.
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_and_numpy_paths_agree_in_each_precision(dtype):
    # A 3-D plane takes the numpy path; its 2-D slices take the compiled one.
    rng = np.random.default_rng(8)
    plane, dark, flat = awkward_frames(rng, np.dtype(dtype), np.dtype(dtype), np.dtype(dtype))
    stacked = shading_plane(plane[None], dark[None], flat[None])[0]
    assert stacked.tobytes() == shading_plane(plane, dark, flat).tobytes()


def test_numpy_frames_with_a_lazy_image_equal_the_eager_result():
    rng = np.random.default_rng(3)
    im = make_image(rng)
    dark = rng.uniform(90, 110, (8, 9))
    flat = xr.DataArray(rng.uniform(0.7, 1.3, (3, 8, 9)), dims=("C", "Y", "X"))
    eager = shading(im, dark, flat)
    lazy = shading(im.chunk({"T": 1, "C": 1}), dark, flat)
    assert isinstance(lazy.data, da.Array) and lazy.data.chunks[:2] == ((1, 1), (1, 1, 1))
    np.testing.assert_array_equal(lazy.values, eager.values)
