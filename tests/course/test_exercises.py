"""Exercise checkers: a right method passes; hard-coded answers, right numbers reached the
wrong way and broken functions get specific feedback, never a traceback.

Every solution file of ``notebooks/solutions`` is run through its checker here, so the
solutions stay correct although the stored notebooks never execute them.
"""

import runpy
from functools import partial
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from nima_lessons import counting, labels, tiling
from nima_lessons.counting import NUCLEI_THRESHOLD
from nima_lessons.course import exercises
from nima_lessons.course.synthetic import first_uniform_frame, nuclei_dask, nuclei_image

SOLUTIONS = Path(__file__).resolve().parents[2] / "notebooks" / "solutions"

#: checker, the function each solution file defines, the lesson's answer values of old
CHECKERS = {
    "01_first_flat_frame": (exercises.check_first_uniform_frame, "first_flat_frame", 3831),
    "03_max_projection": (exercises.check_projection, "max_projection", None),
    "04_tiled_background_removal": (
        exercises.check_background_removal,
        "remove_background_tiled",
        30,
    ),
    "05_exact_tiled_count": (exercises.check_tiled_count, "count_exact", 737),
    "05_naive_error_sweep": (exercises.check_error_sweep, "naive_error_sweep", 300),
}


@pytest.fixture(scope="module")
def lesson_nuclei():
    """A small stand-in for the lesson's nuclei image, as the notebook names it."""
    image, _, count = nuclei_dask((400, 600), (100, 100), seed=3)
    return {"image": image, "whole_count": count}


def solution(name: str, lesson_nuclei) -> dict:
    """Run a solution file as %load puts it in the notebook; return its namespace."""
    import matplotlib

    matplotlib.use("Agg")
    return runpy.run_path(str(SOLUTIONS / f"{name}.py"), init_globals=dict(lesson_nuclei))


def stub(tiles, *args):
    """An untouched answer cell: a function whose body is still a comment."""


def passed(feedback) -> bool:
    assert isinstance(feedback, exercises.Feedback) and feedback.message
    return feedback.passed


# ---------------------------------------------------------------- common to every checker


def test_every_solution_file_has_a_checker():
    assert sorted(p.stem for p in SOLUTIONS.glob("*.py")) == sorted(CHECKERS)


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_solution_passes_its_checker(name, lesson_nuclei):
    check, function, _ = CHECKERS[name]
    feedback = check(solution(name, lesson_nuclei)[function])
    assert feedback.passed, str(feedback)
    assert str(feedback).startswith("Correct: ")


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_untouched_answer_cell_is_not_yet_solved(name):
    check = CHECKERS[name][0]
    feedback = check(stub)
    assert not feedback.passed and not feedback.answered
    assert str(feedback).startswith("Not yet solved: ") and "returns None" in feedback.message


@pytest.mark.parametrize("name", sorted(CHECKERS))
@pytest.mark.parametrize("answer", [None, "seven", 3.5, True, [1, 2], np.arange(3)])
def test_answers_that_are_not_functions_never_pass(name, answer):
    check = CHECKERS[name][0]
    feedback = check(answer)
    assert not passed(feedback)
    assert "dask" not in str(feedback).lower() or answer is None


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_lessons_old_answer_value_never_passes(name):
    check, _, value = CHECKERS[name]
    if value is None:
        return
    for answer in (value, np.int64(value), float(value)):
        feedback = check(answer)
        assert not passed(feedback) and "not a function" in feedback.message
    # nor does a function that returns it, whatever it is given
    assert not passed(check(lambda *args: value))


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_a_function_that_raises_gets_feedback(name):
    def broken(*args):
        raise KeyError("no such column")

    feedback = CHECKERS[name][0](broken)
    assert not passed(feedback)
    assert "raised KeyError" in feedback.message and "no such column" in feedback.message


def test_feedback_renders_in_text_and_html():
    good = exercises.Feedback(True, "fine")
    bad = exercises.Feedback(False, "off by <1>", ("try again",))
    untouched = exercises.Feedback(False, "nothing yet", answered=False)
    assert bool(good) and not bool(bad) and not bool(untouched)
    assert str(bad) == "Not yet: off by <1>\n  hint: try again"
    assert str(untouched) == "Not yet solved: nothing yet"
    assert "off by &lt;1&gt;" in bad._repr_html_() and "<li>try again</li>" in bad._repr_html_()
    assert "<b>Not yet solved:</b>" in untouched._repr_html_()


