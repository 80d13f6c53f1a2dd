"""Measuring on this machine: repeated timings, the peak memory of a fresh process, the machine.

Times are summarised as median, min and max of repeats; peak memory is the resident-set
high-water mark of a fresh Python process that runs one job and nothing else.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "MEGABYTE",
    "PACKAGES",
    "Work",
    "allocation_job",
    "check_repeats",
    "child_env",
    "copy_bandwidth",
    "machine_info",
    "peak_rss_bytes",
    "profile_job",
    "profile_prepared",
    "run_in_subprocess",
    "summarize",
    "time_repeats",
    "usable_cores",
]

#: Distributions whose versions are recorded with every result.
PACKAGES = tuple(
    "nima-lessons numpy scipy dask distributed dask-image xarray zarr numba scikit-image psutil "
    "connected-components-3d opencv-python-headless opencv-python".split()
)

#: Bytes in one megabyte, the unit of every throughput figure (MB/s).
MEGABYTE = 1_000_000


class Work(NamedTuple):
    """A job ready to be measured: what to repeat, what to run once first, what to keep.

    Attributes
    ----------
    run : callable
        Called without arguments once per timed repeat.
    warmup : callable, optional
        Called once, untimed, first (just-in-time compilation, first reads).
    record : callable, optional
        Called with the result of the last repeat; returns further figures
        (a count, an error) for the row's ``metrics``.
    """

    run: Callable[[], Any]
    warmup: Callable[[], Any] | None = None
    record: Callable[[Any], Mapping[str, Any]] | None = None


def summarize(values: list[float]) -> dict:
    """Return the median, min and max of repeated measurements.

    Parameters
    ----------
    values : list of float
        One value per repeat, at least one.

    Returns
    -------
    dict
        ``median``, ``min``, ``max``, ``n`` and ``values`` (in the order taken).

    Raises
    ------
    ValueError
        If ``values`` is empty.

    Examples
    --------
    >>> summarize([3.0, 1.0, 2.0])["median"]
    2.0
    """
    values = [float(value) for value in values]
    if not values:
        raise ValueError("summarize needs at least one measured value, got none")
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def check_repeats(repeats: object) -> int:
    """Return ``repeats`` if it is a positive integer, else raise ``ValueError``."""
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    return int(repeats)


def time_repeats(
    work: Callable[[], Any],
    repeats: int,
    warmup: Callable[[], Any] | None = None,
    record: Callable[[Any], Any] | None = None,
) -> dict:
    """Time ``work()`` ``repeats`` times with a monotonic wall clock.

    Parameters
    ----------
    work : callable
        Called without arguments; its result is dropped before the next
        repeat, so that two results never coexist in memory.
    repeats : int
        Number of timed calls, at least 1.
    warmup : callable, optional
        Called once, untimed, before the first repeat.
    record : callable, optional
        Called with the result of the last repeat, before it is dropped.

    Returns
    -------
    dict
        :func:`summarize` of the wall-clock seconds.

    Examples
    --------
    >>> time_repeats(lambda: sum(range(100)), repeats=3)["n"]
    3
    """
    repeats = check_repeats(repeats)
    if warmup is not None:
        warmup()
    seconds = []
    for repeat in range(repeats):
        # The young generations hold the garbage of the last repeat; a full collection
        # would cost more than a tiny job (profile_job makes one before its baseline).
        gc.collect(1)
        start = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - start)
        if record is not None and repeat == repeats - 1:
            record(result)
        del result
    return summarize(seconds)


def peak_rss_bytes() -> int | None:
    """Return the resident-set high-water mark of this process, in bytes.

    On Linux this is ``VmHWM`` of ``/proc/self/status``, which starts afresh at
    ``exec``; ``getrusage``'s ``ru_maxrss`` would keep the size of the parent
    that forked the process. Elsewhere ``ru_maxrss`` (bytes on macOS) or the
    peak working set (Windows); ``None`` where the platform offers no peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return getattr(psutil.Process().memory_info(), "peak_wset", None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def profile_job(
    work: Callable[[], Any],
    repeats: int,
    warmup: Callable[[], Any] | None = None,
    record: Callable[[Any], Mapping[str, Any]] | None = None,
) -> dict:
    """Time a job and record the memory it needs, inside the process running it.

    Call it once the input is loaded: the baseline then holds the interpreter,
    the libraries and the input, and the peak adds what the work needed.

    Parameters
    ----------
    work, repeats, warmup
        As in :func:`time_repeats`.
    record : callable, optional
        Called with the last result; its figures are returned as ``metrics``.

    Returns
    -------
    dict
        ``seconds`` (a summary), ``baseline_rss_bytes``, ``peak_rss_bytes``,
        ``work_rss_bytes`` (peak - baseline) and ``metrics``.
    """
    import psutil

    metrics: dict[str, Any] = {}
    kept: list[Any] = []
    gc.collect()
    with contextlib.suppress(OSError):  # lower the high-water mark to now, where Linux allows it
        Path("/proc/self/clear_refs").write_text("5")
    baseline = int(psutil.Process().memory_info().rss)
    seconds = time_repeats(work, repeats, warmup=warmup, record=kept.append if record else None)
    peak = peak_rss_bytes()
    if record is not None:
        metrics.update(record(kept.pop()))
    return {
        "seconds": seconds,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak,
        "work_rss_bytes": None if peak is None else max(peak - baseline, 0),
        "metrics": metrics,
    }


def _split_target(target: str) -> list[str]:
    if target.count(":") != 1:
        raise ValueError(f"target must look like 'package.module:function', got {target!r}")
    return target.split(":")


def _import(target: str) -> Callable[..., Any]:
    module_name, function_name = _split_target(target)
    return getattr(importlib.import_module(module_name), function_name)


def profile_prepared(target: str, kwargs: dict, repeats: int) -> dict:
    """Prepare a job with ``target(**kwargs)`` (it loads its input) and profile it here.

    The body of a fresh-process job: ``target`` returns a :class:`Work` or a
    plain callable, which :func:`profile_job` then measures; any other value
    stands for work already done by ``target`` (only its memory counts).

    Examples
    --------
    >>> job = {"target": "nima_lessons.course.bench.harness:summarize", "repeats": 2,
    ...        "kwargs": {"values": [1.0]}}
    >>> run_in_subprocess("nima_lessons.course.bench.harness:profile_prepared", job)["seconds"]["n"]
    2
    """
    prepared = _import(target)(**kwargs)
    if not isinstance(prepared, Work):
        prepared = Work(prepared if callable(prepared) else lambda: prepared)
    return profile_job(prepared.run, repeats, prepared.warmup, prepared.record)


def run_in_subprocess(target: str, kwargs: dict, timeout_seconds: float = 900) -> dict:
    """Run ``target(**kwargs)`` in a fresh Python process and return its result.

    A fresh process starts with an empty heap, so its resident-set high-water
    mark is the peak memory of that one job.

    Parameters
    ----------
    target : str
        ``"package.module:function"`` taking JSON-compatible keyword arguments
        and returning a JSON-compatible dict.
    kwargs : dict
        Keyword arguments for ``target``.
    timeout_seconds : float
        Kill the process after this long.

    Returns
    -------
    dict
        What ``target`` returned, with the process's ``peak_rss_bytes`` added
        when the job did not report it.

    Raises
    ------
    ValueError
        If ``target`` is not of the form ``"module:function"``.
    RuntimeError
        If the process fails or times out; the message ends with its stderr.
    """
    _split_target(target)
    with tempfile.TemporaryDirectory(prefix="nima-lessons-bench-") as folder:
        spec_path, result_path = Path(folder) / "job.json", Path(folder) / "result.json"
        spec_path.write_text(json.dumps({"target": target, "kwargs": kwargs}))
        command = [sys.executable, "-c", _CHILD_COMMAND, str(spec_path), str(result_path)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_seconds, env=child_env()
            )
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(
                f"benchmark job {target} did not finish in {timeout_seconds} s"
            ) from error
        if done.returncode != 0 or not result_path.is_file():
            tail = (done.stderr or done.stdout or "").strip()[-2000:]
            raise RuntimeError(f"benchmark job {target} failed (exit {done.returncode}):\n{tail}")
        return json.loads(result_path.read_text())


# Started with -c rather than -m: running a module of an already imported
# package as __main__ would load it twice.
_CHILD_COMMAND = (
    "import sys; from nima_lessons.course.bench.harness import _child_main; "
    "sys.exit(_child_main(sys.argv[1:]))"
)


def child_env() -> dict:
    """Return the environment of a child Python process: this one's, this package first."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


def _child_main(argv: list[str]) -> int:
    """Entry point of a job process: read the job, run it, write its result."""
    spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text())
    result = _import(spec["target"])(**spec["kwargs"])
    result.setdefault("peak_rss_bytes", peak_rss_bytes())
    Path(result_path).write_text(json.dumps(result))
    return 0


def allocation_job(n_bytes: int, repeats: int = 1) -> dict:
    """Fill and free an array of ``n_bytes``: calibrates the peak-memory measurement.

    Run with :func:`run_in_subprocess`, its ``work_rss_bytes`` is about ``n_bytes``.
    """
    return profile_job(lambda: np.ones(int(n_bytes), dtype=np.uint8).sum(), repeats)


def copy_bandwidth(n_bytes: int = 256 * MEGABYTE, repeats: int = 5) -> dict:
    """Measure how fast this machine copies a large array in memory.

    A pass over the data cannot run faster than reading it once and writing it
    once: the physical reference of memory-bound work.

    Parameters
    ----------
    n_bytes : int
        Size of the copied array, far above the CPU caches.
    repeats : int
        Timed copies, after one untimed copy that maps the destination pages.

    Returns
    -------
    dict
        ``n_bytes`` and ``MBps``, a :func:`summarize` of the bytes copied per
        second in MB/s (bytes of input per second, as every throughput here).

    Examples
    --------
    >>> copy_bandwidth(n_bytes=8_000_000, repeats=2)["MBps"]["median"] > 0
    True
    """
    source = np.ones(int(n_bytes) // 8, dtype=np.float64)
    target = np.empty_like(source)
    seconds = time_repeats(
        lambda: np.copyto(target, source), repeats, warmup=lambda: np.copyto(target, source)
    )
    rates = [source.nbytes / MEGABYTE / value for value in seconds["values"]]
    return {"n_bytes": int(source.nbytes), "MBps": summarize(rates)}


def package_versions() -> dict[str, str | None]:
    """Return the installed version of each distribution in :data:`PACKAGES`."""
    versions: dict[str, str | None] = dict.fromkeys(PACKAGES)
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def usable_cores() -> int:
    """Return the number of CPU cores dask uses (affinity and container limits applied)."""
    from dask.system import CPU_COUNT

    return int(CPU_COUNT)


def machine_info(copy_bytes: int = 256 * MEGABYTE, copy_repeats: int = 5) -> dict:
    """Describe the machine the figures come from.

    Parameters
    ----------
    copy_bytes, copy_repeats
        Size and repeats of the :func:`copy_bandwidth` measurement.

    Returns
    -------
    dict
        ``platform``, ``python``, ``processor``, ``cores_logical``,
        ``cores_physical``, ``cores_usable``, ``memory_total_bytes``,
        ``memory_available_bytes``, ``load_average`` (1, 5, 15 min, where
        known: a busy machine gives noisy times), ``packages`` and
        ``copy_bandwidth``.
    """
    import psutil

    memory = psutil.virtual_memory()
    try:
        load: list[float] | None = list(os.getloadavg())
    except (AttributeError, OSError):
        load = None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_usable": usable_cores(),
        "memory_total_bytes": int(memory.total),
        "memory_available_bytes": int(memory.available),
        "load_average": load,
        "packages": package_versions(),
        "copy_bandwidth": copy_bandwidth(copy_bytes, copy_repeats),
    }
