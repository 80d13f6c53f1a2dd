"""Case ``tiled_pipeline``: the whole pipeline on one large stitched plane, in tiles and whole.

A two-channel uint16 plane (a stitched mosaic, :mod:`~nima_lessons.course.synthetic.stitched`)
is read from zarr and taken through the whole pipeline (shading, median, background,
segmentation, ratio), the result saved to zarr and the cells measured from it: once
with the plane in tiles (ours), once as whole planes (the anchor, each plane one chunk).
Each run is a fresh process, so its peak resident memory is its own.

What it measures: wall time and peak RSS of each run; the number of cells, their total
area and the sum of their ratios, which must agree between the two ways.

Besides ``tiny``, ``quick`` and ``full``, the case offers a ``large`` preset (a 50,000 x
50,000 plane, about 10 GB of zarr in the scratch folder, in tiles only), run only when asked
for by name::

    nima-lessons bench --case tiled_pipeline --preset large --out bench-large
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from nima_lessons.course import plotting
from nima_lessons.course.bench.case import Case, Context, Trial, Trials, claim, presets
from nima_lessons.course.bench.harness import Work

__all__ = [
    "CASE",
    "MODES",
    "PEAK_LIMIT_BYTES",
    "prepare_pipeline",
    "tiled_pipeline_claims",
    "write_input",
]

Mode = Literal["tiles", "whole planes"]
#: The two ways, and their roles in the report.
MODES: dict[Mode, Literal["ours", "anchor"]] = {"whole planes": "anchor", "tiles": "ours"}

#: Peak RSS of the tiled run on the 16,384 x 16,384 plane must stay below this.
PEAK_LIMIT_BYTES = 1.5e9
PEAK_LIMIT_SIZE_PX = 16384
#: On this plane the tiled run must be at least as fast as whole planes.
SPEED_SIZE_PX = 8192

OPERATION = "pipeline + save + measure"


def write_input(folder: Path, size_px: int, tile_px: int, field_px: int) -> Path:
    """Write the stitched plane of one size (tiles ``tile_px``) under ``folder``."""
    from nima_lessons.course.synthetic.stitched import write_stitched

    return write_stitched(
        Path(folder) / f"stitched-{size_px}.zarr",
        shape=(size_px, size_px),
        chunks=(tile_px, tile_px),
        field_px=field_px,
        progress=False,
    )


def _pipeline_run(store: Path, mode: Mode, out_dir: Path, crop_px: int | None = None) -> Callable:
    """One run: read, pipeline, save, measure from the saved result; returns the table's figures."""
    import dask
    import numpy as np

    from nima_lessons.course.synthetic.stitched import open_stitched
    from nima_lessons.pipeline import measure, run_pipeline
    from nima_lessons.store import open_result, save

    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    # Pinned, so that both ways run on the same scheduler.
    dask.config.set(scheduler="threads")

    def one_run() -> dict:
        plane = open_stitched(store)
        image, dark, flat = plane.image, plane.dark, plane.flat
        if crop_px is not None:
            crop = {"Y": slice(0, crop_px), "X": slice(0, crop_px)}
            image, dark, flat = image.isel(crop), dark.isel(crop), flat.isel(crop)
        if mode == "whole planes":
            # The established way: one chunk per plane, frames in memory.
            image = image.chunk({"Y": -1, "X": -1})
            dark, flat = dark.values, flat.values
        target = Path(tempfile.mkdtemp(dir=out_dir)) / "result.zarr"
        try:
            save(run_pipeline(image, dark, flat), target)
            result = open_result(target)
            table = measure(result.image, result.labels)
        finally:
            shutil.rmtree(target.parent, ignore_errors=True)
        return {
            "n_cells": len(table),
            "cell_area_px": int(table["area"].sum()),
            "ratio_sum": float(np.nansum(table["ratio"])),
        }

    return one_run


def prepare_pipeline(store: str, mode: Mode, out_dir: str, warmup: bool = True):
    """A benchmark ``job`` target: the run, a small untimed warm-up, and its figures."""
    run_once = _pipeline_run(Path(store), mode, Path(out_dir))
    first = _pipeline_run(Path(store), mode, Path(out_dir), crop_px=256) if warmup else None
    return Work(run_once, warmup=first, record=lambda figures: figures)


