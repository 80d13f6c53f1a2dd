"""The nima ratiometric pipeline, lazy and chunked, on xarray + dask.

Each step is a numpy function of one plane lifted to dask; ``run_pipeline``
chains them (``PRESETS["nima"]`` reproduces nima's command line) and ``save``
writes the result chunk by chunk.
"""

from nima_lessons.pipeline._lift import PlaneRechunkWarning, apply_per_plane, whole_planes
from nima_lessons.pipeline._background import (
    BACKGROUND_METHODS,
    BACKGROUND_OPTIONS,
    background,
    background_level,
)
from nima_lessons.pipeline._measure import label_medians, measure, measure_plane
from nima_lessons.pipeline._median import FOOTPRINTS, make_footprint, median, median_plane
from nima_lessons.pipeline._ratio import ratio, ratio_plane, smoothed_ratio_plane
from nima_lessons.pipeline._segment import (
    MASK_CLEANUPS,
    THRESHOLD_METHODS,
    label_through_time,
    segment,
    segment_plane,
)
from nima_lessons.pipeline._shading import shading, shading_plane
from nima_lessons.pipeline.run import IMAGE_DIMS, PRESETS, PipelineConfig, run_pipeline
from nima_lessons.store import save

__all__ = [
    "BACKGROUND_METHODS",
    "BACKGROUND_OPTIONS",
    "FOOTPRINTS",
    "IMAGE_DIMS",
    "MASK_CLEANUPS",
    "PRESETS",
    "THRESHOLD_METHODS",
    "PipelineConfig",
    "PlaneRechunkWarning",
    "apply_per_plane",
    "background",
    "background_level",
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
    "save",
    "segment",
    "segment_plane",
    "shading",
    "shading_plane",
    "smoothed_ratio_plane",
    "whole_planes",
]
