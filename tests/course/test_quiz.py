"""The memory quiz: right answers pass, common slips are named, the answer is never shown."""

import math

import numpy as np
import pytest

from nima_lessons.course import quiz

# Independent arithmetic of the question's figures (1024 x 2048 x 100 pixels, 3700 time points).
PIXELS_PER_TIME_POINT = 1024 * 2048 * 100
TB = PIXELS_PER_TIME_POINT * 3700 * 2 / 1e12
FITTING = math.floor(16e9 / (PIXELS_PER_TIME_POINT * (2 + 8)))


def test_questions_state_the_figures_the_checkers_use():
    text = quiz.dataset_question()
    assert all(f in text for f in ["3,700", "1,024", "2,048", "100", "uint16", "answer_tb"])
    assert "16 GB" in quiz.time_points_question() and "float64" in quiz.time_points_question()


@pytest.mark.parametrize("check", [quiz.check_dataset_terabytes, quiz.check_time_points_in_memory])
@pytest.mark.parametrize("unanswered", [None, ...])
def test_an_unanswered_quiz_says_so(check, unanswered):
    feedback = check(unanswered)
    assert not feedback.passed and "not answered yet" in str(feedback)


@pytest.mark.parametrize("answer", [TB, round(TB, 2), round(TB, 1), np.float32(TB)])
def test_dataset_size_right(answer):
    assert quiz.check_dataset_terabytes(answer).passed


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (TB * 1e12 / 2**40, "TiB"),
        (TB / 2, "1 byte"),
        (TB * 4, "8 byte"),
        (TB * 1000, "GB"),
        (TB / 3700, "one time point"),
        (TB * 10, "not the size"),
    ],
)
def test_dataset_size_slips_are_named_without_the_answer(answer, reason):
    feedback = quiz.check_dataset_terabytes(answer)
    assert not feedback.passed and reason in str(feedback)
    assert f"{TB:.2f}" not in str(feedback) and f"{TB:.3g}" not in str(feedback)


def test_time_points_right():
    assert quiz.check_time_points_in_memory(FITTING).passed
    assert quiz.check_time_points_in_memory(float(FITTING)).passed


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (16e9 // (PIXELS_PER_TIME_POINT * 2), "only the input"),
        (16e9 // (PIXELS_PER_TIME_POINT * 8), "only the `float64` copy"),
        (FITTING + 1, "round down"),
        (FITTING - 1, "more fit"),
        (FITTING + 0.5, "whole number"),
        ("seven", "must be a number"),
        (True, "must be a number"),
        (-3, "positive"),
    ],
)
def test_time_points_slips_are_named(answer, reason):
    feedback = quiz.check_time_points_in_memory(answer)
    assert not feedback.passed and reason in str(feedback)
