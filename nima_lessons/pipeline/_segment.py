"""Cell segmentation of each (T, Z) plane from all channels together.

Geometric mean over channels, a per-plane automatic threshold, cleaning (hole filling, or
nima's morphological closing), labelling and an optional watershed that splits touching
cells; thresholds are computed per plane when the plane is computed, never globally.
Labels are numbered per plane, or through time: the (T, Y, X) mask labelled as one volume,
as nima does, so that a cell keeps its number at every time point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import dask.array as da
import numpy as np
import scipy.ndimage as ndi
import skimage.filters
import skimage.morphology
import skimage.segmentation
import xarray as xr

from nima_lessons.io import select_channels
from nima_lessons.labels import label as label_chunked
from nima_lessons.pipeline._lift import apply_per_plane, check_dims

__all__ = [
    "MASK_CLEANUPS",
    "THRESHOLD_METHODS",
    "label_through_time",
    "segment",
    "segment_plane",
    "split_touching",
]

#: How the mask is cleaned after small objects are removed.
MaskCleanup = Literal["fill_holes", "closing"]
MASK_CLEANUPS: tuple[MaskCleanup, ...] = get_args(MaskCleanup)

ThresholdMethod = Literal["yen", "li", "otsu"]
THRESHOLD_METHODS: dict[str, Callable[[np.ndarray], float]] = {
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


def threshold_mask(plane: np.ndarray, method: ThresholdMethod = "yen") -> np.ndarray:
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


def close_mask(mask: np.ndarray) -> np.ndarray:
    """Morphological closing with the 4-neighbour cross, borders reflected (nima's cleaning).

    Fills one-pixel gaps and notches; unlike hole filling it leaves larger holes
    open. The same as ``skimage.morphology.closing(mask)`` (scikit-image >= 0.23).
    """
    cross = ndi.generate_binary_structure(2, 1)
    dilated = ndi.grey_dilation(mask, footprint=cross, mode="reflect")
    return ndi.grey_erosion(dilated, footprint=cross, mode="reflect")


def split_touching(
    mask: np.ndarray, seed_depth_px: float = 2.0, connectivity: int = 1
) -> np.ndarray:
    """Label ``mask``, splitting touching round objects by a distance watershed.

    Seeds are the regional maxima of the distance to the background that rise
    at least ``seed_depth_px`` above the saddle joining them to a higher
    maximum (h-maxima), so the flat ridge of an elongated cell gives one seed
    while two discs joined by a neck give two. An object too thin to hold a
    seed (distance to the background never above about ``seed_depth_px``) is
    kept whole rather than lost.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean image, 2-D or n-D.
    seed_depth_px : float
        How far (in pixels of distance to the background) a seed must rise
        above the saddle to a neighbouring one.
    connectivity : int
        Neighbourhood of the flooding, as in
        :func:`scipy.ndimage.generate_binary_structure` (1: faces only).

    Returns
    -------
    numpy.ndarray
        int32 labels, shape of ``mask``: one number from 1 up per object
        found (seeded ones first, in the order of their seeds), 0 outside.

    Examples
    --------
    >>> yy, xx = np.mgrid[:20, :34]
    >>> discs = ((yy - 10) ** 2 + (xx - 10) ** 2 <= 49) | ((yy - 10) ** 2 + (xx - 23) ** 2 <= 49)
    >>> int(ndi.label(discs)[1]), int(split_touching(discs).max())
    (1, 2)
    """
    distance = ndi.distance_transform_edt(mask)
    # Lowering every peak by seed_depth_px (reconstruction by dilation) merges
    # maxima whose saddle is shallower into one plateau: one seed each.
    flattened = skimage.morphology.reconstruction(distance - seed_depth_px, distance)
    seeds = skimage.morphology.local_maxima(flattened) & mask
    markers, _ = ndi.label(seeds, structure=np.ones((3,) * mask.ndim))
    labels = skimage.segmentation.watershed(
        -distance, markers, mask=mask, connectivity=connectivity
    ).astype(np.int32)
    # Flooding fills whole objects from their seeds: what it left are the
    # objects without a seed, numbered after the others.
    unseeded = mask & (labels == 0)
    if unseeded.any():
        structure = ndi.generate_binary_structure(mask.ndim, connectivity)
        extra, _ = ndi.label(unseeded, structure=structure)
        labels[unseeded] = extra[unseeded] + labels.max()
    return labels


def segment_plane(
    planes: np.ndarray,
    method: ThresholdMethod = "yen",
    min_size: int = 20,
    watershed: bool = False,
    seed_depth_px: float = 2.0,
    cleanup: MaskCleanup = "fill_holes",
) -> np.ndarray:
    """Segment one (C, Y, X) stack of channels into int32 labels (Y, X).

    Parameters
    ----------
    planes : numpy.ndarray
        Channels of one plane, (C, Y, X) (or (Y, X) for a single channel).
    method : {"yen", "li", "otsu"}
        Automatic threshold of the geometric mean over channels.
    min_size : int
        Objects (4-connected) with fewer pixels are removed, before cleaning.
    watershed : bool
        Split touching cells with a distance-transform watershed.
    seed_depth_px : float
        How far (in pixels of distance to the background) a watershed seed
        must rise above the saddle to a neighbouring one.
    cleanup : {"fill_holes", "closing"}
        ``"fill_holes"`` fills every hole of the mask; ``"closing"`` is nima's
        morphological closing (``close_mask``).

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
    mask = remove_small(threshold_mask(combined, method), min_size)
    mask = close_mask(mask) if cleanup == "closing" else ndi.binary_fill_holes(mask)
    if watershed and mask.any():
        return split_touching(mask, seed_depth_px)
    return ndi.label(mask)[0].astype(np.int32)


def segment(
    im: xr.DataArray,
    method: ThresholdMethod = "yen",
    min_size: int = 20,
    watershed: bool = False,
    channels: Sequence[str] | None = None,
    seed_depth_px: float = 2.0,
    cleanup: MaskCleanup = "fill_holes",
    through_time: bool = False,
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
    cleanup : {"fill_holes", "closing"}
        Fill the holes of the mask, or close it morphologically as nima does.
    through_time : bool
        Number cells through time (see :func:`label_through_time`): a cell
        keeps its label at every time point. Otherwise labels are numbered
        independently in each plane.

    Returns
    -------
    xarray.DataArray
        int32 labels with the dims of ``im`` without C, e.g. (T, Z, Y, X).

    Raises
    ------
    ValueError
        For an unknown method, cleanup or channel, ``min_size`` < 0, or
        ``through_time`` with ``watershed`` (the volume would join the cells
        the watershed split) or without a T dim.

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
    if cleanup not in MASK_CLEANUPS:
        raise ValueError(f"cleanup must be one of {MASK_CLEANUPS}, got {cleanup!r}")
    if through_time and (watershed or "T" not in im.dims):
        raise ValueError(
            "through_time labels the (T, Y, X) mask as one volume: it needs a T dim and "
            "cannot keep the cells a watershed splits apart (watershed=False)"
        )
    if channels is not None:
        im = select_channels(im, channels, "channels")
    if im.chunks is not None:
        # The channels of one plane are combined: gather them in one chunk.
        im = im.chunk({"C": -1})
    from nima_lessons.pipeline._lift import is_tiled
    from nima_lessons.pipeline._tiled_segment import tiled_segment

    if is_tiled(im):  # planes split into tiles: exact tile-wise version
        tiled = tiled_segment(im, method, min_size, watershed, seed_depth_px, cleanup=cleanup)
        return label_through_time(tiled) if through_time else tiled
    labels = apply_per_plane(
        segment_plane,
        im,
        kwargs={
            "method": method,
            "min_size": min_size,
            "watershed": watershed,
            "seed_depth_px": seed_depth_px,
            "cleanup": cleanup,
        },
        core_dims=("C", "Y", "X"),
        output_core_dims=("Y", "X"),
        output_dtype=np.int32,
        name="im",
        keep_attrs=False,
    )
    order = [dim for dim in im.dims if dim != "C"]
    labels = labels.transpose(*order).rename("labels")
    return label_through_time(labels) if through_time else labels


def label_through_time(labels: xr.DataArray) -> xr.DataArray:
    """Renumber cells through time: each Z plane's (T, Y, X) mask labelled as one volume.

    Pixels of consecutive time points that overlap are neighbours (as are
    4-neighbours in a plane), so a cell that overlaps itself from one time
    point to the next keeps one number throughout, and two cells that touch
    at some time point share one. This is how nima numbers cells (it labels
    the (T, Y, X) mask with ``scipy.ndimage.label``), and the numbers are
    the same: 1, 2, ... in raster order of each cell's first pixel, T first.

    The labelling is exact and lazy, tile by tile (:func:`nima_lessons.labels.label`),
    but every time point depends on all of them: computing one plane
    segments them all (their faces are all that is kept in memory).

    Parameters
    ----------
    labels : xarray.DataArray
        Labels (or any mask, non-zero for cells) with dims (T, [Z,] Y, X).

    Returns
    -------
    xarray.DataArray
        int32 labels, same dims, chunks and coordinates, named "labels".

    Examples
    --------
    >>> frames = np.zeros((3, 1, 4, 6), np.int32)
    >>> frames[:, 0, 1:3, 1:3] = 1; frames[1:, 0, 1:3, 4:] = 1   # a cell appears at T=1
    >>> frames[2, 0, 1:3, 1:3] = 0                               # the first one leaves
    >>> linked = label_through_time(xr.DataArray(frames, dims=("T", "Z", "Y", "X")))
    >>> [np.unique(linked.values[t])[1:].tolist() for t in range(3)]
    [[1], [1, 2], [2]]
    """
    check_dims(labels, "labels", ("T", "Y", "X"))
    mask = labels != 0
    extra = [dim for dim in mask.dims if dim not in ("T", "Y", "X")]
    volumes = mask.transpose(*extra, "T", "Y", "X")
    stacked = volumes.data.reshape((-1, *volumes.shape[-3:]))
    numbered = [_label_volume(stacked[index]) for index in range(stacked.shape[0])]
    data = (da.stack if isinstance(numbered[0], da.Array) else np.stack)(numbered)
    data = data.reshape(volumes.shape)
    result = xr.DataArray(data, dims=volumes.dims, coords=volumes.coords, name="labels")
    return result.transpose(*labels.dims)


def _label_volume(volume: np.ndarray | da.Array) -> np.ndarray | da.Array:
    """Face-connected labels of one (T, Y, X) mask, as int32; lazy if ``volume`` is."""
    if isinstance(volume, da.Array):
        numbered, _ = label_chunked(volume, connectivity=1)
        return numbered.astype(np.int32)
    return ndi.label(volume)[0].astype(np.int32)
