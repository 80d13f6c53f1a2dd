"""Case ``streaming``: the pipeline streamed time point by time point against loading all first.

Both read the same TIFF-folder time-lapse and write the same zarr result; each run is a
fresh process, so its peak resident memory is that of one run.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nima_lessons._atomic import atomic_path
from nima_lessons.course import plotting
from nima_lessons.course.bench.case import Case, Context, Trial, Trials, claim, presets
from nima_lessons.course.bench.harness import Work

__all__ = ["CASE", "streaming_claims", "write_timelapse"]

Mode = Literal["streaming", "load-all"]
MODES: dict[Mode, Literal["ours", "anchor"]] = {"load-all": "anchor", "streaming": "ours"}

#: Largest accepted ratio of streaming peaks, largest T over smallest T.
STREAMING_PEAK_LIMIT = 1.25


def write_timelapse(folder: Path, n_t: int, shape: Any, n_cells: int, seed: int = 0) -> Path:
    """Write a synthetic ratiometric time-lapse as a TIFF folder, with its dark and flat frames.

    The planes are written by :func:`~nima_lessons.course.synthetic.write_tiff_folder`
    (uint16 (Y, X), the channel index ``C`` standing for the names in
    ``channels.txt``); ``dark.npy`` and ``flat.npy`` hold (C, Y, X) float32 frames.
    """
    from nima_lessons.course.synthetic import ratiometric_timelapse, write_tiff_folder

    data = ratiometric_timelapse(n_t=n_t, n_z=1, shape=tuple(shape), n_cells=n_cells, seed=seed)
    with atomic_path(folder) as tmp:
        write_tiff_folder(tmp, data.image.values[:, :, 0], progress=False)
        np.save(tmp / "dark.npy", data.dark.values)
        np.save(tmp / "flat.npy", data.flat.values)
        (tmp / "channels.txt").write_text("\n".join(str(name) for name in data.image.C.values))
    return Path(folder)


def prepare_pipeline(folder: str, n_t: int, mode: Mode, warmup: bool = True) -> Work:
    """Load the calibration of ``folder``; return the pipeline on its first ``n_t`` time points.

    ``"streaming"``: the lazy pipeline saved region by region; ``"load-all"``:
    the image read into memory, the pipeline computed in memory, then saved.
    With ``warmup``, one time point runs untimed first (imports, compiled kernels).
    """
    import dask

    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    # Pinned, so that the store's own choice of scheduler never differs between the modes.
    dask.config.set(scheduler="threads")
    first = _pipeline_run(Path(folder), 1, mode) if warmup else None
    return Work(_pipeline_run(Path(folder), n_t, mode), warmup=first)


def _pipeline_run(folder: Path, n_t: int, mode: Mode) -> Any:
    from nima_lessons.io import read_image
    from nima_lessons.pipeline.run import run_pipeline
    from nima_lessons.store import save

    dark, flat = np.load(folder / "dark.npy"), np.load(folder / "flat.npy")
    names = (folder / "channels.txt").read_text().split()
    channels = {str(index): name for index, name in enumerate(names)}
    # Next to the input, inside the temporary folder that the case removes.
    results = Path(tempfile.mkdtemp(prefix="results-", dir=folder.parent))

    def one_run() -> None:
        image = read_image(folder / "t*_c*.tif", channels=channels).isel(T=slice(0, n_t))
        if mode == "load-all":
            image = image.load()
        result = run_pipeline(image, dark, flat)
        if mode == "load-all":
            result = result.compute()
        target = Path(tempfile.mkdtemp(dir=results)) / "result.zarr"
        save(result, target)
        shutil.rmtree(target.parent)

    return one_run


def _trials(context: Context) -> Trials:
    params = context.params
    counts = sorted(params["n_t"])
    folder = write_timelapse(
        context.scratch / "ratiometric", counts[-1], params["shape"], params["n_cells"]
    )
    for n_t in counts:
        for mode, role in MODES.items():
            yield Trial(
                "pipeline + save",
                mode,
                role,
                {"n_t": n_t, "shape": list(params["shape"]), "n_c": 3},
                job=(
                    f"{__name__}:prepare_pipeline",
                    {"folder": str(folder), "n_t": n_t, "mode": mode, "warmup": params["warmup"]},
                ),
                compare=("seconds", "peak_rss_bytes", "work_rss_bytes"),
            )
    if not params["warmup"]:
        context.note(
            "No warm-up run: times include loading libraries and compiled kernels on first use."
        )


def streaming_claims(
    rows: list[dict], params: Mapping[str, Any], comparisons: Sequence[dict] = ()
) -> list[dict]:
    """Check the streaming claims on the rows of a run (none with fewer than two ``params["n_t"]``).

    The streaming peak grows from the smallest to the largest T by at most
    :data:`STREAMING_PEAK_LIMIT`, and the load-all peak grows more than that.
    The runner's ``comparisons`` (same T, load-all / streaming) are not used.
    """
    counts = sorted(params["n_t"])
    if len(counts) < 2:
        return []
    low, high = counts[0], counts[-1]
    peak = {(row["implementation"], row["params"]["n_t"]): row["peak_rss_bytes"] for row in rows}
    streaming = peak["streaming", high] / peak["streaming", low]
    loaded = peak["load-all", high] / peak["load-all", low]
    return [
        claim(
            f"streaming peak RSS at T={high} / at T={low}, at most {STREAMING_PEAK_LIMIT}",
            streaming,
            STREAMING_PEAK_LIMIT,
            at_least=False,
        ),
        claim(
            f"load-all peak RSS grows more than streaming from T={low} to T={high} "
            "(load-all growth, above the streaming growth)",
            loaded,
            streaming,
        ),
    ]


CASE = Case(
    title="Streaming against load-all: the pipeline for growing T",
    claim="Streamed, the pipeline's peak memory does not grow with the number of time points "
    f"(peak at the largest T / peak at the smallest T <= {STREAMING_PEAK_LIMIT}), while loading "
    "everything first grows with T.",
    # warmup: one time point untimed first in each process; the short presets skip it (each
    # process costs seconds of imports already). The tiny preset runs one T: the tests check
    # the claims on rows of their own.
    presets=presets(
        "n_t shape n_cells warmup",
        tiny=([2], [96, 96], 2, False),
        quick=([2, 4], [128, 128], 4, False),
        full=([5, 10, 20, 40], [512, 512], 30, True),
    ),
    repeats={"tiny": 1, "quick": 1, "full": 1},
    trials=_trials,
    claims=streaming_claims,
    notes=[
        "Each run is a fresh process reading a TIFF-folder time-lapse (one uint16 plane per file, "
        "3 channels) with nima_lessons.io.read_image and writing a zarr result with "
        "nima_lessons.store.save, threads scheduler.",
        "Peak RSS includes the interpreter and libraries (the baseline, about the same for every "
        "run); work MB is the part above it.",
    ],
    figure=functools.partial(plotting.plot_bench_panels, x="n_t", ys=["seconds", "peak_MB"]),
)
