"""Benchmarks that measure every performance claim of the lessons on this machine.

Each case runs the established way of doing something (the *anchor*) and the
way this package does it (*ours*) in the same run and reports their ratio. A case
is one small module following the protocol of :mod:`nima_lessons.course.bench.case`.

Cases (names for ``cases=`` and ``--case``):

``nima_table``
    Shading correction and the radius-1 disk median per time point of a
    (T, C, Y, X) float64 stack chunked one plane per chunk: ours against
    xarray arithmetic + ``dask_image.ndfilters.median_filter``, with the
    figures of the nima documentation quoted beside them; our median kernel
    per dtype against a memory copy of the plane (and ``cv2.medianBlur``
    where OpenCV is installed).
``lazy_stack``
    Classic delayed + ``from_delayed`` + ``stack`` against one blockwise
    layer: graph layers, build time and one-frame compute time.
``tiled_labels``
    ``nima_lessons.labels.label`` against ``dask_image.ndmeasure.label`` and
    whole-image ``scipy.ndimage.label`` (and ``cc3d`` and
    ``cv2.connectedComponents`` where installed): time and peak memory.
``streaming``
    The pipeline streamed time point by time point against loading
    everything first: time and peak memory for growing T.
``overlap_cost``
    A ``map_overlap`` gaussian against tile size and margin depth, relative
    to the whole image.
``schedulers``
    Cases 1 and 3 (smaller) on the synchronous, threads, processes and
    distributed schedulers.

``tiled_pipeline``
    The whole pipeline on one large stitched plane, in tiles against whole
    planes: time, peak memory and the same cells (its ``large`` preset, a
    50,000 x 50,000 plane in tiles only, runs only when asked for).
``real_data``
    The ``nima`` preset on nima's sample image against nima's own command line.

Result schema (``results.json``, also returned by :func:`run_benchmarks`)::

    {
      "schema_version": 1,
      "created": "2026-01-01T12:00:00+00:00",   # UTC, ISO 8601
      "preset": "full" | "quick" | "tiny" | "large",
      "repeats": null | int,                     # the override, if any
      "total_seconds": float,
      "machine": {
        "platform", "python", "processor": str,
        "cores_logical", "cores_physical", "cores_usable": int,
        "memory_total_bytes", "memory_available_bytes": int,
        "load_average": [1 min, 5 min, 15 min] | null,
        "packages": {distribution: version | null},
        "copy_bandwidth": {"n_bytes": int, "MBps": SUMMARY},
      },
      "cases": {
        NAME: {
          "title": str, "claim": str,
          "params": {...},          # the preset's sizes for this case
          "repeats": int,
          "elapsed_seconds": float,
          "error": null | str,      # a failed case keeps the others
          "rows": [ROW, ...],
          "comparisons": [COMPARISON, ...],
          "claims": [{"claim": str, "value": float, "threshold": float,
                      "holds": bool}, ...],
          "source": {...},          # nima_table only: the quoted figures
          "notes": [str, ...],
        },
      },
      "files": {"json": path, "markdown": path, "plots": {NAME: path}},
    }

    SUMMARY = {"median": float, "min": float, "max": float, "n": int,
               "values": [float, ...]}
    ROW = {"operation": str, "implementation": str,
           "role": "ours" | "anchor" | "reference",
           "params": {...}, "seconds": SUMMARY | null,
           "peak_rss_bytes": int | null,       # fresh-process high-water mark
           "baseline_rss_bytes": int | null,   # before the work started
           "work_rss_bytes": int | null,       # peak - baseline
           "metrics": {...}}                   # e.g. throughput_MBps
    COMPARISON = {"operation": str, "params": {...}, "metric": str,
                  "anchor": str, "ours": str,  # implementation names
                  "what": str,                 # what the ratio compares
                  "anchor_value": float, "ours_value": float,
                  "ratio": float | null}       # anchor / ours, > 1: ours wins

Times are wall-clock seconds, memory is in bytes and throughputs are MB/s
(10**6 bytes of input per second).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nima_lessons.course.bench import case as _protocol
from nima_lessons.course.bench import harness, report
from nima_lessons.course.bench.case import PRESETS, Case, Preset

__all__ = [
    "CASES",
    "PLANNED_CASES",
    "PRESETS",
    "SCHEMA_VERSION",
    "load_case",
    "load_results",
    "results_frame",
    "run_benchmarks",
    "run_case",
    "validate_cases",
]

#: Case names in report order, the planned ones included.
PLANNED_CASES = tuple(
    "nima_table lazy_stack tiled_labels streaming overlap_cost schedulers tiled_pipeline "
    "real_data".split()  # one string literal, split into names
)
#: The cases this installation offers: the planned names whose module exists.
CASES = tuple(name for name in PLANNED_CASES if importlib.util.find_spec(f"{__name__}.{name}"))

SCHEMA_VERSION = 1

# Size of the memory-copy reference: far above the CPU caches where it matters.
_COPY_BYTES: dict[Preset, int] = {
    preset: megabytes * harness.MEGABYTE
    for preset, megabytes in (("full", 512), ("quick", 128), ("tiny", 8), ("large", 512))
}


def validate_cases(cases: str | Iterable[str] | None) -> list[str]:
    """Return the requested case names in report order, without duplicates.

    Raises
    ------
    ValueError
        If a name is not a known case, or none is given.

    Examples
    --------
    >>> validate_cases(["schedulers", "nima_table"])
    ['nima_table', 'schedulers']
    """
    if cases is None:
        return list(CASES)
    names = [cases] if isinstance(cases, str) else list(cases)
    unknown = [name for name in names if name not in CASES]
    if unknown:
        raise ValueError(
            f"unknown benchmark case {', '.join(map(repr, unknown))}: "
            f"expected one of {', '.join(CASES)}"
        )
    if not names:
        raise ValueError(f"cases is empty: name at least one of {', '.join(CASES)}")
    return [name for name in CASES if name in names]


def _validate_preset(preset: str) -> Preset:
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return preset  # type: ignore[return-value]


def _check_repeats(repeats: int | None) -> None:
    if repeats is not None:
        harness.check_repeats(repeats)


def load_case(name: str) -> Case:
    """Return the :class:`~nima_lessons.course.bench.case.Case` of a case name."""
    (name,) = validate_cases([name])
    return importlib.import_module(f"{__name__}.{name}").CASE


def _offering(names: list[str], preset: Preset, chosen_by_name: bool) -> list[str]:
    """The cases of ``names`` that offer ``preset``; all of them when they are named."""
    lacking = [name for name in names if preset not in load_case(name).presets]
    if chosen_by_name and lacking:
        offered = [name for name in CASES if preset in load_case(name).presets]
        raise ValueError(
            f"case {', '.join(lacking)} has no {preset!r} preset; "
            f"it is offered by: {', '.join(offered) or 'no case'}"
        )
    return [name for name in names if name not in lacking]


def _logger(progress: bool | Callable[[str], None]) -> Callable[[str], None]:
    if callable(progress):
        return progress
    if progress:
        return lambda message: print(
            f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True
        )
    return lambda message: None


def run_case(
    name: str,
    preset: Preset = "quick",
    repeats: int | None = None,
    copy_MBps: float | None = None,
    progress: bool | Callable[[str], None] = False,
) -> dict:
    """Run one benchmark case and return its result (a ``cases`` entry of the schema).

    Parameters
    ----------
    name : str
        A case name (see :data:`CASES`).
    preset : {"tiny", "quick", "full", "large"}
        Which sizes to use (``large``: only the cases offering it).
    repeats : int, optional
        Timed repeats per figure; the case's default for the preset if omitted.
    copy_MBps : float, optional
        Memory-copy bandwidth of the machine, the reference of throughputs;
        measured (small) when omitted.
    progress : bool or callable
        Print one line per step to stderr (``True``) or pass it to a callable.

    Returns
    -------
    dict
        A failure inside the case is recorded in ``error`` rather than raised.

    Raises
    ------
    ValueError
        If ``name``, ``preset`` or ``repeats`` is invalid.
    """
    case = load_case(name)
    chosen = _validate_preset(preset)
    _offering([name], chosen, chosen_by_name=True)
    _check_repeats(repeats)
    if copy_MBps is None:
        copy_MBps = harness.copy_bandwidth(_COPY_BYTES["tiny"], repeats=3)["MBps"]["median"]
    log = _logger(progress)
    log(f"{name}: {case.title} ({chosen})")
    # The tiny preset checks structure, not figures: its jobs run here, not in fresh processes.
    fresh = chosen != "tiny"
    result = _protocol.run_case(
        case, chosen, repeats, copy_MBps, lambda m: log(f"{name}: {m}"), fresh
    )
    log(f"{name}: done in {result['elapsed_seconds']:.1f} s")
    return result


def run_benchmarks(
    cases: str | Iterable[str] | None = None,
    quick: bool = False,
    out: str | Path | None = "bench-results",
    repeats: int | None = None,
    progress: bool | Callable[[str], None] = True,
    preset: Preset | None = None,
    overwrite: bool = False,
) -> dict:
    """Run the benchmark cases and write their JSON, markdown and one PNG per case.

    Parameters
    ----------
    cases : str or iterable of str, optional
        Case names (see :data:`CASES`); all of them by default.
    quick : bool
        Small sizes that finish in about a minute (the ``quick`` preset).
    out : path-like or None
        Folder for ``results.json``, ``results.md`` and the PNGs; ``None``
        writes nothing.
    repeats : int, optional
        Timed repeats per figure for every case (each case's own otherwise).
    progress : bool or callable
        Print one line per step to stderr, or pass the lines to a callable.
    preset : {"tiny", "quick", "full", "large"}, optional
        Overrides ``quick``; ``"tiny"`` is what the tests run; ``"large"`` runs
        only the cases offering it (``tiled_pipeline``).
    overwrite : bool
        Replace the result files of an earlier run in ``out``.

    Returns
    -------
    dict
        The results (see the schema in the module docstring).

    Raises
    ------
    ValueError
        If a case name, the preset or ``repeats`` is invalid, or a named case
        lacks the preset.
    FileExistsError
        If ``out`` already holds results and ``overwrite`` is false (checked
        before anything runs).
    """
    chosen = _validate_preset(preset if preset is not None else ("quick" if quick else "full"))
    names = _offering(validate_cases(cases), chosen, chosen_by_name=cases is not None)
    _check_repeats(repeats)
    if out is not None:
        report.check_output(out, overwrite)
    log = _logger(progress)
    start = time.perf_counter()
    log(f"measuring the machine (copy bandwidth of {_COPY_BYTES[chosen] // harness.MEGABYTE} MB)")
    machine = harness.machine_info(copy_bytes=_COPY_BYTES[chosen])
    copy_MBps = machine["copy_bandwidth"]["MBps"]["median"]
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "preset": chosen,
        "repeats": repeats,
        "machine": machine,
        "cases": {name: run_case(name, chosen, repeats, copy_MBps, log) for name in names},
    }
    results["total_seconds"] = time.perf_counter() - start
    if out is not None:
        results["files"] = report.write_report(results, out, overwrite=overwrite)
        log(f"results written to {results['files']['markdown']}")
    return results


def load_results(path: str | Path = "bench-results") -> dict:
    """Read the results of an earlier run from ``results.json`` or the folder holding it.

    Raises
    ------
    FileNotFoundError
        If there is no results file at ``path``.
    """
    return report.load_json(path)


def results_frame(results: dict) -> Any:
    """Return every row of every case as one flat pandas DataFrame.

    One row per measurement: ``case`` and the columns of
    :func:`nima_lessons.course.plotting.bench_rows` (parameters and metrics
    under their own names, seconds, peak and work memory in MB).
    """
    import pandas as pd

    from nima_lessons.course.plotting import bench_rows

    frames = [bench_rows(case).assign(case=name) for name, case in results["cases"].items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