def tiled_pipeline_claims(
    rows: list[dict], params: Mapping[str, Any], comparisons: Sequence[dict] = ()
) -> list[dict]:
    """The case's claims on measured rows (those whose plane was measured).

    - at every size measured both ways, tiles and whole planes find the same
      cells (count, total area, sum of ratios to 1e-9);
    - the tiled run's peak RSS on the 16,384^2 plane is below 1.5 GB;
    - on the 8,192^2 plane the tiled run is at least as fast (whole / tiles >= 1).

    The runner's ``comparisons`` are not used: the claims read the rows.
    """
    claims = []
    measured = {(row["implementation"], row["params"]["size_px"]): row for row in rows}
    for size_px in params["sizes_px"]:
        tiles, whole = measured.get(("tiles", size_px)), measured.get(("whole planes", size_px))
        if tiles and whole:
            a, b = tiles["metrics"], whole["metrics"]
            close = abs(a["ratio_sum"] - b["ratio_sum"]) <= 1e-9 * max(1.0, abs(b["ratio_sum"]))
            same = close and all(a[key] == b[key] for key in ("n_cells", "cell_area_px"))
            text = f"tiles and whole planes find the same cells at {size_px}^2"
            claims.append(claim(text, float(same), 1.0))
        if tiles and size_px == PEAK_LIMIT_SIZE_PX:
            claims.append(
                claim(
                    f"peak RSS of the tiled pipeline on a {size_px}^2 two-channel plane, "
                    f"GB (at most {PEAK_LIMIT_BYTES / 1e9})",
                    tiles["peak_rss_bytes"] / 1e9,
                    PEAK_LIMIT_BYTES / 1e9,
                    at_least=False,
                )
            )
        if tiles and whole and size_px == SPEED_SIZE_PX:
            claims.append(
                claim(
                    f"whole planes / tiles, seconds, {size_px}^2 (at least 1: tiles as fast)",
                    whole["seconds"]["median"] / tiles["seconds"]["median"],
                    1.0,
                )
            )
    return claims


def _trials(context: Context) -> Trials:
    params = context.params
    for size_px in params["sizes_px"]:
        store = write_input(context.scratch, size_px, params["tile_px"], params["field_px"])
        for mode, role in MODES.items():
            if mode == "whole planes" and size_px > params["whole_up_to_px"]:
                continue
            job = {"store": str(store), "mode": mode, "out_dir": str(context.scratch)}
            yield Trial(
                OPERATION,
                mode,
                role,
                {"size_px": size_px, "tile_px": params["tile_px"]},
                job=(f"{__name__}:prepare_pipeline", job),
                compare=("seconds", "peak_rss_bytes"),
                timeout_s=4 * 3600,
            )


CASE = Case(
    title="The whole pipeline on one large stitched plane: tiles against whole planes",
    figure=functools.partial(plotting.plot_bench_panels, x="size_px", ys=["seconds", "peak_MB"]),
    claim=(
        "In tiles, the pipeline gives the whole-plane cells, with a peak memory that follows "
        "the tile size (under 1.5 GB for a 16,384^2 two-channel plane) and, on two cores, "
        "at least the speed of whole planes (8,192^2)."
    ),
    # Plane sides, tile side, camera field side; whole planes only up to whole_up_to_px:
    # whole 16,384^2 planes would need about 30 GB (7.3 GB measured at 8,192^2).
    presets=presets(
        "sizes_px tile_px field_px whole_up_to_px",
        tiny=([192], 64, 96, 192),
        quick=([2048], 512, 1024, 2048),
        full=([8192, 16384], 1024, 2048, 8192),
        large=([50000], 1024, 2048, 0),
    ),
    repeats={"tiny": 1, "quick": 1, "full": 1, "large": 1},
    trials=_trials,
    claims=tiled_pipeline_claims,
    notes=[
        "Input: a two-channel uint16 plane (G, C) in zarr, one chunk per tile and channel, "
        "written tile by tile; dark and flat frames of one camera field repeated over the "
        "mosaic. Each run reads it, runs the pipeline (default settings), saves the result "
        "to zarr and measures the cells from the saved result, in a fresh process (threads "
        "scheduler) after an untimed warm-up on a 256-px crop.",
        "Tiles: the image's own chunks. Whole planes: the same image with each plane in one "
        "chunk and the frames in memory.",
        "Tiled runs compute the background levels and thresholds from per-tile summaries "
        "(several passes over the tiles) and label in two passes: more work than whole "
        "planes, spread over every core.",
    ],
)
