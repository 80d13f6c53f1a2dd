"""Case ``real_data``: our pipeline on nima's sample image against nima's own command line.

The input is nima's sample time-lapse (``1b_c16_15.tif``, (T, C, Y, X) = (4, 3, 512, 512)
uint16, fetched once with :func:`~nima_lessons.course.nima_sample.ensure_nima_sample`).
Ours reads it with :func:`nima_lessons.io.read_image`, runs the ``"nima"`` preset of
:func:`~nima_lessons.pipeline.run_pipeline` and measures nima's per-cell table, in a fresh
process; its row also says whether the result agrees with the tables nima ships for this
image. The anchor is ``nima 1b_c16_15.tif G R C`` run as a command in a scratch folder.

nima is not a dependency of this package: the anchor runs the executable named by
:data:`NIMA_ENV` (or ``nima`` on ``PATH``), typically installed in a virtual environment
of its own, and is skipped with a one-line note when there is none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from nima_lessons.course.bench.case import (
    Case,
    Context,
    Role,
    Trial,
    Trials,
    claim,
    find_ratio,
    presets,
)
from nima_lessons.course.bench.harness import Work, child_env
from nima_lessons.course.nima_sample import (
    CHANNELS,
    IMAGE_NAME,
    NIMA_VERSION,
    NimaSample,
    NimaSampleUnavailable,
    ensure_nima_sample,
    nima_sample_path,
    open_nima_sample,
    read_nima_tables,
)

__all__ = [
    "BACKGROUND_TOLERANCE",
    "CASE",
    "NIMA_COMMAND",
    "NIMA_ENV",
    "OURS",
    "OUR_COMMAND",
    "RATIO_COLUMNS",
    "RATIO_TOLERANCE",
    "CommandFailed",
    "CommandRun",
    "agreement_with_nima",
    "find_nima",
    "missing_nima_message",
    "nima_table",
    "prepare_ours",
    "run_command",
]

#: Environment variable naming the ``nima`` executable used as the anchor.
NIMA_ENV = "NIMA_LESSONS_NIMA"
#: Largest accepted difference of a background level from nima's, in counts.
BACKGROUND_TOLERANCE = 2.0
#: Largest accepted relative difference of a ratio from nima's.
RATIO_TOLERANCE = 0.01
#: nima's ratio columns: C/R and G/C of the cell means, and the medians of the ratio images.
RATIO_COLUMNS = ("r_cl", "r_pH", "r_cl_median", "r_pH_median")
#: nima's ratios as (numerator, denominator) channels.
NIMA_RATIOS = {"r_cl": ("C", "R"), "r_pH": ("G", "C")}

_OPERATION = "nima workflow on nima's sample"
#: Row names: ours in a fresh process, our command line, nima's command line.
OURS = "nima_lessons (pipeline + table, after imports)"
OUR_COMMAND = "nima-lessons pipeline (command line)"
NIMA_COMMAND = "nima (command line)"
_INSTALL = (
    f"python -m venv nima-venv && nima-venv/bin/pip install nima=={NIMA_VERSION}, "
    f"then {NIMA_ENV}=nima-venv/bin/nima"
)


class CommandFailed(RuntimeError):
    """A measured command exited with an error or ran past its time limit."""


def missing_nima_message(configured: str | None = None) -> str:
    """Return the one-line note of an anchor skipped for want of a ``nima`` executable.

    Parameters
    ----------
    configured : str, optional
        The value of :data:`NIMA_ENV` that names no executable, if it was set.

    Examples
    --------
    >>> print(missing_nima_message())  # doctest: +ELLIPSIS
    nima's command line skipped: no nima executable (set NIMA_LESSONS_NIMA to ...
    """
    if configured:
        why = f"{NIMA_ENV}={configured} is not an executable file"
    else:
        why = f"no nima executable (set {NIMA_ENV} to its path, or put nima on PATH)"
    return (
        f"nima's command line skipped: {why}; nima is not a dependency of nima-lessons, "
        f"install it in a separate virtual environment: {_INSTALL}"
    )


def find_nima() -> tuple[Path | None, str | None]:
    """Find the ``nima`` executable: :data:`NIMA_ENV` if set, else ``nima`` on ``PATH``.

    Returns
    -------
    tuple
        ``(path, None)`` when found, else ``(None, note)`` with the one-line note
        of :func:`missing_nima_message`.
    """
    configured = os.environ.get(NIMA_ENV, "").strip()
    found = shutil.which(os.path.expanduser(configured) if configured else "nima")
    if found is None:
        return None, missing_nima_message(configured or None)
    return Path(found).absolute(), None


# The small process that starts a measured command, waits for it and prints its figures as
# JSON: the command's resident-set high-water mark can only be read from the process that
# waits for it, and a command started from a large process would be charged that process's
# memory (Linux counts the parent's pages as the child's until it execs). Only the standard
# library is imported, so the command inherits a few MB at most.
_STARTER = """
import json, os, subprocess, sys, threading, time
timeout_s, argv = float(sys.argv[1]), sys.argv[2:]
start = time.perf_counter()
command = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
killed = threading.Event()
timer = threading.Timer(timeout_s, lambda: (killed.set(), command.kill()))
timer.start()
peak = None
if hasattr(os, "wait4"):
    _, status, usage = os.wait4(command.pid, 0)
    returncode = os.waitstatus_to_exitcode(status)
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
else:
    returncode = command.wait()
