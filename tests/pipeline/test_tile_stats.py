"""Whole-plane statistics from tile summaries, against numpy and scikit-image on the whole plane."""

import dask.array as da
import numpy as np
import pytest
import skimage.filters
import xarray as xr

from nima_lessons.pipeline import _tile_stats as stats
from nima_lessons.pipeline._background import background_level
from nima_lessons.pipeline._tiled_levels import (
    _li_goes_on,
    li_threshold_of_plane,
    otsu_threshold,
    tiled_background,
    yen_threshold,
)

CHUNKINGS = [(1, 13, 17), (1, (1, 30, 9), (50,)), (2, 40, 25)]


def planes(seed: int) -> np.ndarray:
    """Two 40 x 50 float planes: one continuous with NaN and inf, one integer-valued."""
    rng = np.random.default_rng(seed)
    continuous = rng.gamma(2.0, 30.0, (40, 50))
    continuous[rng.random((40, 50)) < 0.2] += 200.0
    continuous[:3, :4] = np.nan
    continuous[5, 5] = np.inf
    integers = np.round(rng.normal(40.0, 6.0, (40, 50)))
    integers[rng.random((40, 50)) < 0.15] += 60.0
    return np.stack([continuous, integers])


def finite(plane: np.ndarray) -> np.ndarray:
    return plane[np.isfinite(plane)].astype(np.float64)


def per_plane(image: np.ndarray, chunks, make):
    found = stats.run_per_plane(da.from_array(image, chunks=chunks), make)
    return [found[(index,)] for index in range(image.shape[0])]


def test_order_keys_sort_like_the_values_and_invert():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.normal(size=500) * 10.0 ** rng.integers(-300, 300, 500), [0.0, 1.5, -1.5, 5e-324]]
    )
    keys = stats.order_keys(values)
    np.testing.assert_array_equal(np.sort(values), values[np.argsort(keys)])
    assert [stats.key_value(int(key)) for key in keys] == values.tolist()


@pytest.mark.parametrize("count", [1, 2, 3, 10, 11, 999])
def test_percentile_position_matches_numpy(count):
    rng = np.random.default_rng(count)
    values = rng.normal(size=count)
    ordered = np.sort(values)
    for q in [0.0, 0.1, 1.0, 10.0, 25.0, 33.3, 50.0, 66.7, 99.9, 100.0, *rng.uniform(0, 100, 20)]:
        low, high, gamma = stats.linear_quantile_position(count, q)
        got = stats.linear_interpolation(ordered[low], ordered[high], gamma)
        assert got == np.percentile(values, q), q


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("gather_limit", [stats.GATHER_LIMIT, 50])
def test_order_statistics_are_exact(chunks, gather_limit, monkeypatch):
    # A small gather limit makes the search narrow bin by bin first.
    monkeypatch.setattr(stats, "GATHER_LIMIT", gather_limit)
    image = planes(1)
    selections = {
        "percentile": (
            lambda _: stats.percentile(stats.Finite(), 10.0),
            lambda v: np.percentile(v, 10.0),
        ),
        "median below": (
            lambda _: stats.median(stats.Below(45.0)),
            lambda v: np.median(v[v < 45.0]),
        ),
        "median within": (
            lambda _: stats.median(stats.Within(50.0, 12.5)),
            lambda v: np.median(v[np.abs(v - 50.0) <= 12.5]),
        ),
    }
    for name, (make, reference) in selections.items():
        found = per_plane(image, chunks, make)
        for plane, value in zip(image, found, strict=True):
            assert value == reference(finite(plane)), name


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_extent_mean_and_std(chunks):
    image = planes(2)
    found = per_plane(
        image, chunks, lambda _: stats.together(stats.extent(), stats.mean_and_std(stats.Finite()))
    )
    for plane, (extent, (count, mean, std)) in zip(image, found, strict=True):
        values = finite(plane)
        assert extent == (values.size, values.min(), values.max()) and count == values.size
        assert mean == pytest.approx(values.mean(), rel=1e-14)
        assert std == pytest.approx(values.std(), rel=1e-12)


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize(
    ("make", "reference"),
    [
        (otsu_threshold, skimage.filters.threshold_otsu),
        (yen_threshold, skimage.filters.threshold_yen),
    ],
)
def test_histogram_thresholds_are_scikit_image_s(chunks, make, reference):
    for seed in range(3):
        image = planes(seed)
        found = per_plane(image, chunks, lambda _: make())
        for plane, value in zip(image, found, strict=True):
            assert value == reference(finite(plane))


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_li_threshold_is_scikit_image_s(chunks):
    for seed in range(6):
        image = planes(seed)
        found = per_plane(image, chunks, lambda _: li_threshold_of_plane())
        for plane, value in zip(image, found, strict=True):
            assert value == pytest.approx(skimage.filters.threshold_li(finite(plane)), rel=1e-12)


