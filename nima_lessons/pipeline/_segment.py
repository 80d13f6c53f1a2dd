"""Cell segmentation of each (T, Z) plane from all channels together.

Geometric mean over channels, a per-plane automatic threshold, cleaning, labelling
and an optional watershed that splits touching cells; thresholds are computed per
plane when the plane is computed, never globally.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi
import skimage.filters
import skimage.morphology
import skimage.segmentation
import xarray as xr

from nima_lessons.pipeline._lift import apply_per_plane, check_dims

THRESHOLD_METHODS = {
    "yen": skimage.filters.threshold_yen,
    "li": skimage.filters.threshold_li,
    "otsu": skimage.filters.threshold_otsu,
}


def geometric_mean(planes: np.ndarray) -> np.ndarray:
    """Pixelwise geometric mean of a (C, Y, X) stack, in float64.

    Zero in any channel gives zero (negative values are clipped to 0 first).
    """
    stack = np.clip(np.asarray(planes, dtype=np.float64), 0, None)
    return np.prod(stack, axis=0) ** (1.0 / stack.shape[0])


def threshold_mask(plane: np.ndarray, method: str = "yen") -> np.ndarray:
    """Boolean mask of the pixels above the plane's automatic threshold.

    A plane without contrast (constant, or non-finite everywhere) gives an
    empty mask.
    """
    finite = plane[np.isfinite(plane)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.zeros(plane.shape, dtype=bool)
    threshold = THRESHOLD_METHODS[method](finite)
    return plane > threshold


def remove_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Drop connected objects (4-connected) with fewer than ``min_size`` pixels."""
    labels, n_objects = ndi.label(mask)
    if n_objects == 0:
        return mask
    areas = np.bincount(labels.ravel(), minlength=n_objects + 1)
    keep = areas >= min_size
    keep[0] = False
    return keep[labels]


def split_touching(mask: np.ndarray, seed_depth_px: float = 2.0) -> np.ndarray:
    """Label ``mask``, splitting touching round objects by a distance watershed.

    Seeds are the regional maxima of the distance to the background that rise
    at least ``seed_depth_px`` above the saddle joining them to a higher
    maximum (h-maxima), so the flat ridge of an elongated cell gives one seed
    while two discs joined by a neck give two.
    """
    distance = ndi.distance_transform_edt(mask)
    # Lowering every peak by seed_depth_px (reconstruction by dilation) merges
    # maxima whose saddle is shallower into one plateau: one seed each.
    flattened = skimage.morphology.reconstruction(distance - seed_depth_px, distance)
    seeds = skimage.morphology.local_maxima(flattened) & mask
    markers, _ = ndi.label(seeds, structure=np.ones((3, 3)))
    return skimage.segmentation.watershed(-distance, markers, mask=mask).astype(np.int32)


def segment_plane(
    planes: np.ndarray,
    method: str = "yen",
    min_size: int = 20,
    watershed: bool = False,
    seed_depth_px: float = 2.0,
) -> np.ndarray:
    """Segment one (C, Y, X) stack of channels into int32 labels (Y, X).

    Parameters
    ----------
    planes : numpy.ndarray
        Channels of one plane, (C, Y, X) (or (Y, X) for a single channel).
    method : {"yen", "li", "otsu"}
        Automatic threshold of the geometric mean over channels.
    min_size : int
        Objects with fewer pixels are removed (before hole filling).
    watershed : bool
        Split touching cells with a distance-transform watershed.
    seed_depth_px : float
        How far (in pixels of distance to the background) a watershed seed
        must rise above the saddle to a neighbouring one.

    Returns
    -------
    numpy.ndarray
        int32 labels numbered from 1, 0 for background.

    Examples
    --------
    >>> plane = np.zeros((2, 12, 12)); plane[:, 2:6, 2:6] = 50; plane[:, 8:11, 8:11] = 50
    >>> labels = segment_plane(plane, "otsu", min_size=10)
    >>> int(labels.max()), int((labels > 0).sum())
    (1, 16)
    """
    planes = np.asarray(planes)
    combined = geometric_mean(planes if planes.ndim == 3 else planes[None])
    mask = threshold_mask(combined, method)
    mask = ndi.binary_fill_holes(remove_small(mask, min_size))
    if watershed and mask.any():
        return split_touching(mask, seed_depth_px)
    return ndi.label(mask)[0].astype(np.int32)


def segment(
    im: xr.DataArray,
    method: str = "yen",
    min_size: int = 20,
    watershed: bool = False,
    channels: Sequence[str] | None = None,
    seed_depth_px: float = 2.0,
) -> xr.DataArray:
    """Label cells in every (T, Z) plane, lazily.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims (T, C, Z, Y, X) (T and Z may be missing, then so are
        they in the result), background already subtracted.
    method : {"yen", "li", "otsu"}
        Per-plane threshold of the geometric mean over channels.
    min_size : int
        Smallest object kept, in pixels.
    watershed : bool
        Split touching cells (distance-transform watershed).
    channels : sequence of str, optional
        Channels combined; default all.
    seed_depth_px : float
        How far (in pixels of distance to the background) a watershed seed
        must rise above the saddle to a neighbouring one.

    Returns
    -------
    xarray.DataArray
        int32 labels with the dims of ``im`` without C, e.g. (T, Z, Y, X);
        labels are numbered independently in each plane.

    Raises
    ------
    ValueError
        For an unknown method or channel, or ``min_size`` < 0.

    Examples
    --------
    >>> data = np.zeros((1, 2, 1, 12, 12)); data[..., 2:7, 2:7] = 9
    >>> im = xr.DataArray(data, dims=("T", "C", "Z", "Y", "X"))
    >>> segment(im, "otsu", min_size=4).dims
    ('T', 'Z', 'Y', 'X')
    """
    check_dims(im, "im", ("C", "Y", "X"))
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"method must be one of {tuple(THRESHOLD_METHODS)}, got {method!r}")
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0 pixels, got {min_size}")
    if channels is not None:
        im = select_channels(im, channels, "channels")
    if im.chunks is not None:
        # The channels of one plane are combined: gather them in one chunk.
        im = im.chunk({"C": -1})
    from nima_lessons.pipeline._lift import is_tiled
    from nima_lessons.pipeline._tiled_segment import tiled_segment

    if is_tiled(im):  # planes split into tiles: exact tile-wise version

        return tiled_segment(im, method, min_size, watershed, seed_depth_px)
    labels = apply_per_plane(
        segment_plane,
        im,
        kwargs={
            "method": method,
            "min_size": min_size,
            "watershed": watershed,
            "seed_depth_px": seed_depth_px,
        },
        core_dims=("C", "Y", "X"),
        output_core_dims=("Y", "X"),
        output_dtype=np.int32,
        name="im",
        keep_attrs=False,
    )
    order = [dim for dim in im.dims if dim != "C"]
    return labels.transpose(*order).rename("labels")


def select_channels(im: xr.DataArray, names: Sequence[str], argument: str) -> xr.DataArray:
    """Select channels by name, with an error listing the available ones."""
    available = [str(c) for c in im.coords["C"].values] if "C" in im.coords else []
    missing = [name for name in names if name not in available]
    if missing:
        raise ValueError(f"{argument}: unknown channels {missing}; available: {available}")
    return im.sel(C=list(names))