# ---------------------------------------------------------------- lesson 01


def test_the_checkers_stacks_are_flat_exactly_from_the_frame_they_declare():
    # independent reference: a plain numpy scan of every frame
    for n_frames, first_flat, shape, seed in (*exercises._FLAT_STACKS, (600, 317, (8, 8), 4)):
        frames = np.stack(
            [exercises._flat_frame(i, first_flat, shape, seed) for i in range(n_frames)]
        )
        flat = frames.max(axis=(1, 2)) == frames.min(axis=(1, 2))
        assert flat.argmax() == first_flat and flat[first_flat:].all()
        assert len(np.unique(frames[first_flat:, 0, 0])) > 1 or n_frames - first_flat < 3


def search(stack, is_flat):
    """Binary search with a given flatness test."""
    varying, flat = -1, len(stack) - 1
    while flat - varying > 1:
        middle = (varying + flat) // 2
        if is_flat(stack[middle].compute()):
            flat = middle
        else:
            varying = middle
    return flat


def test_a_binary_search_passes():
    assert exercises.check_first_uniform_frame(lambda s: search(s, lambda f: np.ptp(f) == 0))


@pytest.mark.slow
def test_a_frame_by_frame_scan_finds_the_frame_but_computes_too_many():
    def scan(stack):
        return next(i for i in range(len(stack)) if np.ptp(stack[i].compute()) == 0)

    feedback = exercises.check_first_uniform_frame(scan)
    assert not feedback.passed
    assert "the index is right" in feedback.message and "1,218 of 20,000 frames" in feedback.message


@pytest.mark.slow
def test_a_runaway_search_is_stopped():
    def everything(stack):
        frames = stack.compute()
        return int(np.argmax(frames.max(axis=(1, 2)) == frames.min(axis=(1, 2))))

    feedback = exercises.check_first_uniform_frame(everything)
    assert not feedback.passed and "the checker stopped it" in feedback.message


def test_delegating_to_the_package_search_does_not_pass():
    def helper(stack):
        return first_uniform_frame(stack).index

    for func in (first_uniform_frame, lambda s: first_uniform_frame(s).index, lambda s: helper(s)):
        feedback = exercises.check_first_uniform_frame(func)
        assert not feedback.passed and "first_uniform_frame" in feedback.message


def test_looking_at_a_few_pixels_only_is_caught():
    feedback = exercises.check_first_uniform_frame(
        lambda s: search(s, lambda f: f[0, 0] == f[-1, -1])
    )
    assert not feedback.passed and "still varies" in feedback.message
    assert "0.0" not in feedback.message


def test_a_first_frame_that_is_already_flat_is_found():
    def from_one(stack):  # never looks at frame 0
        return search(stack[1:], lambda f: np.ptp(f) == 0) + 1

    feedback = exercises.check_first_uniform_frame(from_one)
    assert not feedback.passed
    assert "so is the one before it (frame 0)" in feedback.message
    assert "uniform uniform" not in feedback.message and "flat flat" not in feedback.message


def test_the_checker_does_not_count_against_the_lessons_render_counter():
    from nima_lessons.course.synthetic import rendered_frames

    before = rendered_frames()
    exercises.check_first_uniform_frame(lambda s: search(s, lambda f: np.ptp(f) == 0))
    assert rendered_frames() == before


# ---------------------------------------------------------------- lesson 03


def block_max(stack):
    return stack.map_blocks(lambda block: block.max(axis=1), drop_axis=1)


def test_lazy_projections_pass():
    assert exercises.check_projection(block_max)
    assert exercises.check_projection(lambda stack: stack.max(axis=1))


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (lambda s: da.from_array(s.compute().max(axis=1), chunks=(1, -1, -1)), "already computed"),
        (lambda s: da.from_array(np.asarray(s).max(axis=1)), "already computed"),
        (lambda s: s.compute().max(axis=1), "computed numpy array"),
        (lambda s: s.max(axis=2), "shape"),
        (lambda s: s.mean(axis=1), "differ from the maximum"),
        (lambda s: s.rechunk((2, -1, -1, -1)).max(axis=1), "computed time points [2, 3]"),
    ],
)
def test_projections_reached_the_wrong_way_fail(func, expected):
    feedback = exercises.check_projection(func)
    assert not feedback.passed and expected in feedback.message