seconds = time.perf_counter() - start
timer.cancel()
print(json.dumps({"seconds": seconds, "peak": peak, "returncode": returncode,
                  "timed_out": killed.is_set()}))
"""


class CommandRun(NamedTuple):
    """The figures of one run of a command.

    Attributes
    ----------
    seconds : float
        Wall-clock seconds from its start to its end.
    peak_rss_bytes : int or None
        Its resident-set high-water mark (the largest of it and its own
        children), ``None`` where the platform does not report it (Windows).
    """

    seconds: float
    peak_rss_bytes: int | None


def run_command(
    argv: Sequence[str | os.PathLike],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 900.0,
) -> CommandRun:
    """Run a command to completion in ``cwd``; return its wall-clock time and peak memory.

    A small starter process (Python's standard library only) runs the command,
    times it and reads its resident-set high-water mark from the resource usage
    the operating system reports for that one child, so the figures are the
    command's own, whatever this process holds. The command's standard output
    is discarded and its errors kept for the message of a failure: ``cwd``
    holds only what the command writes.

    Parameters
    ----------
    argv : sequence of str or path-like
        The command and its arguments.
    cwd : pathlib.Path
        An existing folder to run it in.
    env : mapping, optional
        Its environment; this process's by default.
    timeout_s : float
        Kill the command after this many seconds.

    Returns
    -------
    CommandRun

    Raises
    ------
    CommandFailed
        If the command cannot start, exits with an error or is killed at
        ``timeout_s``; the one-line message names the command, the folder and
        its last line of errors.

    Examples
    --------
    >>> import sys, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     run = run_command([sys.executable, "-c", "pass"], Path(folder))
    >>> run.seconds > 0 and (run.peak_rss_bytes is None or run.peak_rss_bytes > 0)
    True
    """
    argv = [str(arg) for arg in argv]
    starter = [sys.executable, "-I", "-c", _STARTER, str(timeout_s), *argv]
    with tempfile.TemporaryFile() as errors:
        try:
            # The starter kills the command at timeout_s; this limit only guards the starter.
            done = subprocess.run(
                starter, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=errors,
                timeout=timeout_s + 60, check=False,
            )  # fmt: skip
            report = json.loads(done.stdout.splitlines()[-1]) if done.returncode == 0 else None
        except subprocess.TimeoutExpired:
            report = None
        errors.seek(0)
        lines = errors.read().decode(errors="replace").strip().splitlines()
    if report is None:
        why = "could not be run"
    elif report["timed_out"]:
        why = f"did not finish in {timeout_s:g} s"
    elif report["returncode"] != 0:
        why = f"failed (exit status {report['returncode']})"
    else:
        return CommandRun(report["seconds"], report["peak"])
    last = lines[-1].strip() if lines else "no error output"
    raise CommandFailed(f"`{' '.join(argv)}` in {cwd} {why}: {last}")


def nima_table(result: Any) -> pd.DataFrame:
    """Return nima's per-cell table of a computed ``run_pipeline(..., PRESETS["nima"])`` result.

    The columns of :func:`nima_lessons.pipeline.measure` with nima's ratios:
    ``r_cl`` (C/R) and ``r_pH`` (G/C) of the cell means, and the per-cell medians
    of the two ratio images (``r_pH``'s is the pipeline's ``ratio``; ``r_cl``'s
    is made with the same median smoothing).
    """
    from nima_lessons.pipeline import PRESETS, measure, ratio

    r_cl = ratio(
        result.image, *NIMA_RATIOS["r_cl"], mask=result.labels,
        median_sizes=PRESETS["nima"].ratio_median_sizes,
    )  # fmt: skip
    return measure(
        result.image, result.labels, ratios=NIMA_RATIOS,
        ratio_image={"r_cl": r_cl, "r_pH": result.ratio},
    )  # fmt: skip


def _largest(gaps: np.ndarray) -> float:
    # A value missing from ours (NaN) is as far off as can be.
    return float(np.inf if np.isnan(gaps).any() else gaps.max())


def agreement_with_nima(
    background: pd.DataFrame,
    cells: pd.DataFrame,
    reference: NimaSample,
    columns: Sequence[str] = RATIO_COLUMNS,
) -> dict[str, Any]:
    """Compare a background table and a per-cell table with nima's tables for the sample.

    The acceptance of the ``"nima"`` preset: background levels within
    :data:`BACKGROUND_TOLERANCE` counts, the same cells (labels) at every time
    point, and every ratio within :data:`RATIO_TOLERANCE` of nima's.

    Parameters
    ----------
    background : pandas.DataFrame
        Background level per time point (index T) and channel (columns G, R, C).
    cells : pandas.DataFrame
        One row per cell and time point: ``label``, ``T`` and the ratio columns.
    reference : NimaSample
        nima's tables (:func:`~nima_lessons.course.nima_sample.open_nima_sample`).
    columns : sequence of str
        The ratio columns compared; all of nima's (:data:`RATIO_COLUMNS`) by default.

    Returns
    -------
    dict
        ``background_max_diff`` (counts), ``same_cells`` (bool),
        ``ratio_max_rel_diff`` (over the cells both tables hold; ``None`` if
        none), ``ratios_checked`` (the columns, comma-separated) and
        ``agrees_with_nima`` (bool, all within tolerance). A time point or a
        ratio missing from ours counts as infinitely far off.

    Examples
    --------
    >>> bg = pd.DataFrame({"G": [459.0], "R": [245.0], "C": [272.0]})
    >>> cells = pd.DataFrame({"label": [1], "T": [0], "r_pH": [9.15]})
    >>> nima = NimaSample(None, None, bg, cells, None)
    >>> found = agreement_with_nima(bg + 1, cells.assign(r_pH=9.2), nima, columns=["r_pH"])
    >>> found["background_max_diff"], round(found["ratio_max_rel_diff"], 4)
    (1.0, 0.0055)
    >>> found["agrees_with_nima"]
    True
    """
    columns = list(columns)
    theirs_bg = reference.background[list(CHANNELS)]
    ours_bg = background[list(CHANNELS)].reindex(theirs_bg.index)
    background_diff = _largest(np.abs(ours_bg.to_numpy(float) - theirs_bg.to_numpy(float)))
    ours = cells.set_index(["label", "T"]).sort_index()
    theirs = reference.cells.set_index(["label", "T"]).sort_index()
    same_cells = ours.index.equals(theirs.index)
    shared = theirs.index.intersection(ours.index)
    ours_ratios = ours.loc[shared, columns].to_numpy(float)
    relative = ours_ratios / theirs.loc[shared, columns].to_numpy(float)
    ratio_diff = _largest(np.abs(relative - 1)) if len(shared) else None
    agrees = (
        background_diff <= BACKGROUND_TOLERANCE
        and same_cells
        and ratio_diff is not None
        and ratio_diff <= RATIO_TOLERANCE
    )
    return {
        "background_max_diff": background_diff,
        "same_cells": bool(same_cells),
        "ratio_max_rel_diff": ratio_diff,
        "ratios_checked": ", ".join(columns),
        "agrees_with_nima": bool(agrees),
    }


def prepare_ours(folder: str) -> Work:
    """Return our whole nima workflow on the sample in ``folder``, ready to be timed.

    Each run reads the image with :func:`nima_lessons.io.read_image`, computes
    ``run_pipeline(image, config=PRESETS["nima"])`` (threads scheduler) and
    nima's per-cell table (:func:`nima_table`); the record compares the last
    result with nima's shipped tables (:func:`agreement_with_nima`) and gives
    the seconds this process spent importing the libraries, which the timed
    runs leave out.
    """
    start = time.perf_counter()
    import dask

    from nima_lessons.io import read_image
    from nima_lessons.pipeline import PRESETS, run_pipeline

    import_seconds = time.perf_counter() - start
    sample = Path(folder)
    channels = {str(index): name for index, name in enumerate(CHANNELS)}

    def run() -> tuple[pd.DataFrame, pd.DataFrame]:
        image = read_image(sample / IMAGE_NAME, channels=channels)
        with dask.config.set(scheduler="threads"):
            result = run_pipeline(image, config=PRESETS["nima"]).compute()
            table = nima_table(result)
        return result.background.isel(Z=0).to_pandas(), table

    def record(found: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
        background, table = found
        reference = open_nima_sample(sample)
        return {
            "import_seconds": import_seconds,
            **agreement_with_nima(background, table, reference),
        }

    return Work(run, record=record)


def _sample_folder(context: Context) -> Path | None:
    """The sample's folder, fetched when the preset allows; ``None`` (and a note) if absent."""
    if context.params["fetch"]:
        try:
            return ensure_nima_sample()
        except NimaSampleUnavailable as error:
            context.note(f"real_data skipped: nima's sample could not be fetched: {error}")
            return None
    folder = nima_sample_path()
    try:
        open_nima_sample(folder)
    except FileNotFoundError:
        context.note(
            f"real_data skipped: nima's sample is not in {folder} and the tiny preset does not "
            "download it (the quick preset, or ensure_dataset('nima-sample'), fetches it)"
        )
        return None
    return folder


def _our_command() -> list[str]:
    """``nima-lessons pipeline`` with the nima preset on the sample, run by this Python."""
    return [
        sys.executable, "-c", "import sys; from nima_lessons.cli import main; "
        "sys.exit(main(sys.argv[1:]))", "pipeline", IMAGE_NAME, "result.zarr",
        "--channels", ",".join(f"{index}={name}" for index, name in enumerate(CHANNELS)),
        "--preset", "nima", "--table", "cells.csv", "--no-progress",
    ]  # fmt: skip


def _check_our_command(folder: Path, reference: NimaSample) -> dict[str, Any]:
    """Compare what ``nima-lessons pipeline`` wrote with nima's tables (its table has r_pH only)."""
    from nima_lessons.store import open_result

    levels = open_result(folder / "result.zarr")["background"].isel(Z=0).to_pandas()
    cells = pd.read_csv(folder / "cells.csv").rename(columns={"ratio": "r_pH"})
    return agreement_with_nima(levels, cells, reference, columns=("r_pH",))


def _check_nima(folder: Path, reference: NimaSample) -> dict[str, Any]:
    """Compare the tables nima's command line wrote with the ones nima ships."""
    outputs = [path for path in folder.glob("nima-*") if path.is_dir()]
    if len(outputs) != 1:
        raise FileNotFoundError(
            f"nima's command line ended without error but {folder} holds {len(outputs)} "
            "nima-<version> output folders, not 1"
        )
    background, cells = read_nima_tables(outputs[0] / Path(IMAGE_NAME).stem)
    found = agreement_with_nima(background, cells, reference)
    return {
        "nima_version": outputs[0].name.removeprefix("nima-"),
        "tables_agree_with_shipped": found["agrees_with_nima"],
        "ratio_max_rel_diff_shipped": found["ratio_max_rel_diff"],
    }


def _command_trial(
    context: Context,
    implementation: str,
    role: Role,
    argv: Sequence[str | os.PathLike],
    env: Mapping[str, str],
    image: Path,
    check: Any,
) -> Trial:
    """Run a command on the image once per repeat; return its trial (with its highest peak).

    Each run starts in a fresh folder holding only the image; ``check(folder)``
    turns what the last run wrote into the row's metrics.
    """
    context.log(f"{implementation}: {context.repeats} run(s), each in a fresh folder")
    scratch = context.scratch / implementation.split()[0]
    scratch.mkdir()
    # A copy of our own: the runs link to it, so no command can touch the data folder's file.
    source = Path(shutil.copyfile(image, scratch / image.name))
    runs = []
    for repeat in range(context.repeats):
        folder = scratch / f"run-{repeat}"
        folder.mkdir()
        try:  # a hard link costs nothing; a copy where links are refused
            os.link(source, folder / image.name)
        except OSError:
            shutil.copyfile(source, folder / image.name)
        runs.append(run_command(argv, folder, env))
    peaks = [run.peak_rss_bytes for run in runs if run.peak_rss_bytes is not None]
    return Trial(
        _OPERATION, implementation, role, {"image": IMAGE_NAME},
        seconds=[run.seconds for run in runs], peak_rss_bytes=max(peaks) if peaks else None,
        metrics=check(folder), compare=("seconds", "peak_rss_bytes"),
    )  # fmt: skip


def _trials(context: Context) -> Trials:
    params = context.params
    folder = _sample_folder(context)
    if folder is None:
        return
    image, reference = folder / IMAGE_NAME, open_nima_sample(folder)
    job = (f"{__name__}:prepare_ours", {"folder": str(folder)})
    compare = ("seconds", "peak_rss_bytes")
    yield Trial(_OPERATION, OURS, "ours", {"image": IMAGE_NAME}, job=job, compare=compare)
    if params["command"]:
        yield _command_trial(
            context, OUR_COMMAND, "ours", _our_command(), child_env(), image,
            lambda run: _check_our_command(run, reference),
        )  # fmt: skip
    if not params["anchor"]:
        context.note(
            "nima's command line skipped at the tiny preset (it takes tens of seconds): "
            "the quick and full presets run it"
        )
        return
    nima, missing = find_nima()
    if nima is None:
        context.note(missing)
        return
    # nima lives in its own environment: this one's Python path must not leak into it.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    row = yield _command_trial(
        context, NIMA_COMMAND, "anchor", [nima, IMAGE_NAME, *CHANNELS], env,
        image, lambda run: _check_nima(run, reference),
    )  # fmt: skip
    if row["metrics"]["nima_version"] != NIMA_VERSION:
        context.note(
            f"The anchor is nima {row['metrics']['nima_version']}; the shipped tables are nima "
            f"{NIMA_VERSION}'s."
        )


