"""Exercise checkers: right answers pass, wrong ones get specific feedback, never a traceback."""

from functools import partial

import numpy as np
import pytest
from scipy import ndimage

from nima_lessons.course import exercises
from nima_lessons.course.synthetic import mandelbrot_frame, mandelbrot_stack, nuclei_image


def flat_after(n_frames, first_flat):
    frames = np.zeros((n_frames, 4, 4), dtype=np.uint16)
    frames[:first_flat, 1, 2] = 3
    return frames


@pytest.fixture(scope="module")
def nuclei():
    return nuclei_image(shape=(300, 400), seed=1)


def test_feedback_renders_in_text_and_html():
    good = exercises.Feedback(True, "fine")
    bad = exercises.Feedback(False, "off by <1>", ("try again",))
    assert bool(good) and not bool(bad)
    assert str(bad) == "Not yet: off by <1>\n  hint: try again"
    assert "off by &lt;1&gt;" in bad._repr_html_() and "<li>try again</li>" in bad._repr_html_()


@pytest.mark.parametrize("answer", [None, ..., "seven", 3.5, True, [1, 2]])
def test_unusable_answers_get_feedback(answer):
    for feedback in (
        exercises.check_first_uniform_frame(answer, flat_after(20, 7)),
        exercises.check_tiled_count(answer, None, whole_image_count=3),
    ):
        assert isinstance(feedback, exercises.Feedback) and not feedback.passed
        assert feedback.message


def test_first_uniform_frame_on_a_made_up_stack():
    frames = flat_after(50, 17)
    assert exercises.check_first_uniform_frame(17, frames).passed
    assert exercises.check_first_uniform_frame(np.int64(17), frames).passed
    early = exercises.check_first_uniform_frame(16, frames)
    assert not early.passed and "span 0 to 3" in early.message
    late = exercises.check_first_uniform_frame(30, frames)
    assert not late.passed and "not the first" in late.message
    outside = exercises.check_first_uniform_frame(50, frames)
    assert not outside.passed and "outside" in outside.message


def test_first_uniform_frame_on_the_mandelbrot_zoom():
    stack = mandelbrot_stack(n_frames=200_000, shape=(16, 16))
    # Independent reference: a plain scan, frame after frame, with the renderer itself.
    brute = next(i for i in range(200_000) if np.ptp(mandelbrot_frame(i, shape=(16, 16))) == 0)
    assert exercises.check_first_uniform_frame(brute, stack).passed
    assert not exercises.check_first_uniform_frame(brute - 1, stack).passed


def test_overlap_depth_for_a_tophat():
    image = np.random.default_rng(3).random((80, 80))
    radius = 3
    tophat = partial(ndimage.white_tophat, size=2 * radius + 1)
    # Independent reference: the tophat reaches `radius` in the erosion and again in the dilation.
    assert exercises.check_overlap_depth(2 * radius, tophat, image, 20).passed
    short = exercises.check_overlap_depth(radius, tophat, image, 20)
    assert not short.passed and "max error" in short.message
    wasteful = exercises.check_overlap_depth(2 * radius + 3, tophat, image, 20)
    assert not wasteful.passed and "artifact-free" in wasteful.message
    negative = exercises.check_overlap_depth(-1, tophat, image, 20)
    assert not negative.passed


def test_tiled_count_against_the_whole_image(nuclei):
    whole = int(ndimage.label(nuclei.image > nuclei_threshold())[1])
    assert exercises.check_tiled_count(whole, nuclei.image).passed
    over = exercises.check_tiled_count(whole + 5, nuclei.image)
    assert not over.passed and "5 too many" in over.message
    under = exercises.check_tiled_count(whole - 2, nuclei.image, whole_image_count=whole)
    assert not under.passed and "2 too few" in under.message


def nuclei_threshold():
    from nima_lessons.course.synthetic import NUCLEI_THRESHOLD

    return NUCLEI_THRESHOLD


def test_projection_checker_on_right_and_wrong_answers():
    import dask.array as da

    rng = np.random.default_rng(5)
    numpy_stack = rng.integers(0, 1000, (3, 4, 6, 7))
    stack = da.from_array(numpy_stack, chunks=(1, 4, 6, 7))
    reference = numpy_stack.max(axis=1)  # independent: plain numpy
    right = stack.map_blocks(lambda block: block.max(axis=1), drop_axis=1)
    assert np.array_equal(right.compute(), reference)
    assert exercises.check_projection(right, stack).passed
    computed = exercises.check_projection(right.compute(), stack)
    assert not computed.passed and "lazy" in computed.message
    wrong_axis = exercises.check_projection(stack.max(axis=2), stack)
    assert not wrong_axis.passed and "shape" in wrong_axis.message
    mean = exercises.check_projection(stack.mean(axis=1), stack)
    assert not mean.passed and "differ" in mean.message
    rechunked = exercises.check_projection(right.rechunk((3, 6, 7)), stack)
    assert not rechunked.passed and "chunked" in rechunked.message
    assert not exercises.check_projection([1, 2], stack).passed
    assert not exercises.check_projection(None, stack).passed
