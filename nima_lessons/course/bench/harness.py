"""Timing, peak-memory and machine measurements shared by every benchmark case.

Times are summarised as median, min and max of repeats; peak memory is the
resident-set high-water mark of a fresh Python process that runs one job.
"""

from __future__ import annotations

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
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: Distributions whose versions are recorded with every result.
PACKAGES = (
    "nima-lessons",
    "numpy",
    "scipy",
    "dask",
    "distributed",
    "dask-image",
    "xarray",
    "zarr",
    "numba",
    "scikit-image",
    "psutil",
)

#: What a row of results stands for (see :func:`measurement`).
ROLES = ("ours", "anchor", "reference")

#: Bytes in one megabyte, the unit of every throughput figure (MB/s).
MEGABYTE = 1_000_000


def summarize(values: list[float]) -> dict:
    """Return the median, min and max of repeated measurements.

    Parameters
    ----------
    values : list of float
        One value per repeat, at least one.

    Returns
    -------
    dict
        Keys ``median``, ``min``, ``max``, ``n`` and ``values`` (the repeats in
        the order they were taken).

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


def time_repeats(
    work: Callable[[], object], repeats: int, warmup: Callable[[], object] | None = None
) -> dict:
    """Time ``work()`` ``repeats`` times with a monotonic wall clock.

    Parameters
    ----------
    work : callable
        Called without arguments; its result is discarded before the next
        repeat so that two results never coexist in memory.
    repeats : int
        Number of timed calls, at least 1.
    warmup : callable, optional
        Called once, untimed, before the first repeat (a small input that
        triggers just-in-time compilation, for example).

    Returns
    -------
    dict
        :func:`summarize` of the wall-clock seconds.

    Examples
    --------
    >>> time_repeats(lambda: sum(range(100)), repeats=3)["n"]
    3
    """
    check_repeats(repeats)
    if warmup is not None:
        warmup()
    seconds = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - start)
        del result
    return summarize(seconds)


def check_repeats(repeats: int) -> int:
    """Return ``repeats`` if it is a positive integer, else raise ``ValueError``."""
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    return int(repeats)


def current_rss_bytes() -> int:
    """Return the resident set size of this process now, in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int | None:
    """Return the resident-set high-water mark of this process, in bytes.

    On Linux this is ``VmHWM`` of ``/proc/self/status``, which belongs to the
    process image and starts afresh at ``exec``. ``getrusage``'s
    ``ru_maxrss`` does not: it keeps the resident set of the parent that
    forked the process, so a job started by a large process would report
    the parent's size. Elsewhere ``ru_maxrss`` (bytes on macOS) or the peak
    working set (Windows) is used.

    Returns
    -------
    int or None
        ``None`` where the platform offers no peak.
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


def reset_peak_rss() -> bool:
    """Lower the high-water mark to the current resident set, where Linux allows it.

    Called once the input of a job is loaded, so that temporary memory used
    while loading does not count as the job's peak.

    Returns
    -------
    bool
        Whether the mark was reset.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def profile_job(
    work: Callable[[], object],
    repeats: int,
    warmup: Callable[[], object] | None = None,
) -> dict:
    """Time a job and record the memory it needs, inside the process running it.

    Call this from a job started by :func:`run_in_subprocess` after the input
    is loaded, so that the baseline includes the interpreter, the libraries
    and the input, and the peak is what the work added on top.

    Parameters
    ----------
    work, repeats, warmup
        As in :func:`time_repeats`.

    Returns
    -------
    dict
        ``seconds`` (a summary), ``baseline_rss_bytes`` (resident set before
        the work), ``peak_rss_bytes`` (high-water mark after it) and
        ``work_rss_bytes`` (their difference, the memory the work needed).
    """
    gc.collect()
    reset_peak_rss()
    baseline = current_rss_bytes()
    seconds = time_repeats(work, repeats, warmup=warmup)
    peak = peak_rss_bytes()
    return {
        "seconds": seconds,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak,
        "work_rss_bytes": None if peak is None else max(peak - baseline, 0),
    }


