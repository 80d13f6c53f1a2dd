"""Case 4: the pipeline streamed time point by time point against loading everything first.

Both read the same TIFF-folder time-lapse and write the same zarr result; each
run is a fresh process, so its peak resident memory is that of one run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from nima_lessons.course.bench.harness import comparison, measurement, profile_job, run_in_subprocess

TITLE = "Streaming against load-all: the pipeline for growing T"
CLAIM = (
    "Streamed, the pipeline's peak memory does not grow with the number of time points "
    "(peak at the largest T / peak at the smallest T <= 1.25), while loading everything first "
    "grows "
    "with T."
)

PRESETS = {
    # warmup: run one time point untimed first in each process; the short
    # presets skip it (each process costs seconds of imports already), so
    # their times include first-use costs.
    "full": {"n_t": [5, 10, 20, 40], "shape": [512, 512], "n_cells": 30, "warmup": True},
    "quick": {"n_t": [2, 4], "shape": [128, 128], "n_cells": 4, "warmup": False},
    # One T only: every run is a process start (seconds), and the tests check
    # the claims on rows of their own.
    "tiny": {"n_t": [2], "shape": [96, 96], "n_cells": 2, "warmup": False},
}
REPEATS = {"full": 1, "quick": 1, "tiny": 1}

#: Largest accepted ratio of streaming peaks, largest T over smallest T.
STREAMING_PEAK_LIMIT = 1.25

MODES = {"load-all": "anchor", "streaming": "ours"}


def write_timelapse(folder: Path, n_t: int, shape, n_cells: int, seed: int = 0) -> Path:
    """Write a synthetic ratiometric time-lapse as one TIFF per plane, with dark and flat frames.

    Files are ``t{T:04d}_c{C}.tif`` (uint16 (Y, X)), the channel index ``C``
    standing for the names in ``channels.txt``; dark and flat frames are
    ``dark.npy`` and ``flat.npy`` ((C, Y, X) float32).

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    import numpy as np
    import tifffile

    from nima_lessons.course.synthetic import ratiometric_timelapse

    data = ratiometric_timelapse(n_t=n_t, n_z=1, shape=tuple(shape), n_cells=n_cells, seed=seed)
    folder.mkdir(parents=True)
    image = data.image.values
    for t, c in np.ndindex(image.shape[:2]):
        tifffile.imwrite(folder / f"t{t:04d}_c{c}.tif", image[t, c, 0], photometric="minisblack")
    np.save(folder / "dark.npy", data.dark.values)
    np.save(folder / "flat.npy", data.flat.values)
    (folder / "channels.txt").write_text("\n".join(str(name) for name in data.image.C.values))
    return folder


def pipeline_job(folder: str, n_t: int, mode: str, repeats: int, warmup: bool = True) -> dict:
    """Run the pipeline on the first ``n_t`` time points in ``folder``; in a fresh process.

    Parameters
    ----------
    folder : str
        A folder written by :func:`write_timelapse`.
    n_t : int
        Time points processed.
    mode : {"streaming", "load-all"}
        ``"streaming"``: the lazy pipeline saved region by region;
        ``"load-all"``: the image read into memory, the pipeline computed
        in memory, then saved.
    repeats : int
        Timed runs; each writes a fresh result that is deleted afterwards.
    warmup : bool
        Run one time point untimed first, so that imports and compiled
        kernels loaded on first use are not timed.

    Returns
    -------
    dict
        :func:`~nima_lessons.course.bench.harness.profile_job` figures.
    """
    import dask

    work = _pipeline_run(Path(folder), n_t, mode)
    first = _pipeline_run(Path(folder), 1, mode) if warmup else None
    # The default threads scheduler, pinned so that the store's own choice
    # of scheduler never differs between the two modes.
    with dask.config.set(scheduler="threads"):
        return profile_job(work, repeats, warmup=first)


def _pipeline_run(folder: Path, n_t: int, mode: str) -> Callable[[], object]:
    import numpy as np

    from nima_lessons.io import read_image
    from nima_lessons.pipeline.run import run_pipeline
    from nima_lessons.store import save

    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    dark = np.load(folder / "dark.npy")
    flat = np.load(folder / "flat.npy")
    names = (folder / "channels.txt").read_text().split()
    channels = {str(index): name for index, name in enumerate(names)}
    # Next to the input, inside the temporary folder that the case removes.
    results = Path(tempfile.mkdtemp(prefix="results-", dir=folder.parent))
    counter = iter(range(10**9))

    def one_run():
        image = read_image(folder / "t*_c*.tif", channels=channels).isel(T=slice(0, n_t))
        if mode == "load-all":
            image = image.load()
        result = run_pipeline(image, dark, flat)
        if mode == "load-all":
            result = result.compute()
        target = results / f"result-{next(counter)}.zarr"
        save(result, target)
        shutil.rmtree(target)

    return one_run


