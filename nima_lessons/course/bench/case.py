"""The benchmark case protocol: what a case declares, and the runner that measures and records it.

A case says what to measure; the runner does the rest (repeats, fresh processes, rows,
ratios, skipped optional anchors, the error of a failed case).

Adding a case
-------------
A case is one module ``nima_lessons/course/bench/<name>.py`` holding ``CASE = Case(...)``;
its name in :data:`nima_lessons.course.bench.PLANNED_CASES` sets its place in the report
(a planned name whose module is absent is simply not offered). The module gives:

``title``, ``claim``
    One line each: what is measured, and what the figures should show.
``presets``
    ``{"tiny": {...}, "quick": {...}, "full": {...}}``: the sizes, JSON-compatible.
    ``tiny`` runs in the unit tests (seconds), ``quick`` under a minute, ``full`` is
    the published run; a case may add ``large``, run only when asked for by name.
``repeats``
    Timed repeats per preset, e.g. ``{"tiny": 1, "quick": 2, "full": 5}``.
``trials(context)``
    A generator: set up the input (``context.params`` are the preset's sizes,
    ``context.scratch`` a temporary folder removed afterwards), then ``yield`` one
    :class:`Trial` per row: the anchor (the established way), ours, and any
    reference (a memory copy, a whole-image result). Each ``yield`` returns the
    measured row (a dict of the ``ROW`` schema in :mod:`nima_lessons.course.bench`),
    or ``None`` when the trial was skipped, so later trials can depend on it.
    Whatever the generator holds open (a cluster, a ``with`` block) stays open while
    its trials are measured.
``claims(rows, params, comparisons)``, optional
    Returns the claims checked on the rows, each made with :func:`claim`; ``comparisons``
    are the ratios the runner made (find one with :func:`find_ratio`).
``notes``, ``source``, ``figure``, ``comparisons``, optional
    Fixed notes; figures quoted from elsewhere; the function drawing the case's PNG
    (a ``case -> matplotlib.figure.Figure`` callable from
    :mod:`nima_lessons.course.plotting`; by default
    :func:`~nima_lessons.course.plotting.plot_bench_bars`, one bar per row); a
    ``rows -> comparisons`` function for ratios beyond anchor / ours.

A minimal case::

    def _trials(context):
        image = make_input(context.params["size_px"])
        yield Trial("filter", "scipy", "anchor", context.params, run=lambda: scipy_way(image))
        ours = yield Trial("filter", "ours", "ours", context.params, run=lambda: our_way(image))
        ours["metrics"]["note"] = ...  # the measured row comes back

    CASE = Case(title=..., claim=..., presets={"tiny": {"size_px": 64}, ...},
                repeats={"tiny": 1, "quick": 2, "full": 5}, trials=_trials)

A :class:`Trial` names the row (``operation``, ``implementation``, ``role``,
``params``) and how to measure it, with exactly one of:

- ``run``: a callable timed here, ``repeats`` times after an optional ``warmup``;
- ``job``: ``("package.module:function", kwargs)``, a function that loads its input
  and returns a ``Work`` (:mod:`nima_lessons.course.bench.harness`), run in a fresh
  process so that the row's peak memory is that job's alone (the ``tiny`` preset runs
  it in the calling process: quicker, structure only);
- ``seconds``: values the case measured itself (a cluster's start-up, a command),
  with the ``peak_rss_bytes`` it measured, if any.

Ratios are made by the runner: every ``ours`` row is compared, on each figure of its
``compare``, with every anchor or reference row of the same ``operation`` whose
(non-``None``) parameters it shares. A trial whose ``requires`` names a module that is
not installed (an optional anchor) is skipped with a one-line note.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nima_lessons.course.bench import harness

__all__ = [
    "PRESETS",
    "ROLES",
    "Case",
    "Context",
    "Preset",
    "Role",
    "Trial",
    "Trials",
    "claim",
    "comparison",
    "find_ratio",
    "presets",
    "run_case",
]

Preset = Literal["tiny", "quick", "full", "large"]
Role = Literal["ours", "anchor", "reference"]

#: Size presets: ``tiny`` for the tests, ``quick`` for a smoke run, ``full`` for the figures,
#: ``large`` beyond them (only the cases that offer it).
PRESETS: tuple[Preset, ...] = ("tiny", "quick", "full", "large")
#: What a row stands for: this package, the established way, or a yardstick.
ROLES: tuple[Role, ...] = ("ours", "anchor", "reference")

_PROFILE = "nima_lessons.course.bench.harness:profile_prepared"


@dataclass(frozen=True)
class Trial:
    """One row of a case: what was measured, by whom, and how to measure it (see the module)."""

    operation: str
    implementation: str
    role: Role
    params: Mapping[str, Any]
    run: Callable[[], Any] | None = None
    job: tuple[str, Mapping[str, Any]] | None = None
    seconds: Sequence[float] | None = None
    #: With ``seconds``: the peak memory the case measured (a command's own).
    peak_rss_bytes: int | None = None
    warmup: Callable[[], Any] | None = None
    #: Time the first call of ``run`` as ``first_run_seconds`` (start-up, compilation).
    first_run: bool = False
    record: Callable[[Any], Mapping[str, Any]] | None = None
    repeats: int | None = None
    #: Bytes of input the work reads: adds ``throughput_MBps`` and ``copy_fraction``.
    n_bytes: int | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    compare: tuple[str, ...] = ("seconds",)
    requires: tuple[str, ...] = ()
    #: Longest wait for a ``job`` in a fresh process, in seconds.
    timeout_s: float = 900.0

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        given = [self.run is not None, self.job is not None, self.seconds is not None]
        if sum(given) > 1:
            raise ValueError(f"{self.operation}: give at most one of run, job and seconds")


#: What a case's ``trials`` is: a generator of trials receiving each measured row back.
Trials = Generator[Trial, dict[str, Any], None]


@dataclass
class Context:
    """What a case's ``trials`` receives: sizes, repeats, a scratch folder, a log and notes."""

    params: Mapping[str, Any]
    repeats: int
    copy_MBps: float
    scratch: Path
    log: Callable[[str], None]
    fresh_processes: bool = True
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Add a note to the case's report (once) and log it."""
        if text not in self.notes:
            self.notes.append(text)
            self.log(text)


