"""Per-plane background levels against direct numpy / skimage estimates."""

import dask
import numpy as np
import pytest
import skimage.filters
import xarray as xr

from nima_lessons.pipeline import BACKGROUND_METHODS, background, background_level


def cells_on_background(rng, level, shape=(40, 40)):
    plane = rng.normal(level, 3.0, shape)
    plane[5:15, 5:15] += 500
    plane[25:35, 20:32] += 800
    return plane


def make_image(rng, levels, shape=(40, 40)):
    planes = [[cells_on_background(rng, level, shape) for level in row] for row in levels]
    data = np.asarray(planes)[:, :, None]
    return xr.DataArray(data, dims=("T", "C", "Z", "Y", "X"), coords={"C": ["G", "C"]})


def refuse(*args, **kwargs):
    raise AssertionError("computed while building")


# How far below the true level (noise sigma 3) each estimator may land: the 10th
# percentile sits below the mean, and nima's methods keep the darker part of the noise.
TOLERANCE = {"li": 1.0, "percentile": 5.0, "sigma": 1.0, "li_adaptive": 3.0, "li_li": 4.0,
             "arcsinh": 1.0, "adaptive": 2.0, "entropy": 1.0}  # fmt: skip
# inverse_yen lands 10-20 counts low on this scene; it is checked, like every nima
# method, against nima's own levels on nima's sample image (tests/test_nima_sample.py).


@pytest.mark.parametrize("method", sorted(TOLERANCE))
def test_levels_recover_the_background(method):
    rng = np.random.default_rng(0)
    levels_true = [[100.0, 40.0], [120.0, 60.0]]
    im = make_image(rng, levels_true, shape=(96, 96)).chunk({"T": 1, "C": 1, "Z": 1})
    with dask.config.set(scheduler=refuse):
        subtracted, levels = background(im, method)
    assert levels.dims == ("T", "C", "Z")
    tolerance = TOLERANCE[method]
    np.testing.assert_allclose(levels.values[..., 0], levels_true, atol=tolerance)
    expected = np.clip(im.values - levels.values[..., None, None], 0, None)
    np.testing.assert_allclose(subtracted.values, expected, rtol=1e-6, atol=1e-3)
    assert subtracted.dims == im.dims and subtracted.chunks == im.chunks


def test_li_level_is_the_median_below_skimage_li_threshold():
    plane = cells_on_background(np.random.default_rng(1), 70.0)
    threshold = skimage.filters.threshold_li(plane)
    expected = np.median(plane[plane < threshold])
    assert float(background_level(plane, "li")) == pytest.approx(expected)


def test_percentile_level_is_numpy_percentile():
    plane = np.random.default_rng(2).random((9, 11))
    assert float(background_level(plane, "percentile", percentile=25)) == pytest.approx(
        np.percentile(plane, 25)
    )


def test_constant_plane_is_all_background():
    im = xr.DataArray(np.full((1, 1, 1, 5, 5), 9.0), dims=("T", "C", "Z", "Y", "X"))
    for method in BACKGROUND_METHODS:
        subtracted, levels = background(im, method)
        assert float(levels.squeeze()) == 9.0
        assert float(subtracted.max()) == 0.0


def test_bad_method_and_options():
    im = xr.DataArray(np.zeros((2, 4, 4)), dims=("T", "Y", "X"))
    with pytest.raises(ValueError, match="method"):
        background(im, "mean")
    with pytest.raises(ValueError, match="percentile"):
        background(im, "li", percentile=5)


def test_integer_planes_keep_their_dtype_through_nima_methods():
    # nima thresholds the camera's integers; the level is a median of those integers.
    plane = np.round(cells_on_background(np.random.default_rng(3), 200.0, (64, 64)))
    for method in ("li_adaptive", "li_li", "adaptive", "entropy"):
        level = float(background_level(plane.astype(np.uint16), method))
        assert level * 2 == round(level * 2) and abs(level - 200) < 5


def test_nima_method_options_are_checked():
    im = xr.DataArray(np.zeros((1, 8, 8)), dims=("T", "Y", "X"))
    with pytest.raises(ValueError, match="block_size must be None or an odd integer"):
        background(im, "li_adaptive", block_size=10)
    with pytest.raises(ValueError, match=r"unknown options \['radius'\].*li_adaptive"):
        background(im, "li_adaptive", radius=3)
    with pytest.raises(ValueError, match="filter_percentile"):
        background(im, "arcsinh", filter_percentile=180)
    with pytest.raises(ValueError, match="radius"):
        background(im, "entropy", radius=0)
