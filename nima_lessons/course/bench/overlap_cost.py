"""Case ``overlap_cost``: what tiling with margins costs, a tiled gaussian against the whole image.

Every tile is filtered with a margin of ``depth_px`` pixels borrowed from its neighbours;
small tiles and deep margins recompute more pixels
(:func:`nima_lessons.tiling.extra_pixel_fraction`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np
import scipy.ndimage as ndi

from nima_lessons.course import plotting
from nima_lessons.course.bench.case import Case, Context, Trial, Trials, claim, presets
from nima_lessons.tiling import TRUNCATE, extra_pixel_fraction, overlap_for, tiled_apply

__all__ = ["CASE"]


def _trials(context: Context) -> Trials:
    params = context.params
    size_px, scheduler = params["size_px"], params["scheduler"]
    image = np.random.default_rng(0).random((size_px, size_px), dtype=np.float32)
    gaussian = functools.partial(
        ndi.gaussian_filter, sigma=params["sigma_px"], mode="nearest", truncate=TRUNCATE
    )
    whole = gaussian(image)
    exact_depth = overlap_for(gaussian)
    base = {"size_px": size_px, "sigma_px": params["sigma_px"], "scheduler": scheduler}
    at_whole = {**base, "tile_px": None, "depth_px": None}
    figures = {"relative_to_whole": 1.0, "extra_pixels_fraction": 0.0, "max_error": 0.0}
    run = functools.partial(gaussian, image)
    whole_row = yield Trial(
        "gaussian", "scipy whole image", "anchor", at_whole, run=run, metrics=figures
    )
    for tile_px in params["tiles_px"]:
        for depth_px in params["depths_px"]:
            lazy = tiled_apply(gaussian, image, tile_px, depth_px, dtype=image.dtype)
            chunks = da.core.normalize_chunks(tile_px, image.shape)
            row = yield Trial(
                "gaussian",
                "dask map_overlap",
                "ours",
                {**base, "tile_px": tile_px, "depth_px": depth_px},
                run=functools.partial(lazy.compute, scheduler=scheduler),
                record=lambda tiled: {"max_error": float(np.abs(tiled - whole).max())},
                metrics={
                    "extra_pixels_fraction": extra_pixel_fraction(chunks, depth_px),
                    "exact_depth": depth_px >= exact_depth,
                },
            )
            relative = row["seconds"]["median"] / whole_row["seconds"]["median"]
            row["metrics"]["relative_to_whole"] = relative
    context.note(
        f"The gaussian (sigma {params['sigma_px']:g} px, truncated at {TRUNCATE:g} sigma) reaches "
        f"{exact_depth} px: from that depth on the tiled result equals the whole-image one."
    )


def _claims(rows: list[dict], params: Mapping[str, Any], comparisons: list[dict]) -> list[dict]:
    exact = [row["metrics"]["max_error"] for row in rows if row["metrics"].get("exact_depth")]
    if not exact:
        return []
    return [
        claim(
            "with a margin of at least ceil(truncate x sigma) px the tiled gaussian equals the "
            "whole-image one (largest absolute difference, at most 1e-5)",
            max(exact),
            1e-5,
            at_least=False,
        )
    ]


CASE = Case(
    title="Overlap cost: map_overlap gaussian against tile size and depth",
    claim="Tiling costs the margins and one task per tile: time relative to the whole image grows "
    "as tiles shrink and margins deepen, and a margin of ceil(truncate x sigma) pixels makes the "
    "tiled result exact.",
    presets=presets(
        "size_px sigma_px tiles_px depths_px scheduler",
        tiny=(96, 2.0, [32], [0, 8], "synchronous"),
        quick=(1024, 4.0, [128, 512], [0, 16], "synchronous"),
        full=(2048, 4.0, [128, 256, 512, 1024], [0, 8, 16, 32], "synchronous"),
    ),
    repeats={"tiny": 1, "quick": 2, "full": 3},
    trials=_trials,
    claims=_claims,
    notes=[
        "Scheduler: synchronous (one core), so the ratio is extra work, not parallel speed-up. "
        "relative_to_whole = tiled time / whole-image time; extra_pixels_fraction is the work "
        "the margins add."
    ],
    figure=functools.partial(
        plotting.plot_bench_panels,
        x="tile_px",
        ys=["relative_to_whole", "extra_pixels_fraction"],
        by="depth_px",
        logx=True,
    ),
)