def test_planes_without_contrast_have_no_threshold():
    image = np.stack([np.full((10, 12), 3.0), np.full((10, 12), np.nan)])
    for make in (otsu_threshold, yen_threshold, li_threshold_of_plane):
        assert per_plane(image, (1, 5, 5), lambda _, make=make: make()) == [None, None]


def li_stopping_rule(shift, t_curr, t_next):
    low, high = sorted((t_curr, t_next))
    fetched = yield [stats.SplitSums(shift, t_next), stats.ShiftedBetween(shift, low, high)]
    return (yield from _li_goes_on(shift, np.float64(t_curr), np.float64(t_next), fetched))


@pytest.mark.parametrize("lattice", [1.0, 0.25, 3.0])
def test_li_stopping_rule_is_scikit_image_s_tolerance(lattice):
    # scikit-image stops when the threshold moves by at most half the smallest
    # gap between distinct (shifted) values. Where a value lies between the two
    # thresholds, every branch of the tiled rule (two values, neighbours, tile
    # gaps, all values) must decide as scikit-image does; where none does, going
    # on would give the same threshold again, so either answer is right.
    rng = np.random.default_rng(int(lattice * 4))
    plane = np.round(rng.normal(20.0, 4.0, (30, 40))) * lattice
    plane[rng.random((30, 40)) < 0.3] += 25.0 * lattice
    values = finite(plane)
    shift = values.min()
    shifted = values - shift
    tolerance = np.min(np.diff(np.unique(shifted))) / 2
    tiles = stats.Tiles(da.from_array(plane[None], chunks=(1, 11, 13)))
    distinct = np.unique(shifted)
    trials = []
    for value in distinct[1:-1:3]:
        for step in (0.1, 0.3, 0.5, 0.7, 1.2, 2.5):
            trials.append((float(value - step * lattice / 2), float(value + step * lattice / 2)))
            trials.append((float(value + 0.01), float(value + 0.01 + step * lattice)))
    algorithms = {n: li_stopping_rule(float(shift), a, b) for n, (a, b) in enumerate(trials)}
    decided = stats.solve(tiles, algorithms, {n: (0,) for n in algorithms})
    checked = 0
    for number, (t_curr, t_next) in enumerate(trials):
        low, high = sorted((t_curr, t_next))
        if np.any((shifted > low) & (shifted <= high)):
            assert decided[number] == (abs(t_next - t_curr) > tolerance), (t_curr, t_next)
            checked += 1
    assert checked > len(trials) // 3


def test_passes_serve_every_plane_at_once(monkeypatch):
    image = planes(3)
    calls = []
    original = stats.run_pass

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(stats, "run_pass", counting)
    found = per_plane(
        np.concatenate([image, image]),
        (1, 20, 25),
        lambda _: stats.percentile(stats.Finite(), 5.0, at_most=image[0].size),
    )
    assert found[2] == np.percentile(finite(image[0]), 5.0)
    assert len(calls) == 1  # the extent and the values, gathered at once for all four planes


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize(
    ("method", "options"),
    [("li", {}), ("percentile", {"percentile": 10.0}), ("percentile", {"percentile": 73.5}),
     ("sigma", {}), ("sigma", {"n_sigma": 1.0, "max_iter": 3})],
)  # fmt: skip
def test_background_levels_are_the_whole_plane_levels(chunks, method, options):
    image = planes(4)
    im = xr.DataArray(image, dims=("T", "Y", "X")).chunk(
        dict(zip(("T", "Y", "X"), chunks, strict=True))
    )
    subtracted, levels = tiled_background(im, method, **options)
    for plane, level in zip(image, levels.values, strict=True):
        expected = background_level(plane, method, **options)
        assert level == pytest.approx(float(expected), rel=1e-12)
    expected_image = np.clip(image.astype(np.float64) - levels.values[:, None, None], 0, None)
    np.testing.assert_array_equal(subtracted.values, expected_image)
