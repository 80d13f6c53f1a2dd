"""Case 5: what tiling with margins costs, a ``map_overlap`` gaussian against the whole image.

Every tile is filtered with a margin of ``depth_px`` pixels borrowed from its
neighbours; small tiles and deep margins recompute more pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import dask.array as da
import numpy as np
import scipy.ndimage as ndi

from nima_lessons.course.bench.harness import comparison, measurement, time_repeats

TITLE = "Overlap cost: map_overlap gaussian against tile size and depth"
CLAIM = (
    "Tiling costs the margins and one task per tile: time relative to the whole image grows as "
    "tiles shrink and margins deepen, and a margin of ceil(truncate x sigma) pixels makes the "
    "tiled result exact."
)

PRESETS = {
    "full": {
        "size_px": 2048,
        "sigma_px": 4.0,
        "tiles_px": [128, 256, 512, 1024],
        "depths_px": [0, 8, 16, 32],
        "scheduler": "synchronous",
    },
    "quick": {
        "size_px": 1024,
        "sigma_px": 4.0,
        "tiles_px": [128, 512],
        "depths_px": [0, 16],
        "scheduler": "synchronous",
    },
    "tiny": {
        "size_px": 96,
        "sigma_px": 2.0,
        "tiles_px": [32],
        "depths_px": [0, 8],
        "scheduler": "synchronous",
    },
}
REPEATS = {"full": 3, "quick": 2, "tiny": 1}

TRUNCATE = 4.0


def extra_pixels_fraction(size_px: int, tile_px: int, depth_px: int) -> float:
    """Return how many more pixels the tiles filter than the image has, as a fraction.

    Margins are clipped at the image border (``boundary="none"``).

    Examples
    --------
    >>> extra_pixels_fraction(100, 50, 0)
    0.0
    >>> round(extra_pixels_fraction(100, 50, 10), 2)
    0.44
    """
    starts = range(0, size_px, tile_px)
    padded_side = sum(
        min(start + tile_px + depth_px, size_px) - max(start - depth_px, 0) for start in starts
    )
    return padded_side**2 / size_px**2 - 1


def tiled_gaussian(image: np.ndarray, tile_px: int, depth_px: int, sigma_px: float) -> da.Array:
    """Lazy gaussian of ``image`` computed tile by tile with ``depth_px`` margins.

    The image border is handled by the filter itself (``mode="nearest"``) and
    not padded by dask, as dask-image does.
    """
    tiles = da.from_array(image, chunks=tile_px)
    return tiles.map_overlap(
        ndi.gaussian_filter,
        depth=depth_px,
        boundary="none",
        dtype=image.dtype,
        sigma=sigma_px,
        mode="nearest",
        truncate=TRUNCATE,
    )


def run(params: dict, repeats: int, copy_MBps: float, log: Callable[[str], None]) -> dict:
    """Time the whole-image gaussian and every tile size and depth.

    Parameters
    ----------
    params : dict
        ``size_px`` (square float32 image side), ``sigma_px``, ``tiles_px``,
        ``depths_px`` and ``scheduler`` (synchronous by default: one core,
        so the ratio is extra work, not parallel speed-up).
    repeats : int
        Timed runs per figure.
    copy_MBps : float
        Unused (the memory-copy reference of other cases).
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        ``rows``, ``comparisons``, ``claims`` and ``notes``.
    """
    size_px, sigma_px, scheduler = params["size_px"], params["sigma_px"], params["scheduler"]
    image = np.random.default_rng(0).random((size_px, size_px), dtype=np.float32)
    log(f"overlap_cost: whole {size_px}x{size_px} image")
    whole_result = ndi.gaussian_filter(image, sigma_px, mode="nearest", truncate=TRUNCATE)
    whole_seconds = time_repeats(
        lambda: ndi.gaussian_filter(image, sigma_px, mode="nearest", truncate=TRUNCATE), repeats
    )
    exact_depth = math.ceil(sigma_px * TRUNCATE)
    base = {"size_px": size_px, "sigma_px": sigma_px, "scheduler": scheduler}
    whole = measurement(
        "gaussian",
        "scipy whole image",
        "anchor",
        dict(base, tile_px=None, depth_px=None),
        whole_seconds,
        relative_to_whole=1.0,
        extra_pixels_fraction=0.0,
        max_error=0.0,
    )
    rows, comparisons = [whole], []
    for tile_px in params["tiles_px"]:
        for depth_px in params["depths_px"]:
            log(f"overlap_cost: tiles {tile_px} px, depth {depth_px} px")
            lazy = tiled_gaussian(image, tile_px, depth_px, sigma_px)
            error = float(np.abs(lazy.compute(scheduler=scheduler) - whole_result).max())
            seconds = time_repeats(lambda lazy=lazy: lazy.compute(scheduler=scheduler), repeats)
            row = measurement(
                "gaussian",
                "dask map_overlap",
                "ours",
                dict(base, tile_px=tile_px, depth_px=depth_px),
                seconds,
                relative_to_whole=seconds["median"] / whole_seconds["median"],
                extra_pixels_fraction=extra_pixels_fraction(size_px, tile_px, depth_px),
                max_error=error,
                exact_depth=depth_px >= exact_depth,
            )
            rows.append(row)
            comparisons.append(comparison(whole, row))
    notes = [
        f"The gaussian (sigma {sigma_px:g} px, truncated at {TRUNCATE:g} sigma) reaches "
        f"{exact_depth} px: from that depth on the tiled result equals the whole-image one "
        "(max_error 0 up to rounding).",
        f"Scheduler: {scheduler}. relative_to_whole = tiled time / whole-image time "
        "(the inverse of the "
        "anchor / ours ratio); extra_pixels_fraction is the work the margins add.",
    ]
    return {
        "rows": rows,
        "comparisons": comparisons,
        "claims": _claims(rows, exact_depth),
        "notes": notes,
    }


def _claims(rows: list[dict], exact_depth: int) -> list[dict]:
    exact = [
        row
        for row in rows
        if row["params"]["depth_px"] is not None and row["params"]["depth_px"] >= exact_depth
    ]
    if not exact:
        return []
    worst = max(row["metrics"]["max_error"] for row in exact)
    return [
        {
            "claim": f"with a margin of at least {exact_depth} px the tiled gaussian equals "
            "the whole-image one "
            "(largest absolute difference, at most 1e-5)",
            "value": worst,
            "threshold": 1e-5,
            "holds": bool(worst <= 1e-5),
        }
    ]