@dataclass(frozen=True)
class Case:
    """A benchmark case (see the module docstring for each field)."""

    title: str
    claim: str
    presets: Mapping[Preset, Mapping[str, Any]]
    repeats: Mapping[Preset, int]
    trials: Callable[[Context], Trials]
    claims: Callable[[list[dict], Mapping[str, Any], list[dict]], list[dict]] | None = None
    notes: Sequence[str] = ()
    source: Mapping[str, Any] | None = None
    figure: Callable[[Mapping[str, Any]], Any] | None = None
    comparisons: Callable[[list[dict]], list[dict]] | None = None


def presets(columns: str, **rows: tuple) -> dict[Preset, dict[str, Any]]:
    """Return a case's sizes written as a table: one row per preset, one column per parameter.

    Examples
    --------
    >>> presets("n_t shape", tiny=(2, [48, 64]), full=(10, [2048, 2048]))["tiny"]
    {'n_t': 2, 'shape': [48, 64]}
    """
    names = columns.split()
    return {preset: dict(zip(names, values, strict=True)) for preset, values in rows.items()}


def claim(text: str, value: float | None, threshold: float, at_least: bool = True) -> dict:
    """Return one claim: ``value`` against ``threshold``, holding when at least (or at most) it.

    Examples
    --------
    >>> claim("ours is 2x faster", 2.5, 2.0)["holds"]
    True
    >>> claim("lean", 3.0, 1.0, at_least=False)["holds"]
    False
    """
    holds = value is not None and (value >= threshold if at_least else value <= threshold)
    return {"claim": text, "value": value, "threshold": threshold, "holds": bool(holds)}


def row_value(row: Mapping[str, Any], metric: str) -> float | None:
    """Return the figure ``metric`` of a row: the median for ``"seconds"``."""
    if metric == "seconds":
        return None if row["seconds"] is None else row["seconds"]["median"]
    return row[metric] if metric in row else row["metrics"].get(metric)


def comparison(
    anchor: Mapping, ours: Mapping, metric: str = "seconds", what: str | None = None
) -> dict:
    """Compare two rows on one figure: the ratio anchor / ours (above 1: ours is faster or leaner).

    Examples
    --------
    >>> row = lambda name, s: {"operation": "op", "implementation": name, "params": {},
    ...                        "seconds": {"median": s}, "metrics": {}}
    >>> comparison(row("them", 2.0), row("us", 0.5))["ratio"]
    4.0
    """
    anchor_value, ours_value = row_value(anchor, metric), row_value(ours, metric)
    return {
        "operation": ours["operation"],
        "params": dict(ours["params"]),
        "metric": metric,
        "anchor": anchor["implementation"],
        "ours": ours["implementation"],
        "what": what or f"{anchor['implementation']} / {ours['implementation']}",
        "anchor_value": anchor_value,
        "ours_value": ours_value,
        "ratio": anchor_value / ours_value if anchor_value is not None and ours_value else None,
    }


def find_ratio(comparisons: Sequence[Mapping], metric: str = "seconds", **match: Any) -> Any:
    """Return the ratio of the first comparison on ``metric`` with the given fields, else ``None``.

    Parameters
    ----------
    comparisons : sequence of dict
        Comparisons as made by :func:`comparison` (a case's ``comparisons``).
    metric : str
        The figure compared, e.g. ``"seconds"`` or ``"peak_rss_bytes"``.
    **match
        Fields the comparison must have, e.g. ``operation="median"`` or
        ``anchor="nima (command line)"``.

    Returns
    -------
    float or None
        Its ``ratio`` (anchor / ours), ``None`` when no comparison matches.

    Examples
    --------
    >>> find_ratio([{"operation": "op", "metric": "seconds", "ratio": 2.0}], operation="op")
    2.0
    """
    return next(
        (
            item["ratio"]
            for item in comparisons
            if item["metric"] == metric and all(item[key] == value for key, value in match.items())
        ),
        None,
    )