def test_a_single_wrong_pixel_is_reported_as_such():
    def off_by_one(stack):
        def project(block):
            out = block.max(axis=1)
            out[:, 0, 0] += 1
            return out

        return stack.map_blocks(project, drop_axis=1)

    feedback = exercises.check_projection(off_by_one)
    # one pixel per time point, and a percentage that does not round to zero
    assert not feedback.passed and "5 of 600 pixels (0.83 %)" in feedback.message


# ---------------------------------------------------------------- lesson 04


def tophat_with(depth, **options):
    def remove_background_tiled(tiles, size):
        return tiles.map_overlap(
            ndimage.white_tophat, depth=depth(size), size=size, dtype=tiles.dtype, **options
        )

    return remove_background_tiled


def test_the_checker_asks_for_the_measured_smallest_overlap():
    # independent of the checker's theory: measured with plain map_overlap against scipy
    for shape, tile, size, seed in exercises._TOPHAT_CASES:
        image = exercises._uneven_nuclei(shape, seed)
        whole = ndimage.white_tophat(image, size=size)
        tiles = da.from_array(image, chunks=tile)
        needed = tiling.overlap_for("white_tophat", size=size)
        for depth, exact in ((needed, True), (needed - 1, False)):
            tiled = tiles.map_overlap(ndimage.white_tophat, depth=depth, boundary="none", size=size)
            assert np.array_equal(tiled.compute(), whole) == exact


