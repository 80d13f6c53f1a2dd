"""Time a lesson's own function and measure its peak memory in a fresh Python process.

The benchmark harness runs jobs named ``"module:function"``; functions written in a notebook
have no importable name, so they travel by value (cloudpickle) to the fresh process instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import cloudpickle

from nima_lessons.course.bench.harness import profile_job, run_in_subprocess

__all__ = ["FreshRun", "run_fresh", "run_pickled_job"]


class FreshRun(NamedTuple):
    """What :func:`run_fresh` measured.

    Attributes
    ----------
    seconds : float
        Wall-clock time of the job (the warm-up excluded).
    baseline_bytes : int
        Resident memory of the process just before the job: the interpreter,
        the libraries, and whatever the warm-up left behind.
    peak_bytes : int or None
        Highest resident memory of the process during the job (``None`` on a
        platform that does not report it).
    work_bytes : int or None
        ``peak_bytes - baseline_bytes``: the memory the job itself needed.
    result : object
        What the job returned.
    """

    seconds: float
    baseline_bytes: int
    peak_bytes: int | None
    work_bytes: int | None
    result: Any


def run_fresh(
    job: Callable[..., Any],
    *args: Any,
    warmup: Callable[[], Any] | None = None,
    timeout_seconds: float = 600,
    **kwargs: Any,
) -> FreshRun:
    """Run ``job(*args, **kwargs)`` once in a fresh Python process and measure it.

    A fresh process holds nothing but the interpreter and the libraries the job
    uses, so its peak resident memory above the baseline is what the job needed;
    measured inside a long-lived kernel, earlier work would blur the figure.

    Parameters
    ----------
    job : callable
        Any function, also one defined in a notebook; it and its arguments are
        sent by value, so pass file paths and plain values (not open files,
        locks or large arrays). Its return value comes back.
    *args, **kwargs
        Arguments of ``job``.
    warmup : callable, optional
        Called without arguments in the fresh process before the baseline is
        taken, untimed: a small run of the same work, so that imports, compiled
        kernels and first-use caches are not counted as the job's memory.
    timeout_seconds : float
        The process is stopped after this long.

    Returns
    -------
    FreshRun
        Seconds, baseline, peak and work memory in bytes, and the job's result.

    Raises
    ------
    TypeError
        If ``job`` or ``warmup`` is not callable.
    ValueError
        If the job or its arguments cannot be sent to another process.
    RuntimeError
        If the job raises (the message ends with the fresh process's error) or
        runs past ``timeout_seconds``.

    Examples
    --------
    >>> run = run_fresh(sum, [1, 2, 3])
    >>> run.result, run.seconds >= 0
    (6, True)
    """
    name = getattr(job, "__name__", repr(job))
    if not callable(job):
        raise TypeError(f"job must be a function, got {type(job).__name__}")
    if warmup is not None and not callable(warmup):
        raise TypeError(f"warmup must be a function or None, got {type(warmup).__name__}")
    try:
        payload = cloudpickle.dumps((job, args, kwargs, warmup))
    except Exception as error:  # pickling raises TypeError, PicklingError, AttributeError...
        raise ValueError(
            f"`{name}` cannot be sent to a fresh process ({error}): pass file paths and "
            "plain values, not open files, locks or connections"
        ) from error
    with tempfile.TemporaryDirectory(prefix="nima-lessons-fresh-") as folder:
        job_path, result_path = Path(folder) / "job.pkl", Path(folder) / "result.pkl"
        job_path.write_bytes(payload)
        try:
            figures = run_in_subprocess(
                f"{__name__}:run_pickled_job",
                {"job_path": str(job_path), "result_path": str(result_path)},
                timeout_seconds=timeout_seconds,
            )
        except RuntimeError as error:
            raise RuntimeError(f"`{name}` failed in a fresh process: {error}") from error
        result = cloudpickle.loads(result_path.read_bytes())
    return FreshRun(
        seconds=figures["seconds"],
        baseline_bytes=figures["baseline_rss_bytes"],
        peak_bytes=figures["peak_rss_bytes"],
        work_bytes=figures["work_rss_bytes"],
        result=result,
    )


def run_pickled_job(job_path: str, result_path: str) -> dict:
    """The fresh process's side of :func:`run_fresh`: load the job, warm up, measure, reply.

    Parameters
    ----------
    job_path : str
        File holding the pickled ``(job, args, kwargs, warmup)``.
    result_path : str
        File the job's pickled return value is written to.

    Returns
    -------
    dict
        ``seconds``, ``baseline_rss_bytes``, ``peak_rss_bytes`` and
        ``work_rss_bytes`` (JSON-compatible, for the harness).
    """
    job, args, kwargs, warmup = cloudpickle.loads(Path(job_path).read_bytes())
    if warmup is not None:
        warmup()
    kept: list[Any] = []

    def keep(result: Any) -> dict:
        kept.append(result)
        return {}

    figures = profile_job(lambda: job(*args, **kwargs), repeats=1, record=keep)
    Path(result_path).write_bytes(cloudpickle.dumps(kept[0]))
    return {
        "seconds": figures["seconds"]["median"],
        "baseline_rss_bytes": figures["baseline_rss_bytes"],
        "peak_rss_bytes": figures["peak_rss_bytes"],
        "work_rss_bytes": figures["work_rss_bytes"],
    }