def _compare_rows(rows: list[dict], compare: Mapping[int, tuple[str, ...]]) -> list[dict]:
    """Compare each ``ours`` row with every other row of its operation sharing its parameters."""
    return [
        comparison(other, ours, metric)
        for ours in rows
        if ours["role"] == "ours"
        for other in rows
        if other["role"] != "ours"
        and other["operation"] == ours["operation"]
        and all(ours["params"].get(k) == v for k, v in other["params"].items() if v is not None)
        for metric in compare[id(ours)]
        if row_value(other, metric) is not None
    ]


def _measure(trial: Trial, context: Context) -> dict | None:
    """Measure one trial and return its row, or ``None`` when an optional module is missing."""
    missing = [name for name in trial.requires if importlib.util.find_spec(name) is None]
    if missing:
        context.note(
            f"{trial.implementation} skipped: {', '.join(missing)} not installed "
            "(optional: pip install 'nima-lessons[bench]')"
        )
        return None
    repeats = harness.check_repeats(trial.repeats or context.repeats)
    context.log(f"{trial.operation}, {trial.implementation}, {dict(trial.params)}")
    metrics, memory, seconds = dict(trial.metrics), {}, None
    if trial.job is not None:
        job = {"target": trial.job[0], "kwargs": dict(trial.job[1]), "repeats": repeats}
        if context.fresh_processes:
            memory = harness.run_in_subprocess(_PROFILE, job, trial.timeout_s)
        else:  # the same job, here: quick, but its memory figures are not its own
            memory = harness.profile_prepared(**json.loads(json.dumps(job)))
        seconds = memory["seconds"]
        metrics.update(memory["metrics"])
    elif trial.run is not None:
        if trial.first_run:
            start = time.perf_counter()
            trial.run()
            metrics["first_run_seconds"] = time.perf_counter() - start
        record = trial.record and (lambda result: metrics.update(trial.record(result)))
        seconds = harness.time_repeats(trial.run, repeats, trial.warmup, record)
    elif trial.seconds is not None:
        seconds = harness.summarize(list(trial.seconds))
        memory = {"peak_rss_bytes": trial.peak_rss_bytes}
    if trial.n_bytes and seconds:
        throughput = trial.n_bytes / harness.MEGABYTE / seconds["median"]
        metrics.update(throughput_MBps=throughput, copy_fraction=throughput / context.copy_MBps)
    memory_keys = ("peak_rss_bytes", "baseline_rss_bytes", "work_rss_bytes")
    return {
        "operation": trial.operation,
        "implementation": trial.implementation,
        "role": trial.role,
        "params": dict(trial.params),
        "seconds": seconds,
        **{key: memory.get(key) for key in memory_keys},
        "metrics": metrics,
    }


def run_case(
    case: Case,
    preset: Preset,
    repeats: int | None = None,
    copy_MBps: float = 1.0,
    log: Callable[[str], None] = lambda message: None,
    fresh_processes: bool = True,
) -> dict:
    """Run one case and return its result (a ``cases`` entry of the schema).

    Parameters
    ----------
    case : Case
        What to measure.
    preset : {"tiny", "quick", "full", "large"}
        Which sizes; one of ``case.presets``.
    repeats : int, optional
        Timed repeats per row; the case's default for the preset if omitted.
    copy_MBps : float
        The machine's copy bandwidth, the reference of throughputs.
    log : callable
        Receives progress lines.
    fresh_processes : bool
        Run each ``job`` in a fresh process (its own peak memory); otherwise
        here, which is quicker and checks the structure only.

    Returns
    -------
    dict
        A failure inside the case is recorded in ``error``, with the rows
        measured before it, rather than raised.
    """
    params = case.presets[preset]
    chosen = harness.check_repeats(case.repeats[preset] if repeats is None else repeats)
    rows: list[dict] = []
    compare: dict[int, tuple[str, ...]] = {}
    start, error, comparisons, claims = time.perf_counter(), None, [], []
    with tempfile.TemporaryDirectory(prefix="nima-lessons-bench-") as scratch:
        context = Context(params, chosen, copy_MBps, Path(scratch), log, fresh_processes)
        trials, row = case.trials(context), None
        try:
            while True:
                trial = trials.send(row)  # a fresh generator takes None
                row = _measure(trial, context)
                if row is not None:
                    rows.append(row)
                    compare[id(row)] = trial.compare
        except StopIteration:
            comparisons = _compare_rows(rows, compare)
            comparisons += case.comparisons(rows) if case.comparisons else []
            claims = case.claims(rows, params, comparisons) if case.claims else []
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"
            log(f"failed: {error}")
        finally:
            trials.close()
    if not fresh_processes and any(row["peak_rss_bytes"] for row in rows):
        context.note("Jobs ran in this process: their memory figures are not their own.")
    return {
        "title": case.title,
        "claim": case.claim,
        "params": params,
        "repeats": chosen,
        **({"source": dict(case.source)} if case.source is not None else {}),
        "error": error,
        "rows": rows,
        "comparisons": comparisons,
        "claims": claims,
        "notes": context.notes + list(case.notes),
        "elapsed_seconds": time.perf_counter() - start,
    }