def run_in_subprocess(target: str, kwargs: dict, timeout_seconds: float = 900) -> dict:
    """Run ``target(**kwargs)`` in a fresh Python process and return its result.

    A fresh process starts with an empty heap, so its resident-set high-water
    mark is the peak memory of that one job and nothing else.

    Parameters
    ----------
    target : str
        ``"package.module:function"``; the function takes JSON-compatible
        keyword arguments and returns a JSON-compatible dict (usually the
        result of :func:`profile_job`).
    kwargs : dict
        Keyword arguments for ``target``.
    timeout_seconds : float
        Kill the process after this long.

    Returns
    -------
    dict
        What ``target`` returned, with ``peak_rss_bytes`` of the whole process
        added when the job did not report it.

    Raises
    ------
    ValueError
        If ``target`` is not of the form ``"module:function"``.
    RuntimeError
        If the process fails or times out; the message ends with its stderr.
    """
    if target.count(":") != 1:
        raise ValueError(f"target must look like 'package.module:function', got {target!r}")
    with tempfile.TemporaryDirectory(prefix="nima-lessons-bench-") as folder:
        spec_path = Path(folder) / "job.json"
        result_path = Path(folder) / "result.json"
        spec_path.write_text(json.dumps({"target": target, "kwargs": kwargs}))
        command = [sys.executable, "-c", _CHILD_COMMAND, str(spec_path), str(result_path)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_seconds, env=_child_env()
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


def _child_env() -> dict:
    """Environment of a job process: this one's, with the package importable."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


def _child_main(argv: list[str]) -> int:
    """Entry point of a job process: read the job, run it, write its result."""
    spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text())
    module_name, function_name = spec["target"].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(**spec["kwargs"])
    result.setdefault("peak_rss_bytes", peak_rss_bytes())
    Path(result_path).write_text(json.dumps(result))
    return 0


def measurement(
    operation: str,
    implementation: str,
    role: str,
    params: dict,
    seconds: dict | None,
    memory: dict | None = None,
    **metrics,
) -> dict:
    """Return one row of a case result (the schema of ``rows`` in the JSON).

    Parameters
    ----------
    operation : str
        What was measured (``"shading"``, ``"label"``, ...).
    implementation : str
        Who did it (``"nima_lessons"``, ``"dask_image"``, ``"scipy"``, ...).
    role : {"ours", "anchor", "reference"}
        ``"ours"`` is this package, ``"anchor"`` the established way it is
        compared with, ``"reference"`` a physical or whole-image yardstick.
    params : dict
        The knobs of this row (sizes, chunks, scheduler...), JSON-compatible.
    seconds : dict or None
        A :func:`summarize` of wall-clock seconds; ``None`` when only memory
        or graph figures were taken.
    memory : dict, optional
        The memory keys of :func:`profile_job` (``peak_rss_bytes``,
        ``baseline_rss_bytes``, ``work_rss_bytes``).
    **metrics
        Further figures (``throughput_MBps``, ``graph_layers``...).

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        If ``role`` is not one of the three roles.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    memory = memory or {}
    return {
        "operation": operation,
        "implementation": implementation,
        "role": role,
        "params": dict(params),
        "seconds": seconds,
        "peak_rss_bytes": memory.get("peak_rss_bytes"),
        "baseline_rss_bytes": memory.get("baseline_rss_bytes"),
        "work_rss_bytes": memory.get("work_rss_bytes"),
        "metrics": dict(metrics),
    }


def row_value(row: dict, metric: str) -> float | None:
    """Return the figure ``metric`` of a row: a median for ``"seconds"``."""
    if metric == "seconds":
        return None if row["seconds"] is None else row["seconds"]["median"]
    if metric in row:
        return row[metric]
    return row["metrics"].get(metric)


def comparison(anchor: dict, ours: dict, metric: str = "seconds", what: str | None = None) -> dict:
    """Compare two rows on one figure: the ratio anchor / ours.

    Parameters
    ----------
    anchor, ours : dict
        Rows made by :func:`measurement` for the same operation and size.
    metric : str
        ``"seconds"`` (medians), ``"peak_rss_bytes"``, ``"work_rss_bytes"`` or
        a key of ``metrics``. For all of them smaller is better, so a ratio
        above 1 means ours is faster or leaner.
    what : str, optional
        What the ratio compares, for readers; default
        ``"<anchor implementation> / <ours implementation>"``.

    Returns
    -------
    dict
        ``operation``, ``params`` (those of ``ours``), ``metric``,
        ``anchor`` / ``ours`` (implementation names), ``what``,
        ``anchor_value``, ``ours_value`` and ``ratio`` (``None`` when a
        value is missing or ours is zero).

    Examples
    --------
    >>> slow = measurement("op", "them", "anchor", {}, summarize([2.0]))
    >>> fast = measurement("op", "us", "ours", {}, summarize([0.5]))
    >>> comparison(slow, fast)["ratio"]
    4.0
    """
    anchor_value = row_value(anchor, metric)
    ours_value = row_value(ours, metric)
    ratio = None
    if anchor_value is not None and ours_value:
        ratio = anchor_value / ours_value
    return {
        "operation": ours["operation"],
        "params": dict(ours["params"]),
        "metric": metric,
        "anchor": anchor["implementation"],
        "ours": ours["implementation"],
        "what": what or f"{anchor['implementation']} / {ours['implementation']}",
        "anchor_value": anchor_value,
        "ours_value": ours_value,
        "ratio": ratio,
    }


def allocation_job(n_bytes: int, repeats: int = 1) -> dict:
    """Fill and free an array of ``n_bytes``: a calibration job for the peak-memory measurement.

    Run it with :func:`run_in_subprocess`; its ``work_rss_bytes`` should be
    about ``n_bytes``.

    Examples
    --------
    >>> job = "nima_lessons.course.bench.harness:allocation_job"
    >>> result = run_in_subprocess(job, {"n_bytes": 50_000_000})
    >>> result["work_rss_bytes"] > 40_000_000
    True
    """
    return profile_job(lambda: np.ones(int(n_bytes), dtype=np.uint8).sum(), repeats)


def copy_bandwidth(n_bytes: int = 256 * MEGABYTE, repeats: int = 5) -> dict:
    """Measure how fast this machine copies a large array in memory.

    The copy is the physical reference for memory-bound work: a pass over the
    data cannot run faster than reading it once and writing it once.

    Parameters
    ----------
    n_bytes : int
        Size of the copied array; it must be much larger than the CPU caches.
    repeats : int
        Timed copies (after one untimed copy that maps the destination pages).

    Returns
    -------
    dict
        ``n_bytes`` and ``MBps``, a :func:`summarize` of the array bytes copied
        per second in MB/s (the same convention as every throughput figure:
        bytes of input processed per second; the memory traffic is twice that,
        one read and one write).

    Examples
    --------
    >>> copy_bandwidth(n_bytes=8_000_000, repeats=2)["MBps"]["median"] > 0
    True
    """
    check_repeats(repeats)
    source = np.ones(int(n_bytes) // 8, dtype=np.float64)
    target = np.empty_like(source)
    seconds = time_repeats(
        lambda: np.copyto(target, source), repeats, warmup=lambda: np.copyto(target, source)
    )
    rates = [source.nbytes / MEGABYTE / value for value in seconds["values"]]
    return {"n_bytes": int(source.nbytes), "MBps": summarize(rates)}


def package_versions() -> dict:
    """Return the installed version of each distribution in :data:`PACKAGES`."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def usable_cores() -> int:
    """Return the number of CPU cores this process may run on."""
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
        ``cores_physical``, ``cores_usable`` (what dask uses: affinity and
        container limits applied), ``memory_total_bytes``,
        ``memory_available_bytes``, ``load_average`` (1, 5, 15 min, where
        known: a busy machine gives noisy times), ``packages`` and
        ``copy_bandwidth``.
    """
    import psutil

    memory = psutil.virtual_memory()
    try:
        load = list(os.getloadavg())
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
