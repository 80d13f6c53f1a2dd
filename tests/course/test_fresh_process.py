"""run_fresh: a function defined anywhere runs in a fresh process, which measures it.

The references are independent of the measurement: the number of bytes a job allocates, the
process id of the test process, and values computed here.
"""

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from nima_lessons.course.fresh_process import FreshRun, run_fresh

MEGABYTES_200 = 200_000_000
clear_refs = Path("/proc/self/clear_refs")
peak_resettable = sys.platform.startswith("linux") and os.access(clear_refs, os.W_OK)


def test_a_nested_function_runs_elsewhere_with_its_arguments_and_returns():
    offset = 7  # captured by value, as a notebook's variables are

    def job(values, scale=1):
        return {"pid": os.getpid(), "total": (sum(values) + offset) * scale}

    run = run_fresh(job, [1, 2, 3], scale=10)
    assert isinstance(run, FreshRun)
    assert run.result["total"] == 130
    assert run.result["pid"] != os.getpid()
    assert run.seconds >= 0 and run.baseline_bytes > 0


def test_the_memory_a_job_allocates_shows_as_its_work():
    def allocate(n_bytes):
        return int(np.ones(n_bytes, dtype=np.uint8).sum())

    run = run_fresh(allocate, MEGABYTES_200)
    assert run.result == MEGABYTES_200
    assert 0.9 * MEGABYTES_200 <= run.work_bytes <= 1.5 * MEGABYTES_200
    assert run.peak_bytes >= run.baseline_bytes + run.work_bytes - 1


@pytest.mark.skipif(not peak_resettable, reason="the peak can be reset on Linux only")
def test_the_warmup_is_not_counted_as_work():
    def allocate(n_bytes):
        return int(np.ones(n_bytes, dtype=np.uint8).sum())

    run = run_fresh(allocate, MEGABYTES_200 // 4, warmup=lambda: allocate(2 * MEGABYTES_200))
    assert 0.9 * MEGABYTES_200 // 4 <= run.work_bytes <= 1.5 * MEGABYTES_200 // 4


def test_an_error_in_the_job_names_the_job_and_the_error():
    def broken():
        raise ZeroDivisionError("no frames to average")

    with pytest.raises(RuntimeError, match="`broken` failed in a fresh process") as error:
        run_fresh(broken)
    assert "no frames to average" in str(error.value)


def test_what_cannot_travel_is_refused_in_one_line():
    with pytest.raises(ValueError, match="cannot be sent to a fresh process"):
        run_fresh(len, threading.Lock())


@pytest.mark.parametrize("job, warmup", [(42, None), (len, "first")])
def test_non_functions_are_refused(job, warmup):
    with pytest.raises(TypeError, match="must be a function"):
        run_fresh(job, [1], warmup=warmup)