def test_the_smallest_overlap_passes_with_either_lifting():
    assert exercises.check_background_removal(tophat_with(lambda s: 2 * (s // 2), boundary="none"))
    assert exercises.check_background_removal(
        lambda tiles, size: tiling.tiled_apply(
            partial(ndimage.white_tophat, size=size), tiles, tiles.chunks, size - 1
        )
    )


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (tophat_with(lambda s: 30, boundary="none"), "margins of about 30 px where 20 px"),
        (tophat_with(lambda s: s - 2, boundary="none"), "differ from the whole-image top-hat"),
        (tophat_with(lambda s: s // 2, boundary="none"), "inside the image"),
        (tophat_with(lambda s: s + 1, boundary="none"), "margins of about 22 px where 20 px"),
        (tophat_with(lambda s: s - 1, boundary=0), "only near the image border"),
        (
            lambda t, size: da.from_array(ndimage.white_tophat(t.compute(), size=size), t.chunks),
            "already computed",
        ),
        (
            lambda t, size: (
                t.rechunk(-1).map_blocks(ndimage.white_tophat, size=size).rechunk(t.chunks)
            ),
            "whole image at once",
        ),
        (lambda t, size: ndimage.white_tophat(np.asarray(t), size=size), "numpy array"),
        (
            lambda t, size: t.map_overlap(
                ndimage.white_tophat,
                depth=tiling.overlap_for("white_tophat", size=size),
                boundary="none",
                size=size,
            ),
            "tiling.overlap_for",
        ),
    ],
)
def test_tophats_reached_the_wrong_way_fail(func, expected):
    feedback = exercises.check_background_removal(func)
    assert not feedback.passed and expected in feedback.message, str(feedback)


# ---------------------------------------------------------------- lesson 05: exact count


def test_the_checkers_nuclei_counts_agree_with_the_ground_truth():
    for shape, tile, seed in exercises._COUNT_CASES:
        tiles, image, count = exercises._nuclei_tiles(shape, tile, seed, exercises._Reads())
        assert count == nuclei_image(shape, seed=seed).count > 100
        np.testing.assert_array_equal(tiles.compute(), image)


@pytest.mark.parametrize(
    "func",
    [
        lambda t: counting.count_tiled(t, "centroid"),
        lambda t: counting.count_tiled(t, "global", compute=True),
        lambda t: labels.label(t > NUCLEI_THRESHOLD)[1],
    ],
)
def test_exact_tiled_counts_pass(func):
    assert exercises.check_tiled_count(func)


def test_counts_reached_the_wrong_way_fail():
    naive = exercises.check_tiled_count(lambda t: counting.count_tiled(t, "naive"))
    assert not naive.passed and "too many" in naive.message
    whole = exercises.check_tiled_count(lambda t: counting.count_nuclei(np.asarray(t)))
    assert not whole.passed and "whole image at once" in whole.message
    one_tile = exercises.check_tiled_count(
        lambda t: counting.count_tiled(t.rechunk(-1), "naive", compute=True)
    )
    assert not one_tile.passed and "whole image at once" in one_tile.message
    dropped = exercises.check_tiled_count(
        lambda t: counting.count_tiled(t, "global", compute=True) - 3
    )
    assert not dropped.passed and "too few" in dropped.message


def test_a_count_that_ignores_the_image_fails_on_the_second_image():
    first_truth = nuclei_image(exercises._COUNT_CASES[0][0], seed=exercises._COUNT_CASES[0][2])
    feedback = exercises.check_tiled_count(lambda t: first_truth.count)
    assert not feedback.passed and "whatever the image" in feedback.message


def test_half_counts_are_explained_without_a_dask_hint():
    feedback = exercises.check_tiled_count(lambda t: 748.5)
    assert not feedback.passed and "748.5, not a whole number" in feedback.message
    assert "dask" not in str(feedback) and "compute" not in str(feedback)
    lazy = exercises.check_tiled_count(lambda t: "seven")
    assert not lazy.passed and "compute" not in str(lazy)


# ---------------------------------------------------------------- lesson 05: error sweep


def test_the_checkers_sweep_reference_is_the_naive_count():
    # the checker's scipy loop against the package's lazy naive count
    shape, _, tile_sizes, seed = exercises._SWEEP_CASE
    image = nuclei_image(shape, seed=seed).image
    whole = ndimage.label(image > NUCLEI_THRESHOLD)[1]
    expected = exercises._naive_errors(image, tile_sizes, whole)
    for tile in tile_sizes:
        naive = counting.count_tiled(image, "naive", chunks=tile, compute=True)
        assert expected[tile] == naive - whole > 0


def lazy_sweep(tiles, sizes, whole_count):
    return {t: counting.count_map(tiles.rechunk(t)).sum() - whole_count for t in sizes}


def test_sweeps_as_functions_pass_in_any_table_form():
    assert exercises.check_error_sweep(lazy_sweep)
    assert exercises.check_error_sweep(
        lambda t, sizes, w: pd.Series({s: int(v) for s, v in lazy_sweep(t, sizes, w).items()})
    )
    assert exercises.check_error_sweep(
        lambda t, sizes, w: pd.DataFrame(
            {"tile_px": sizes, "error": [int(v) for v in lazy_sweep(t, sizes, w).values()]}
        )
    )


def test_a_lazy_table_of_the_lessons_image_passes(lesson_nuclei):
    image, count = lesson_nuclei["image"], lesson_nuclei["whole_count"]
    table = lazy_sweep(image, [84, 126, 168, 252], count)
    feedback = exercises.check_error_sweep(table, image, count)
    assert feedback.passed and "1 / tile size" in feedback.message


def test_sweeps_reached_the_wrong_way_fail(lesson_nuclei):
    image, count = lesson_nuclei["image"], lesson_nuclei["whole_count"]
    table = lazy_sweep(image, [84, 126, 168, 252], count)
    numbers = {t: int(v.compute()) for t, v in table.items()}
    plain = exercises.check_error_sweep(numbers, image, count)
    assert not plain.passed and "plain numbers" in plain.message
    wrong_image = exercises.check_error_sweep(table, image[:, :300], count)
    assert not wrong_image.passed and "not computed from the image" in wrong_image.message
    few = exercises.check_error_sweep(lazy_sweep(image, [84, 100], count), image, count)
    assert not few.passed and "at least four tile sizes" in few.message
    constant = exercises.check_error_sweep(lambda t, sizes, w: {s: 5 for s in sizes})
    assert not constant.passed and "differ from the naive" in constant.message

    def in_memory(tiles, sizes, whole):
        pixels = tiles.compute()
        return {
            t: sum(
                counting.count_nuclei(pixels[y : y + t, x : x + t])
                for y in range(0, pixels.shape[0], t)
                for x in range(0, pixels.shape[1], t)
            )
            - whole
            for t in sizes
        }

    memory = exercises.check_error_sweep(in_memory)
    assert not memory.passed and "the whole image" in memory.message
    missing = exercises.check_error_sweep(lambda t, sizes, w: lazy_sweep(t, sizes[:2], w))
    assert not missing.passed and "no error for tile sizes" in missing.message


def test_the_sweep_reads_every_tile_size_of_the_checkers_image():
    seen = []

    def recording(tiles, sizes, whole):
        seen.append((tiles.shape, tuple(sizes)))
        return lazy_sweep(tiles, sizes, whole)

    exercises.check_error_sweep(recording)
    shape, _, tile_sizes, _ = exercises._SWEEP_CASE
    assert seen == [(shape, tile_sizes)]
    assert dask.config.get("scheduler", None) != "sync"  # the checker leaves the scheduler alone
