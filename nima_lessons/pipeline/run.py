"""The whole nima workflow in one call: shading, median, background, segmentation, ratio.

The result is a lazy ``xarray.Dataset``; computing or saving it streams plane by
plane, so memory does not grow with the number of time points.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from nima_lessons.pipeline._background import BACKGROUND_METHODS, background
from nima_lessons.pipeline._lift import check_dims
from nima_lessons.pipeline._median import FOOTPRINTS, median
from nima_lessons.pipeline._ratio import ratio
from nima_lessons.pipeline._segment import THRESHOLD_METHODS, segment, select_channels
from nima_lessons.pipeline._shading import shading

IMAGE_DIMS = ("T", "C", "Z", "Y", "X")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Settings of :func:`run_pipeline`.

    Attributes
    ----------
    median_radius : int or None
        Radius of the median filter applied to every plane; ``None`` or 0
        skips it (nima: a radius-1 disk).
    median_footprint : {"disk", "square"}
        Shape of the median neighbourhood.
    background_method : {"li", "percentile", "sigma"}
        Per-plane background estimator, see :func:`background`.
    background_percentile : float
        Percentile used by ``background_method="percentile"``.
    segment_method : {"yen", "li", "otsu"}
        Per-plane threshold used by :func:`segment`; "li" by default, as
        Yen's threshold can drop the dimmest cells when cell brightness
        varies several-fold within a field.
    min_size : int
        Smallest cell kept, in pixels.
    watershed : bool
        Split touching cells.
    numerator, denominator : str
        Channels of the ratio image.
    ratio_smooth_radius : int or None
        Median radius applied to both ratio channels before dividing.
    """

    median_radius: int | None = 1
    median_footprint: str = "disk"
    background_method: str = "li"
    background_percentile: float = 10.0
    segment_method: str = "li"
    min_size: int = 20
    watershed: bool = False
    numerator: str = "G"
    denominator: str = "C"
    ratio_smooth_radius: int | None = None

    def __post_init__(self):
        choices = {
            "median_footprint": FOOTPRINTS,
            "background_method": BACKGROUND_METHODS,
            "segment_method": tuple(THRESHOLD_METHODS),
        }
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} must be one of {allowed}, got {getattr(self, field)!r}")
        for field in ("median_radius", "ratio_smooth_radius"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
                raise ValueError(f"{field} must be None or an integer >= 0, got {value!r}")
        if self.min_size < 0:
            raise ValueError(f"min_size must be >= 0 pixels, got {self.min_size}")
        if not 0 <= self.background_percentile <= 100:
            raise ValueError(
                f"background_percentile must be in [0, 100], got {self.background_percentile}"
            )


#: Named settings: ``PRESETS[name]`` is a complete :class:`PipelineConfig`.
PRESETS: dict[str, PipelineConfig] = {"default": PipelineConfig()}


def run_pipeline(
    im: xr.DataArray, dark=None, flat=None, config: PipelineConfig | None = None
) -> xr.Dataset:
    """Chain the nima steps on an image; nothing is computed.

    Steps: shading correction (when ``dark`` or ``flat`` is given), median
    filter, background subtraction, segmentation, ratio inside the cells.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims ("T", "C", "Z", "Y", "X") and channel names as C
        coordinate (see :func:`nima_lessons.io.read_image`); numpy- or
        dask-backed.
    dark, flat : array-like or xarray.DataArray, optional
        (Y, X) or (C, Y, X) frames; a missing dark is 0, a missing flat 1.
    config : PipelineConfig, optional
        Step settings; default ``PipelineConfig()``.

    Returns
    -------
    xarray.Dataset
        Variables "image" (corrected, float, (T, C, Z, Y, X)), "labels" (int32,
        (T, Z, Y, X)), "ratio" (float64, (T, Z, Y, X), NaN outside cells) and
        "background" (float64 per-plane levels, (T, C, Z)); dask-backed if
        ``im`` is, chunked one plane per chunk.

    Raises
    ------
    ValueError
        If ``im`` lacks a dim or the ratio channels are not among its channels.

    Examples
    --------
    >>> im = xr.DataArray(np.ones((1, 3, 1, 8, 8)), dims=IMAGE_DIMS, coords={"C": ["G", "R", "C"]})
    >>> sorted(run_pipeline(im).data_vars)
    ['background', 'image', 'labels', 'ratio']
    """
    config = PipelineConfig() if config is None else config
    if not isinstance(config, PipelineConfig):
        raise TypeError(f"config must be a PipelineConfig, got {type(config).__name__}")
    check_dims(im, "im", IMAGE_DIMS)
    im = im.transpose(*IMAGE_DIMS)
    select_channels(im, [config.numerator, config.denominator], "config numerator/denominator")
    from nima_lessons.pipeline._shading import uniform_frame
    from nima_lessons.pipeline._tiled_segment import check_tiled_options

    # Planes in tiles: refuse options without a tiled version before any work.
    check_tiled_options(im, config.background_method, config.segment_method, config.watershed)
    corrected = im
    if dark is not None or flat is not None:
        dark = uniform_frame(im, 0.0) if dark is None else dark
        flat = uniform_frame(im, 1.0) if flat is None else flat
        corrected = shading(corrected, dark, flat)
    if config.median_radius:
        corrected = median(corrected, config.median_footprint, config.median_radius)
    options = (
        {"percentile": config.background_percentile}
        if config.background_method == "percentile"
        else {}
    )
    corrected, levels = background(corrected, config.background_method, **options)
    labels = segment(
        corrected, config.segment_method, min_size=config.min_size, watershed=config.watershed
    )
    ratios = ratio(
        corrected,
        config.numerator,
        config.denominator,
        mask=labels,
        smooth_radius=config.ratio_smooth_radius,
    )
    result = xr.Dataset(
        {
            "image": corrected.transpose(*IMAGE_DIMS),
            "labels": labels.transpose("T", "Z", "Y", "X"),
            "ratio": ratios.transpose("T", "Z", "Y", "X"),
            "background": levels.transpose("T", "C", "Z"),
        }
    )
    result.attrs["pipeline_config"] = str(dataclasses.asdict(config))
    return result
