"""The nima ratiometric pipeline, lazy and chunked, on xarray + dask.

Each step is a numpy function of one plane lifted to dask; ``run_pipeline``
chains them and ``save`` writes the result chunk by chunk.
"""

from nima_lessons.pipeline._lift import apply_per_plane, is_tiled, whole_planes
from nima_lessons.pipeline._background import BACKGROUND_METHODS, background, background_level
from nima_lessons.pipeline._measure import measure, measure_plane
from nima_lessons.pipeline._median import FOOTPRINTS, make_footprint, median, median_plane
from nima_lessons.pipeline._ratio import ratio, ratio_plane
from nima_lessons.pipeline._segment import THRESHOLD_METHODS, segment, segment_plane
from nima_lessons.pipeline._shading import shading, shading_plane
from nima_lessons.pipeline.run import IMAGE_DIMS, PRESETS, PipelineConfig, run_pipeline
from nima_lessons.store import save

__all__ = [
    "BACKGROUND_METHODS",
    "FOOTPRINTS",
    "IMAGE_DIMS",
    "THRESHOLD_METHODS",
    "PipelineConfig",
    "apply_per_plane",
    "background",
    "background_level",
    "is_tiled",
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
    "whole_planes",
]