def run(params: dict, repeats: int, copy_MBps: float, log: Callable[[str], None]) -> dict:
    """Run both modes at every T, one fresh process per run.

    Parameters
    ----------
    params : dict
        ``n_t`` (the time-point counts), ``shape`` and ``n_cells`` of the
        synthetic ratiometric time-lapse, ``warmup`` (see
        :func:`pipeline_job`).
    repeats : int
        Timed runs per process.
    copy_MBps : float
        Unused (the memory-copy reference of other cases).
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        ``rows``, ``comparisons``, ``claims`` and ``notes``.
    """
    counts = sorted(params["n_t"])
    rows, comparisons = [], []
    with tempfile.TemporaryDirectory(prefix="nima-lessons-stream-data-") as scratch:
        log(f"streaming: writing a {counts[-1]}-time-point {params['shape']} time-lapse")
        folder = write_timelapse(
            Path(scratch) / "ratiometric", counts[-1], params["shape"], params["n_cells"]
        )
        for n_t in counts:
            measured = {}
            for mode, role in MODES.items():
                log(f"streaming: {mode}, T={n_t}")
                result = run_in_subprocess(
                    "nima_lessons.course.bench.streaming:pipeline_job",
                    {
                        "folder": str(folder),
                        "n_t": n_t,
                        "mode": mode,
                        "repeats": repeats,
                        "warmup": params["warmup"],
                    },
                )
                row_params = {"n_t": n_t, "shape": list(params["shape"]), "n_c": 3}
                measured[mode] = measurement(
                    "pipeline + save", mode, role, row_params, result["seconds"], memory=result
                )
                rows.append(measured[mode])
            for metric in ("seconds", "peak_rss_bytes", "work_rss_bytes"):
                comparisons.append(comparison(measured["load-all"], measured["streaming"], metric))
    notes = _notes()
    if not params["warmup"]:
        notes.append(
            "No warm-up run: times include loading libraries and compiled kernels on first use."
        )
    return {
        "rows": rows,
        "comparisons": comparisons,
        "claims": streaming_claims(rows, counts),
        "notes": notes,
    }


def _peak(rows: list[dict], mode: str, n_t: int, key: str = "peak_rss_bytes") -> int:
    (row,) = [row for row in rows if row["implementation"] == mode and row["params"]["n_t"] == n_t]
    return row[key]


def streaming_claims(rows: list[dict], counts: list[int]) -> list[dict]:
    """Check the streaming claims on the rows of a run.

    Parameters
    ----------
    rows : list of dict
        Rows with implementation ``"streaming"`` and ``"load-all"`` and
        ``params["n_t"]`` for every count.
    counts : list of int
        The time-point counts, ascending.

    Returns
    -------
    list of dict
        Claims (empty with fewer than two counts): the streaming peak ratio
        from the smallest to the largest T is at most
        :data:`STREAMING_PEAK_LIMIT`, and the load-all ratio exceeds it.
    """
    if len(counts) < 2:
        return []
    low, high = counts[0], counts[-1]
    streaming = _peak(rows, "streaming", high) / _peak(rows, "streaming", low)
    loaded = _peak(rows, "load-all", high) / _peak(rows, "load-all", low)
    return [
        {
            "claim": f"streaming peak RSS at T={high} / at T={low}, at most {STREAMING_PEAK_LIMIT}",
            "value": streaming,
            "threshold": STREAMING_PEAK_LIMIT,
            "holds": bool(streaming <= STREAMING_PEAK_LIMIT),
        },
        {
            "claim": f"load-all peak RSS grows more than streaming from T={low} to T={high} "
            "(load-all growth, above the streaming growth)",
            "value": loaded,
            "threshold": streaming,
            "holds": bool(loaded > streaming),
        },
    ]


def _notes() -> list[str]:
    return [
        "Each run is a fresh process reading a TIFF-folder time-lapse (one uint16 plane per file, "
        "3 channels) with nima_lessons.io.read_image and writing a zarr result with "
        "nima_lessons.store.save, threads scheduler.",
        "Peak RSS includes the interpreter and libraries (the baseline, about the same for "
        "every run); "
        "work MB is the part above it.",
    ]
