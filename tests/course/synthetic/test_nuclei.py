"""Tests of the nuclei generator against scipy's whole-image segmentation."""

import numpy as np
import pytest
from scipy import ndimage

from nima_lessons.config import SIZES
from nima_lessons.counting import NUCLEI_THRESHOLD
from nima_lessons.course.synthetic import (
    nuclei_count,
    nuclei_image,
    nuclei_layout,
    render_nuclei,
)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_count_matches_scipy_components(seed):
    nuclei = nuclei_image((400, 700), seed=seed)
    assert nuclei.count > 50
    assert ndimage.label(nuclei.image > NUCLEI_THRESHOLD)[1] == nuclei.count
    assert ndimage.label(nuclei.labels > 0)[1] == nuclei.count
    assert ndimage.label(nuclei.image > NUCLEI_THRESHOLD, structure=np.ones((3, 3)))[1] == (
        nuclei.count
    )


def test_labels_are_numbered_one_component_each():
    nuclei = nuclei_image((300, 500), seed=2)
    ids = np.unique(nuclei.labels)
    np.testing.assert_array_equal(ids, np.arange(nuclei.count + 1))
    components, _ = ndimage.label(nuclei.labels > 0)
    # one component per label id and one label id per component
    pairs = np.unique(np.stack([components.ravel(), nuclei.labels.ravel()]), axis=1)
    assert pairs.shape[1] == nuclei.count + 1


def test_nuclei_do_not_touch_even_diagonally():
    nuclei = nuclei_image((300, 500), seed=4)
    grown = ndimage.grey_dilation(nuclei.labels, size=(5, 5))
    touching = (grown != nuclei.labels) & (nuclei.labels > 0)
    assert not touching.any()


def test_nucleus_sizes_are_realistic():
    nuclei = nuclei_image((600, 600), seed=5)
    for found in ndimage.find_objects(nuclei.labels):
        height = found[0].stop - found[0].start
        width = found[1].stop - found[1].start
        assert 8 <= max(height, width) <= 31


def test_image_is_dim_background_with_bright_nuclei():
    nuclei = nuclei_image((300, 400), seed=0)
    assert nuclei.image.dtype == np.uint8 and nuclei.labels.dtype == np.int32
    background = nuclei.image[nuclei.labels == 0]
    inside = nuclei.image[nuclei.labels > 0]
    assert background.mean() < 30 and background.std() > 1
    assert inside.mean() > 100


def test_region_equals_same_region_of_whole_image():
    shape = (250, 330)
    whole = nuclei_image(shape, seed=9)
    layout = nuclei_layout(shape, seed=9)
    regions = [
        (slice(0, 100), slice(0, 100)),
        (slice(37, 250), slice(123, 301)),
        (slice(0, 250, 2), slice(1, 330, 4)),
    ]
    for rows, cols in regions:
        image, labels = render_nuclei(layout, rows, cols)
        np.testing.assert_array_equal(image, whole.image[rows, cols])
        np.testing.assert_array_equal(labels, whole.labels[rows, cols])


def test_deterministic_for_seed_and_count_without_rendering():
    first = nuclei_image((200, 260), seed=3)
    second = nuclei_image((200, 260), seed=3)
    other = nuclei_image((200, 260), seed=4)
    np.testing.assert_array_equal(first.image, second.image)
    assert not np.array_equal(first.image, other.image)
    assert nuclei_count((200, 260), seed=3) == first.count


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (0, 10)}, r"shape\[0\]"),
        ({"shape": (10, -5)}, r"shape\[1\]"),
        ({"shape": (10,)}, "shape"),
        ({"shape": (10, 10), "seed": -1}, "seed"),
        ({"shape": (10, 2.5)}, r"shape\[1\]"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nuclei_image(**kwargs)


def test_region_outside_image_raises():
    layout = nuclei_layout((100, 100), seed=0)
    with pytest.raises(ValueError, match=r"rows=.*outside the image"):
        render_nuclei(layout, slice(0, 101), slice(0, 10))
    with pytest.raises(ValueError, match=r"cols=.*outside the image"):
        render_nuclei(layout, slice(0, 10), slice(None, 10))


def naive_tile_count(image, tile_px):
    """Sum of scipy's component counts of every tile on its own (the naive tiled count)."""
    return sum(
        ndimage.label(image[y : y + tile_px, x : x + tile_px] > NUCLEI_THRESHOLD)[1]
        for y in range(0, image.shape[0], tile_px)
        for x in range(0, image.shape[1], tile_px)
    )


@pytest.mark.parametrize("preset", ["small", "workshop"])
def test_naive_tiled_error_is_never_zero_and_shrinks_with_the_tile(preset):
    # Nuclei placed on a lattice would let tiles whose side is a multiple of
    # the lattice step count exactly; multiples of 42 px are checked here.
    nuclei = nuclei_image(SIZES[preset]["nuclei_shape"], seed=0)
    whole = ndimage.label(nuclei.image > NUCLEI_THRESHOLD)[1]
    assert whole == nuclei.count
    errors = {
        tile: naive_tile_count(nuclei.image, tile) - whole for tile in (84, 126, 168, 210, 252)
    }
    assert all(error > 0 for error in errors.values()), errors
    assert errors[84] > 2 * errors[252], errors
    # about 1 / tile size: error x tile stays within a factor 2 across the sweep
    scaled = [error * tile for tile, error in errors.items()]
    assert max(scaled) < 2 * min(scaled), errors


def test_positions_are_continuous_and_on_no_grid():
    layout = nuclei_layout((1000, 2000), seed=0)
    for centres in (layout.centre_y, layout.centre_x):
        # Centres on a grid of period p share a phase modulo p: the mean of
        # exp(2 pi i c / p) is then far from 0. Random positions keep it near
        # 1 / sqrt(count) (about 0.04 here) for every period.
        periods = np.arange(8.0, 300.0, 0.25)
        phases = np.exp(2j * np.pi * centres[:, None] / periods[None, :])
        resultant = np.abs(phases.mean(axis=0))
        assert resultant.max() < 0.2, periods[resultant.argmax()]
        fractions = np.round(centres % 1, 3)
        assert len(np.unique(fractions)) > 0.5 * len(centres)


def test_nuclei_fill_the_whole_image_evenly():
    layout = nuclei_layout((1200, 1200), seed=2)
    per_quarter = np.histogram2d(layout.centre_y, layout.centre_x, bins=2, range=[[0, 1200]] * 2)[0]
    assert per_quarter.min() > 0.8 * per_quarter.max()


def test_any_region_equals_the_crop_of_the_whole_image():
    shape = (400, 520)
    whole = nuclei_image(shape, seed=11)
    layout = nuclei_layout(shape, seed=11)
    rng = np.random.default_rng(0)
    for _ in range(20):
        y0, y1 = np.sort(rng.integers(0, shape[0] + 1, 2))
        x0, x1 = np.sort(rng.integers(0, shape[1] + 1, 2))
        rows, cols = slice(y0, y1, int(rng.integers(1, 4))), slice(x0, x1, int(rng.integers(1, 4)))
        image, labels = render_nuclei(layout, rows, cols)
        np.testing.assert_array_equal(image, whole.image[rows, cols])
        np.testing.assert_array_equal(labels, whole.labels[rows, cols])
