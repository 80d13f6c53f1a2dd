"""The whole nima workflow in one call: shading, median, background, segmentation, ratio.

The result is a lazy ``xarray.Dataset``; computing or saving it streams plane by
plane, so memory does not grow with the number of time points.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from nima_lessons.io import select_channels
from nima_lessons.pipeline._background import (
    BACKGROUND_METHODS,
    BACKGROUND_OPTIONS,
    background,
)
from nima_lessons.pipeline._lift import check_dims
from nima_lessons.pipeline._median import FOOTPRINTS, median
from nima_lessons.pipeline._ratio import check_median_sizes, ratio
from nima_lessons.pipeline._segment import MASK_CLEANUPS, THRESHOLD_METHODS, segment
from nima_lessons.pipeline._shading import shading

__all__ = ["IMAGE_DIMS", "PRESETS", "PipelineConfig", "run_pipeline"]

IMAGE_DIMS = ("T", "C", "Z", "Y", "X")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Settings of :func:`run_pipeline`.

    Attributes
    ----------
    median_radius : int or None
        Radius of the median filter applied to every plane; ``None`` or 0
        skips it (nima's ``--hotpixels``: a radius-1 disk; off by default).
    median_footprint : {"disk", "square"}
        Shape of the median neighbourhood.
    background_method : str
        Per-plane background estimator, see :func:`background`: this project's
        "li", "percentile" and "sigma", or nima's methods "li_adaptive" (nima's
        default), "li_li", "arcsinh", "adaptive", "entropy" and "inverse_yen".
    background_percentile : float
        Percentile used by ``background_method="percentile"``.
    background_block_size : int or None
        Block of the local threshold of the "li_adaptive" and "adaptive"
        methods, odd, in pixels (nima's ``--bg-adaptive-radius``); ``None``:
        half the plane's width, made odd.
    background_radius : int
        Filter size of the "arcsinh" method and entropy disk radius of the
        "entropy" method, in pixels (nima's ``--bg-radius``).
    background_range_percent : float
        "arcsinh" and "entropy": background is below this percentage of the
        filtered image's range (nima's ``--bg-percentile``).
    background_filter_percentile : float
        Percentile of the "arcsinh" method's percentile filter (nima's
        ``--bg-percentile-filter``).
    segment_method : {"yen", "li", "otsu"}
        Per-plane threshold used by :func:`segment`; "li" by default, as
        Yen's threshold can drop the dimmest cells when cell brightness
        varies several-fold within a field (nima uses "yen").
    min_size : int
        Smallest cell kept, in pixels (nima: 640).
    mask_cleanup : {"fill_holes", "closing"}
        After small objects are removed: fill the holes of the mask, or close
        it morphologically with a 4-neighbour cross as nima does.
    watershed : bool
        Split touching cells.
    labels_through_time : bool
        Label the (T, Y, X) mask of each Z plane as one volume, as nima does,
        so that a cell keeps its label at every time point (see
        :func:`label_through_time`); ``False`` numbers each plane on its own.
        Every time point's labels then depend on all time points: computing
        or saving part of the result segments every plane. Cannot be
        combined with ``watershed``.
    numerator, denominator : str
        Channels of the ratio image.
    ratio_smooth_radius : int or None
        Median radius applied to both ratio channels before dividing.
    ratio_median_sizes : tuple of int
        nima's smoothing of the ratio image itself: square median windows of
        these odd sizes in turn, e.g. ``(7, 3)`` (see :func:`ratio`); empty:
        none.
    """

    median_radius: int | None = 1
    median_footprint: Literal["disk", "square"] = "disk"
    background_method: Literal[
        "li", "percentile", "sigma",
        "li_adaptive", "li_li", "arcsinh", "adaptive", "entropy", "inverse_yen",
    ] = "li"  # fmt: skip
    background_percentile: float = 10.0
    background_block_size: int | None = None
    background_radius: int = 10
    background_range_percent: float = 10.0
    background_filter_percentile: float = 80.0
    segment_method: Literal["yen", "li", "otsu"] = "li"
    min_size: int = 20
    mask_cleanup: Literal["fill_holes", "closing"] = "fill_holes"
    watershed: bool = False
    labels_through_time: bool = False
    numerator: str = "G"
    denominator: str = "C"
    ratio_smooth_radius: int | None = None
    ratio_median_sizes: tuple[int, ...] = ()

    def __post_init__(self):
        choices = {
            "median_footprint": FOOTPRINTS,
            "background_method": BACKGROUND_METHODS,
            "segment_method": tuple(THRESHOLD_METHODS),
            "mask_cleanup": MASK_CLEANUPS,
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
        for field in ("background_percentile", "background_range_percent",
                      "background_filter_percentile"):  # fmt: skip
            if not 0 <= getattr(self, field) <= 100:
                raise ValueError(f"{field} must be in [0, 100], got {getattr(self, field)}")
        block = self.background_block_size
        if block is not None and (not isinstance(block, (int, np.integer)) or block < 3
                                  or block % 2 == 0):  # fmt: skip
            raise ValueError(
                f"background_block_size must be None or an odd integer >= 3, got {block!r}"
            )
        if not isinstance(self.background_radius, (int, np.integer)) or self.background_radius < 1:
            raise ValueError(
                f"background_radius must be an integer >= 1, got {self.background_radius!r}"
            )
        # A list from a command line or a JSON file becomes the hashable tuple.
        sizes = check_median_sizes(self.ratio_median_sizes, "ratio_median_sizes")
        object.__setattr__(self, "ratio_median_sizes", sizes)
        if self.labels_through_time and self.watershed:
            raise ValueError(
                "labels_through_time labels the mask as a (T, Y, X) volume, which would join "
                "again the cells watershed splits: choose one"
            )

    def background_options(self) -> dict:
        """Keyword options of :func:`background` for the chosen method."""
        return {
            option: getattr(self, f"background_{option}")
            for option in BACKGROUND_OPTIONS[self.background_method]
            if hasattr(self, f"background_{option}")
        }


#: Named settings: ``PRESETS[name]`` is a complete :class:`PipelineConfig`.
#: "nima" reproduces nima 0.11's command line (``nima image.tif G R C``) with its
#: defaults: no median, li_adaptive background, Yen threshold, objects of 640 px and
#: more, closing, cells numbered through time, ratio images smoothed by medians 7 and 3.
PRESETS: dict[str, PipelineConfig] = {
    "default": PipelineConfig(),
    "nima": PipelineConfig(
        median_radius=None,
        background_method="li_adaptive",
        segment_method="yen",
        min_size=640,
        mask_cleanup="closing",
        labels_through_time=True,
        numerator="G",
        denominator="C",
        ratio_median_sizes=(7, 3),
    ),
}


def run_pipeline(
    im: xr.DataArray,
    dark: ArrayLike | xr.DataArray | None = None,
    flat: ArrayLike | xr.DataArray | None = None,
    config: PipelineConfig | None = None,
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
    corrected, levels = background(
        corrected, config.background_method, **config.background_options()
    )
    labels = segment(
        corrected,
        config.segment_method,
        min_size=config.min_size,
        watershed=config.watershed,
        cleanup=config.mask_cleanup,
        through_time=config.labels_through_time,
    )
    ratios = ratio(
        corrected,
        config.numerator,
        config.denominator,
        mask=labels,
        smooth_radius=config.ratio_smooth_radius,
        median_sizes=config.ratio_median_sizes,
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
