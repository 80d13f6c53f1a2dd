"""Synthetic data for every lesson: nothing has to be downloaded.

Mandelbrot zoom stacks (delayed loading), nuclei images (tiled counting), TIFF-folder
time-lapses (lazy loading) and ratiometric time-lapses (the analysis pipeline).
"""

from nima_lessons.course.synthetic.datasets import (
    DATASETS,
    DatasetName,
    dataset_parameters,
    dataset_path,
    ensure_dataset,
    is_dataset_complete,
)
from nima_lessons.course.synthetic.mandelbrot import (
    MAX_ITERATIONS,
    START_WIDTH,
    ZOOM_CENTRE,
    ZOOM_PER_LEVEL,
    UniformFrame,
    first_uniform_frame,
    frame_width,
    is_uniform,
    mandelbrot_frame,
    mandelbrot_stack,
    mandelbrot_stack_delayed,
    rendered_frames,
)
from nima_lessons.course.synthetic.nuclei import (
    NUCLEI_THRESHOLD,
    NucleiImage,
    NucleiLayout,
    nuclei_count,
    nuclei_image,
    nuclei_layout,
    render_nuclei,
)
from nima_lessons.course.synthetic.nuclei_zarr import (
    nuclei_dask,
    open_nuclei_zarr,
    write_nuclei_zarr,
)
from nima_lessons.course.synthetic.ratiometric import (
    CHANNELS,
    RATIOMETRIC_FILES,
    RatiometricData,
    RatiometricScene,
    max_cells,
    open_ratiometric,
    ratiometric_scene,
    ratiometric_timelapse,
    write_ratiometric,
)
from nima_lessons.course.synthetic.timelapse import (
    FILE_PATTERN,
    TimelapseScene,
    timelapse_array,
    timelapse_scene,
    write_tiff_folder,
    write_tiff_timelapse,
)

__all__ = [
    "CHANNELS",
    "DATASETS",
    "FILE_PATTERN",
    "MAX_ITERATIONS",
    "NUCLEI_THRESHOLD",
    "RATIOMETRIC_FILES",
    "START_WIDTH",
    "ZOOM_CENTRE",
    "ZOOM_PER_LEVEL",
    "DatasetName",
    "NucleiImage",
    "NucleiLayout",
    "RatiometricData",
    "RatiometricScene",
    "TimelapseScene",
    "UniformFrame",
    "dataset_parameters",
    "dataset_path",
    "ensure_dataset",
    "first_uniform_frame",
    "frame_width",
    "is_dataset_complete",
    "is_uniform",
    "mandelbrot_frame",
    "mandelbrot_stack",
    "mandelbrot_stack_delayed",
    "max_cells",
    "nuclei_count",
    "nuclei_dask",
    "nuclei_image",
    "nuclei_layout",
    "open_nuclei_zarr",
    "open_ratiometric",
    "ratiometric_scene",
    "ratiometric_timelapse",
    "render_nuclei",
    "rendered_frames",
    "timelapse_array",
    "timelapse_scene",
    "write_nuclei_zarr",
    "write_ratiometric",
    "write_tiff_folder",
    "write_tiff_timelapse",
]


def __getattr__(name: str) -> object:
    """``is_complete`` is now :func:`is_dataset_complete` (``store.is_complete`` tests a result)."""
    from nima_lessons._moved import moved_attribute

    return moved_attribute(__name__, name, {"is_complete": f"{__name__}:is_dataset_complete"})