def _claims(rows: list[dict], params: Mapping[str, Any], comparisons: list[dict]) -> list[dict]:
    """Agreement with nima's tables for each row that checks it; whole command against nima's."""
    found = [
        claim(
            f"{row['implementation']} agrees with nima's shipped tables (background within "
            f"{BACKGROUND_TOLERANCE:g} counts, the same cells, {row['metrics']['ratios_checked']} "
            f"within {RATIO_TOLERANCE:.0%})",
            float(row["metrics"]["agrees_with_nima"]),
            1.0,
        )
        for row in rows
        if "agrees_with_nima" in row["metrics"]
    ]
    commands = {"anchor": NIMA_COMMAND, "ours": OUR_COMMAND}
    for metric, text in (
        ("seconds", "is faster than nima's on its sample (anchor / ours seconds)"),
        ("peak_rss_bytes", "needs less memory than nima's (anchor / ours peak RSS)"),
    ):
        ratio = find_ratio(comparisons, metric, **commands)
        if ratio is not None:
            found.append(claim(f"our command line {text}", ratio, 1.0))
    return found


CASE = Case(
    title="Real data: our nima preset on nima's sample against nima's command line",
    claim="On nima's own sample, our pipeline reproduces nima's tables (background within "
    f"{BACKGROUND_TOLERANCE:g} counts, the same cells, ratios within {RATIO_TOLERANCE:.0%}) "
    "in less time and memory than `nima 1b_c16_15.tif G R C`.",
    # fetch: download the sample when absent (the tiny preset, run by the unit tests, never
    # does); command: also time our own command line; anchor: run nima's command line.
    presets=presets(
        "fetch command anchor",
        tiny=(False, False, False),
        quick=(True, True, True),
        full=(True, True, True),
    ),
    repeats={"tiny": 1, "quick": 1, "full": 3},
    trials=_trials,
    claims=_claims,
    notes=[
        "nima's command line is a whole command: it starts Python, imports its libraries, and "
        "besides its tables writes PDF and PNG figures and TIFF ratio images; ours "
        "(pipeline + table) is timed in a fresh process after its imports (their seconds are "
        "import_seconds) and writes nothing. `nima-lessons pipeline` is our whole command: it "
        "writes the result as zarr and a per-cell table.",
        "Each command runs in a fresh folder holding only the image, started by a small "
        "Python process of the standard library alone: its peak RSS is the high-water mark of "
        "the command's own process, like the fresh-process peak of ours.",
    ],
)
