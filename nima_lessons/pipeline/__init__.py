"""The nima ratiometric pipeline, lazy and chunked, on xarray + dask.

Each step is a numpy function of one plane lifted to dask; ``run_pipeline``
chains them (``PRESETS["nima"]`` reproduces nima's command line) and
``nima_lessons.store.save`` writes the result chunk by chunk.
"""

import warnings

from nima_lessons.pipeline._background import (
    BACKGROUND_METHODS,
    BACKGROUND_OPTIONS,
    background,
    background_level,
)
from nima_lessons.pipeline._lift import apply_per_plane, is_tiled, whole_planes
from nima_lessons.pipeline._measure import label_medians, measure, measure_plane
from nima_lessons.pipeline._median import FOOTPRINTS, make_footprint, median, median_plane
from nima_lessons.pipeline._ratio import ratio, ratio_plane, smoothed_ratio_plane
from nima_lessons.pipeline._segment import (
    MASK_CLEANUPS,
    THRESHOLD_METHODS,
    label_through_time,
    segment,
    segment_plane,
    split_touching,
)
from nima_lessons.pipeline._shading import shading, shading_plane
from nima_lessons.pipeline.run import IMAGE_DIMS, PRESETS, PipelineConfig, run_pipeline

__all__ = [
    "BACKGROUND_METHODS",
    "BACKGROUND_OPTIONS",
    "FOOTPRINTS",
    "IMAGE_DIMS",
    "MASK_CLEANUPS",
    "PRESETS",
    "THRESHOLD_METHODS",
    "PipelineConfig",
    "apply_per_plane",
    "background",
    "background_level",
    "is_tiled",
    "label_medians",
    "label_through_time",
    "make_footprint",
    "measure",
    "measure_plane",
    "median",
    "median_plane",
    "ratio",
    "ratio_plane",
    "run_pipeline",
    "segment",
    "segment_plane",
    "shading",
    "shading_plane",
    "smoothed_ratio_plane",
    "split_touching",
    "whole_planes",
]


def __getattr__(name):
    # ``from nima_lessons.pipeline import save`` worked in earlier versions; saving
    # now lives in nima_lessons.store only, so that the pipeline does not depend on it.
    if name == "save":
        warnings.warn(
            "nima_lessons.pipeline.save is deprecated: use nima_lessons.store.save",
            DeprecationWarning,
            stacklevel=2,
        )
        from nima_lessons.store import save

        return save
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
