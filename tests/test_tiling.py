"""Overlap tuning against the whole-image filter: measured errors, searched and predicted depths.

The reference is always the scipy filter applied to the whole image, and, for the error
measures, a tiling done by hand with numpy slicing.
"""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

from nima_lessons.tiling import (
    compare_results,
    extra_pixel_fraction,
    gaussian_depth,
    minimal_overlap,
    overlap_cost_factor,
    overlap_for,
    overlap_sweep,
    tile_error,
    tiled_apply,
)


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A small noisy crop: every filter changes it everywhere."""
    return np.random.default_rng(7).random((96, 96))


def tiled_by_hand(func, image: np.ndarray, tile: int, depth: int) -> np.ndarray:
    """Tile with numpy slicing: filter each tile extended by depth (clipped), keep its core."""
    result = np.empty_like(func(image[:1, :1]), shape=image.shape)
    for y in range(0, image.shape[0], tile):
        for x in range(0, image.shape[1], tile):
            y0, x0 = max(y - depth, 0), max(x - depth, 0)
            y1 = min(y + tile + depth, image.shape[0])
            x1 = min(x + tile + depth, image.shape[1])
            filtered = func(image[y0:y1, x0:x1])
            core = filtered[y - y0 : y - y0 + tile, x - x0 : x - x0 + tile]
            result[y : y + tile, x : x + tile] = core
    return result


# ---------------------------------------------------------------- tile_error


@pytest.mark.parametrize("depth", [0, 3, 8, 12])
def test_tile_error_matches_a_tiling_by_hand(crop, depth):
    func = functools.partial(ndi.gaussian_filter, sigma=3)
    whole = func(crop)
    by_hand = tiled_by_hand(func, crop, 24, depth) - whole
    error = tile_error(func, crop, 24, depth)
    assert error.max_abs_error == np.abs(by_hand).max()
    assert error.rms_error == pytest.approx(np.sqrt(np.mean(by_hand**2)), rel=1e-12)
    assert error.fraction_differing == np.count_nonzero(by_hand) / by_hand.size
    assert error.signed_sum == pytest.approx(by_hand.sum(), rel=1e-9, abs=1e-12)


def test_signed_sum_hides_errors_of_both_signs(crop):
    func = functools.partial(ndi.median_filter, size=7)
    error = tile_error(func, crop, 16, 0)
    assert error.max_abs_error > 0.1
    assert error.fraction_differing > 0.1
    # Positive and negative errors cancel: the sum is far below their total size.
    total_absolute = np.abs(tiled_by_hand(func, crop, 16, 0) - func(crop)).sum()
    assert abs(error.signed_sum) < 0.5 * total_absolute


def test_border_is_reproduced_exactly_with_boundary_none(crop):
    for mode in ("reflect", "nearest", "constant", "mirror", "wrap"):
        func = functools.partial(ndi.gaussian_filter, sigma=2, mode=mode)
        tiled = tiled_apply(func, crop, 32, overlap_for(func)).compute()
        if mode == "wrap":
            # Wrapping reads the opposite border, which a tile does not have.
            assert not np.array_equal(tiled, func(crop))
        else:
            np.testing.assert_array_equal(tiled, func(crop))


def test_compare_results_nan_and_shape():
    same = compare_results(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    assert same.max_abs_error == 0.0
    assert compare_results(np.array([np.nan, 1.0]), np.array([0.0, 1.0])).max_abs_error == np.inf
    with pytest.raises(ValueError, match="shape"):
        compare_results(np.zeros(3), np.zeros(4))


def test_depth_larger_than_a_chunk_is_rejected(crop):
    with pytest.raises(ValueError, match="larger than the smallest chunk"):
        tile_error(ndi.sobel, crop, 16, 17)
    with pytest.raises(ValueError, match="non-negative"):
        tile_error(ndi.sobel, crop, 16, -1)
    with pytest.raises(ValueError, match="one per axis"):
        tile_error(ndi.sobel, crop, 16, (1, 1, 1))


# ---------------------------------------------------------------- minimal_overlap


def test_gaussian_sigma_5_needs_20_and_19_is_not_enough(crop):
    func = functools.partial(ndi.gaussian_filter, sigma=5)
    depth, evaluations = minimal_overlap(func, crop, 32, return_evaluations=True)
    assert depth == 20
    # Checked independently of the search, against the whole image.
    assert tile_error(func, crop, 32, 19).max_abs_error > 0
    assert np.array_equal(tiled_by_hand(func, crop, 32, 20), func(crop))
    assert not np.array_equal(tiled_by_hand(func, crop, 32, 19), func(crop))
    # Exponential then binary search: far fewer evaluations than a scan.
    assert len(evaluations) <= 2 * int(np.ceil(np.log2(20))) + 2 < 21
    assert evaluations[20] == 0.0 and evaluations[19] > 0


FILTERS = [
    (ndi.gaussian_filter, {"sigma": 1.5}),
    (ndi.gaussian_filter, {"sigma": 3}),
    (ndi.gaussian_filter, {"sigma": 2, "truncate": 2.5}),
    (ndi.median_filter, {"size": 3}),
    (ndi.median_filter, {"size": 5}),
    (ndi.median_filter, {"size": 9}),
    (ndi.white_tophat, {"size": 3}),
    (ndi.white_tophat, {"size": 7}),
    (ndi.black_tophat, {"size": 5}),
    (ndi.grey_opening, {"size": 5}),
    (ndi.maximum_filter, {"size": 7}),
    (ndi.sobel, {}),
    (ndi.laplace, {}),
    (ndi.gaussian_laplace, {"sigma": 1.5}),
]


@pytest.mark.parametrize("func, params", FILTERS, ids=[f"{f.__name__}-{p}" for f, p in FILTERS])
def test_minimal_overlap_agrees_with_theory(crop, func, params):
    filtered = functools.partial(func, **params)
    measured = minimal_overlap(filtered, crop, 32)
    assert measured == overlap_for(func, **params) == overlap_for(filtered)


def test_tophat_needs_twice_the_footprint_radius(crop):
    func = functools.partial(ndi.white_tophat, size=7)
    assert tile_error(func, crop, 32, 3).max_abs_error > 0  # the radius is not enough
    assert tile_error(func, crop, 32, 6).max_abs_error == 0


def test_uniform_filter_is_exact_only_on_integer_images(crop):
    func = functools.partial(ndi.uniform_filter, size=7)
    # The running sum rounds differently in each tile: never bit-identical.
    with pytest.raises(ValueError, match="no overlap up to"):
        minimal_overlap(func, crop, 32)
    assert minimal_overlap(func, crop, 32, tol=1e-12) == overlap_for(func) == 3
    integers = (crop * 255).astype(np.uint8)
    assert minimal_overlap(func, integers, 32) == 3


def test_minimal_overlap_in_3d():
    volume = np.random.default_rng(1).random((24, 24, 24))
    func = functools.partial(ndi.gaussian_filter, sigma=1)
    assert minimal_overlap(func, volume, 12) == overlap_for(func) == 4


def test_minimal_overlap_errors(crop):
    with pytest.raises(ValueError, match="single tile"):
        minimal_overlap(ndi.sobel, crop, 96)
    with pytest.raises(ValueError, match="tol"):
        minimal_overlap(ndi.sobel, crop, 32, tol=-1.0)
    with pytest.raises(ValueError, match="larger chunks"):
        minimal_overlap(functools.partial(ndi.gaussian_filter, sigma=5), crop, 16)


# ---------------------------------------------------------------- overlap_for


def test_overlap_for_values():
    assert overlap_for("gaussian_filter", sigma=5) == 20
    assert overlap_for("gaussian", sigma=5, truncate=3.0) == 15
    assert overlap_for("gaussian_filter", sigma=5, radius=7) == 7
    assert overlap_for("gaussian_filter", sigma=(1, 5)) == (4, 20)
    assert overlap_for("median", size=6) == 3
    assert overlap_for("median_filter", footprint=np.ones((7, 3))) == (3, 1)
    assert overlap_for("tophat", radius=4) == 8
    assert overlap_for("uniform_filter") == 1
    assert overlap_for("sobel", ndim=3) == (1, 1, 1)


def test_overlap_for_errors():
    with pytest.raises(ValueError, match="unknown filter_name"):
        overlap_for("bilateral")
    with pytest.raises(ValueError, match="sigma"):
        overlap_for("gaussian_filter")
    with pytest.raises(ValueError, match="size"):
        overlap_for("median_filter")
    with pytest.raises(ValueError, match="keyword"):
        overlap_for(functools.partial(ndi.gaussian_filter, np.zeros(3)))


# ---------------------------------------------------------------- overlap_sweep


def test_overlap_sweep_table(crop):
    func = functools.partial(ndi.gaussian_filter, sigma=2)
    table = overlap_sweep(func, crop, [24, 48], [0, 4, 8, 30])
    assert len(table) == 7  # depth 30 does not fit in 24-px tiles
    assert {"chunk_size", "depth", "max_abs_error", "seconds", "extra_pixel_fraction"} <= set(
        table.columns
    )
    exact = table[table.depth >= 8]
    assert (exact.max_abs_error == 0).all()
    assert (table[table.depth < 8].max_abs_error > 0).all()
    for row in table.itertuples():
        tiled = da.from_array(crop, chunks=row.chunk_size)
        read = da.overlap.overlap(tiled, depth=row.depth, boundary="none").size
        assert row.extra_pixel_fraction == pytest.approx(read / crop.size - 1)


def test_extra_pixel_fraction_counts_internal_sides_only():
    assert extra_pixel_fraction(((10,), (10,)), 5) == 0.0
    assert extra_pixel_fraction(((10, 10), (20,)), (2, 0)) == pytest.approx(0.2)


@pytest.mark.parametrize("sigma", [0.6, 1.1, 1.5, 2.3, 3.0, 4.7])
def test_gaussian_depth_is_enough_and_at_most_one_pixel_more_than_needed(crop, sigma):
    func = functools.partial(ndi.gaussian_filter, sigma=sigma)
    needed = minimal_overlap(func, crop, 32)
    # scipy's own kernel: the support of the response to a single bright pixel
    impulse = np.zeros(41)
    impulse[20] = 1.0
    radius = int(np.flatnonzero(ndi.gaussian_filter1d(impulse, sigma))[-1]) - 20
    assert needed == radius
    assert needed <= gaussian_depth(sigma) <= needed + 1
    assert overlap_for(func) == gaussian_depth(sigma)


def test_gaussian_depth_rejects_negative_parameters():
    with pytest.raises(ValueError, match="sigma and truncate"):
        gaussian_depth(-1.0)


def test_inner_tile_cost_matches_what_dask_hands_the_middle_tile():
    tiles = da.zeros((96, 96), chunks=32)
    middle = da.overlap.overlap(tiles, depth=5, boundary="none").blocks[1, 1]
    assert overlap_cost_factor(32, 5) == pytest.approx(middle.size / 32**2)
    # the whole tiling reads less: border tiles have no neighbour outside
    assert extra_pixel_fraction(tiles.chunks, 5) < overlap_cost_factor(32, 5) - 1
