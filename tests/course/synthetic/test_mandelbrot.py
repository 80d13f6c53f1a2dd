"""Tests of the Mandelbrot zoom stacks and of the search for the first uniform frame."""

import dask
import numpy as np
import pytest

from nima_lessons.course.synthetic import (
    MAX_ITERATIONS,
    first_uniform_frame,
    is_uniform,
    mandelbrot_frame,
    mandelbrot_stack,
    mandelbrot_stack_delayed,
    rendered_frames,
)
from nima_lessons.course.synthetic import mandelbrot as mandelbrot_module

FAST_ZOOM = 1.5  # precision runs out after about a hundred frames


def _reference_frame(index, shape, zoom):
    """Escape counts with plain numpy complex arithmetic, independent of the numba kernel."""
    pixel = 3.0 / zoom**index / shape[1]
    centre = mandelbrot_module.ZOOM_CENTRE
    rows = np.arange(shape[0])[:, None]
    cols = np.arange(shape[1])[None, :]
    c = (centre.real + (cols - (shape[1] - 1) / 2) * pixel) + 1j * (
        centre.imag - (rows - (shape[0] - 1) / 2) * pixel
    )
    z = np.zeros_like(c)
    counts = np.zeros(shape, dtype=np.uint16)
    active = np.ones(shape, dtype=bool)
    for _ in range(MAX_ITERATIONS):
        z[active] = z[active] ** 2 + c[active]
        counts[active] += 1
        active &= z.real**2 + z.imag**2 <= 4.0
    return counts


@pytest.mark.parametrize("index", [0, 40, 300])
def test_frame_matches_numpy_reference(index):
    frame = mandelbrot_frame(index, shape=(24, 40))
    reference = _reference_frame(index, (24, 40), mandelbrot_module.ZOOM_PER_LEVEL)
    assert frame.dtype == np.uint16 and frame.shape == (24, 40)
    # escape counts may differ by one where |z| lands within rounding of 2
    assert np.mean(frame == reference) > 0.99
    assert np.abs(frame.astype(int) - reference).max() <= 1


def test_big_stack_is_one_layer_and_builds_without_rendering():
    before = rendered_frames()
    stack = mandelbrot_stack(200_000, shape=(512, 512))
    assert stack.shape == (200_000, 512, 512)
    assert stack.dtype == np.uint16
    assert stack.chunksize == (1, 512, 512)
    assert len(stack.dask.layers) == 1
    assert rendered_frames() == before


def test_computing_one_frame_renders_exactly_one():
    stack = mandelbrot_stack(200_000, shape=(32, 32))
    before = rendered_frames()
    frame = stack[12_345].compute(scheduler="synchronous")
    assert rendered_frames() == before + 1
    np.testing.assert_array_equal(frame, mandelbrot_frame(12_345, (32, 32)))


def test_strided_selection_renders_only_selected_frames():
    stack = mandelbrot_stack(200_000, shape=(16, 16))
    before = rendered_frames()
    frames = stack[0:20_000:1000, ::2, ::2].compute()
    assert frames.shape == (20, 8, 8)
    assert rendered_frames() == before + 20


def test_delayed_and_blockwise_stacks_are_equal():
    n_frames, shape = 400, (20, 30)
    blockwise = mandelbrot_stack(n_frames, shape)
    delayed = mandelbrot_stack_delayed(n_frames, shape)
    assert delayed.shape == blockwise.shape and delayed.dtype == blockwise.dtype
    assert len(delayed.dask.layers) > n_frames  # one layer per frame, at least
    sample = [0, 1, 57, 199, 398, 399]
    np.testing.assert_array_equal(
        *dask.compute(blockwise[sample], delayed[sample], scheduler="synchronous")
    )


def test_frames_zoom_in():
    shallow, deep = mandelbrot_frame(0, (64, 64)), mandelbrot_frame(200, (64, 64))
    assert shallow.min() <= 2 and shallow.max() == MAX_ITERATIONS  # whole set in view
    assert not is_uniform(deep) and deep.min() > shallow.min()


def _brute_force_first_uniform(frames):
    flags = [is_uniform(frame) for frame in frames]
    first = flags.index(True)
    return first, all(flags[first:])


def test_first_uniform_frame_matches_brute_force_scan():
    stack = mandelbrot_stack(200, shape=(16, 16), zoom_per_level=FAST_ZOOM)
    frames = stack.compute()
    expected, stays_uniform = _brute_force_first_uniform(frames)
    assert stays_uniform and 50 < expected < 150
    found = first_uniform_frame(stack)
    assert found.index == expected
    assert found.frames_computed <= 2 * np.log2(expected) + 3


def test_first_uniform_frame_on_plain_arrays():
    for first in [0, 1, 2, 3, 377, 998, 999]:
        frames = np.zeros((1000, 2, 2))
        frames[:first, 0, 0] = 5
        assert first_uniform_frame(frames).index == first
    frames = np.zeros((10, 2, 2))
    frames[:, 0, 0] = 1
    with pytest.raises(ValueError, match="no uniform frame"):
        first_uniform_frame(frames)
    assert first_uniform_frame(frames, tolerance=1).index == 0


def test_default_stack_turns_uniform_in_the_thousands():
    stack = mandelbrot_stack(200_000, shape=(16, 16))
    found = first_uniform_frame(stack)
    assert 1000 < found.index < 10_000
    assert found.frames_computed < 40
    assert not is_uniform(stack[found.index - 1].compute())
    assert is_uniform(stack[found.index + 500].compute())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mandelbrot_stack(0), "n_frames"),
        (lambda: mandelbrot_stack(10, shape=(0, 5)), r"shape\[0\]"),
        (lambda: mandelbrot_stack(10, zoom_per_level=1.0), "zoom_per_level"),
        (lambda: mandelbrot_stack_delayed(-1), "n_frames"),
        (lambda: mandelbrot_frame(-2), "index"),
        (lambda: first_uniform_frame(np.zeros((0, 2, 2))), "no frames"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_deepest_frames_render_as_uniform():
    stack = mandelbrot_stack(n_frames=200_000, shape=(8, 8))
    for index in (71_500, 150_000, 199_999):
        frame = stack[index].compute()
        assert frame.shape == (8, 8) and frame.min() == frame.max()
