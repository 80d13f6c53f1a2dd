"""Ratio images against numpy division."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import xarray as xr

from nima_lessons.pipeline import make_footprint, ratio

DIMS = ("T", "C", "Z", "Y", "X")


def make_image(rng):
    data = rng.uniform(0.0, 100.0, (2, 3, 1, 10, 12))
    data[:, 2, :, 0, :4] = 0.0  # no signal in the denominator
    return xr.DataArray(data, dims=DIMS, coords={"C": ["G", "R", "C"]})


def test_ratio_is_the_division_with_nan_for_zero_denominators():
    im = make_image(np.random.default_rng(0))
    result = ratio(im.chunk({"T": 1, "C": 1}), "G", "C")
    assert result.dims == ("T", "Z", "Y", "X") and result.dtype == np.float64
    values = result.values
    numerator, denominator = im.values[:, 0], im.values[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(denominator > 0, numerator / denominator, np.nan)
    np.testing.assert_array_equal(values, expected)
    assert np.isnan(values[:, :, 0, :4]).all() and not np.isinf(values).any()


def test_mask_sets_the_outside_to_nan():
    im = make_image(np.random.default_rng(1))
    mask = xr.DataArray(np.zeros((2, 1, 10, 12), np.int32), dims=("T", "Z", "Y", "X"))
    mask[:, :, 5:, 6:] = 3
    values = ratio(im, "R", "G", mask=mask).values
    assert np.isnan(values[:, :, :5]).all() and np.isnan(values[:, :, :, :6]).all()
    expected = im.values[:, 1] / im.values[:, 0]
    np.testing.assert_allclose(values[:, :, 5:, 6:], expected[:, :, 5:, 6:])


def test_smoothing_filters_both_channels_before_dividing():
    im = make_image(np.random.default_rng(2))
    values = ratio(im, "G", "R", smooth_radius=1).values
    disk = make_footprint("disk", 1)
    top = ndi.median_filter(im.values[1, 0, 0], footprint=disk, mode="reflect")
    bottom = ndi.median_filter(im.values[1, 1, 0], footprint=disk, mode="reflect")
    np.testing.assert_allclose(values[1, 0], top / bottom)


def test_unknown_channel_lists_the_available_ones():
    im = make_image(np.random.default_rng(3))
    with pytest.raises(ValueError, match=r"denominator.*\['Y'\].*\['G', 'R', 'C'\]"):
        ratio(im, "G", "Y")


def test_nima_smoothing_medians_the_ratio_image_with_windows_7_then_3():
    im = make_image(np.random.default_rng(4))
    mask = xr.DataArray(np.zeros((2, 1, 10, 12), np.int32), dims=("T", "Z", "Y", "X"))
    mask[:, :, 2:9, 3:11] = 1
    lazy = ratio(im.chunk({"T": 1, "C": 1}), "C", "R", mask=mask, median_sizes=(7, 3))
    values = lazy.values
    for t in range(2):
        # nima's d_ratio: division, non-finite -> 0, scipy medians of size 7 then 3
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = im.values[t, 2, 0] / im.values[t, 1, 0]
        smoothed = ndi.median_filter(ndi.median_filter(np.nan_to_num(raw, nan=0.0), 7), 3)
        inside = mask.values[t, 0] > 0
        np.testing.assert_array_equal(values[t, 0][inside], smoothed[inside])
        assert np.isnan(values[t, 0][~inside]).all()


@pytest.mark.parametrize("sizes", [(4,), (0,), (7, -3), ("7",)])
def test_median_sizes_must_be_odd_positive_integers(sizes):
    with pytest.raises(ValueError, match="odd window sizes"):
        ratio(make_image(np.random.default_rng(5)), median_sizes=sizes)
