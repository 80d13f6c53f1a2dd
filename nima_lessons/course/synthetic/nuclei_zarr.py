"""The nuclei image as an OME-Zarr store: written chunk by chunk, opened lazily.

Any size can be written, including images far bigger than memory: each chunk is rendered on
its own, written, and forgotten.
"""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np
import zarr
from tqdm.dask import TqdmCallback

from nima_lessons._atomic import atomic_path
from nima_lessons.config import progress_enabled
from nima_lessons.counting import NUCLEI_THRESHOLD
from nima_lessons.course.synthetic._ome import (
    FORMAT,
    create_ngff_array,
    open_ngff_group,
    write_label_metadata,
    write_multiscales_metadata,
)
from nima_lessons.course.synthetic._validate import check_chunks
from nima_lessons.course.synthetic.nuclei import (
    LAYOUT,
    NucleiLayout,
    nuclei_layout,
    render_nuclei,
)
from nima_lessons.io import ome_zarr_image

#: Root attribute holding the generator's record: ``attrs[ATTRS_KEY]["true_count"]``.
ATTRS_KEY = "nima_lessons"
LABEL_NAME = "nuclei"
#: Pyramid levels stop once the longest side is at most this many pixels.
_SMALLEST_LEVEL_PX = 1024


def nuclei_dask(
    shape: tuple[int, int] = (2000, 5000),
    chunks: tuple[int, int] = (100, 100),
    seed: int = 0,
) -> tuple[da.Array, da.Array, int]:
    """Return the nuclei image and labels as lazy dask arrays, rendered chunk by chunk.

    Parameters
    ----------
    shape : tuple of int
        Image shape (Y, X).
    chunks : tuple of int
        Chunk shape (Y, X), no larger than ``shape``.
    seed : int
        Random seed.

    Returns
    -------
    image : dask.array.Array of uint8
    labels : dask.array.Array of int32
    count : int
        The true number of nuclei.

    Examples
    --------
    >>> image, labels, count = nuclei_dask((300, 400), (100, 100), seed=3)
    >>> from nima_lessons.course.synthetic import nuclei_image
    >>> bool((image.compute() == nuclei_image((300, 400), seed=3).image).all())
    True
    """
    layout = nuclei_layout(shape, seed)
    chunks = check_chunks(chunks, layout.shape)
    image, labels = _lazy_render(layout, chunks)
    return image, labels, layout.count


def write_nuclei_zarr(
    path: str | os.PathLike,
    shape: tuple[int, int] = (2000, 5000),
    chunks: tuple[int, int] = (100, 100),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write a nuclei image, its ground-truth labels and count as OME-Zarr.

    The store follows OME-NGFF 0.4 (zarr format 2, the version napari's and
    Fiji's readers open): the image is the multiscale pyramid of the root,
    full resolution at ``"0"`` and halved resolutions at ``"1"``, ``"2"``...
    for viewers; the labels are the label image ``labels/nuclei`` (full
    resolution at ``labels/nuclei/0``); the true count is in the root
    attributes, ``attrs["nima_lessons"]["true_count"]``, next to the seed,
    shape, segmentation threshold and how the nuclei were placed
    (``nima_lessons.course.synthetic.nuclei.LAYOUT``). Each chunk is
    rendered, written and released, so memory use does not grow with the
    image; the store appears under its final name only when complete.

    Parameters
    ----------
    path : path-like
        Output store (a folder, conventionally ending in ``.zarr``).
    shape : tuple of int
        Image shape (Y, X).
    chunks : tuple of int
        Zarr chunk shape (Y, X), no larger than ``shape``.
    seed : int
        Random seed.
    overwrite : bool
        Replace an existing store.
    progress : bool, optional
        Show a progress bar; default :func:`nima_lessons.config.progress_enabled`.

    Returns
    -------
    pathlib.Path
        The store.

    Raises
    ------
    ValueError
        If ``shape`` or ``chunks`` are not positive, or a chunk is larger than
        the image.
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> store = write_nuclei_zarr(tempfile.mkdtemp() + "/nuclei.zarr", (200, 300), (100, 100),
    ...                           progress=False)
    >>> image, labels, count = open_nuclei_zarr(store)
    >>> image.shape, image.chunksize, labels.dtype.name
    ((200, 300), (100, 100), 'int32')
    """
    progress = progress_enabled(progress)
    layout = nuclei_layout(shape, seed)
    chunks = check_chunks(chunks, layout.shape)
    factors = _pyramid_factors(layout.shape)
    with atomic_path(path, overwrite=overwrite) as tmp:
        root = open_ngff_group(str(tmp))
        labels_group = root.create_group("labels").create_group(LABEL_NAME)
        sources, targets = [], []
        for level, factor in enumerate(factors):
            image, labels = _lazy_render(layout, chunks, factor)
            for group, lazy in ((root, image), (labels_group, labels)):
                sources.append(lazy)
                targets.append(_create_level(group, str(level), lazy.shape, chunks, lazy.dtype))
        for group, name in ((root, "nuclei"), (labels_group, LABEL_NAME)):
            write_multiscales_metadata(
                group, _datasets(factors), fmt=FORMAT, axes=["y", "x"], name=name
            )
        write_label_metadata(root["labels"], LABEL_NAME, fmt=FORMAT)
        with TqdmCallback(desc="nuclei", unit="chunk", disable=not progress):
            da.store(sources, targets, lock=False)
        # written last: a store with this record is complete
        root.attrs[ATTRS_KEY] = {
            "true_count": layout.count,
            "seed": layout.seed,
            "shape": list(layout.shape),
            "chunks": list(chunks),
            "threshold": NUCLEI_THRESHOLD,
            "layout": LAYOUT,
        }
    return Path(path)


def open_nuclei_zarr(path: str | os.PathLike) -> tuple[da.Array, da.Array, int]:
    """Open a store written by :func:`write_nuclei_zarr`, lazily.

    Parameters
    ----------
    path : path-like
        The store.

    Returns
    -------
    image : dask.array.Array of uint8
        Full resolution, chunked as stored.
    labels : dask.array.Array of int32
        Ground-truth labels, chunked as stored.
    count : int
        The true number of nuclei.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a complete nuclei store.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no nuclei store at {path}; write one with write_nuclei_zarr")
    try:
        root = zarr.open_group(str(path), mode="r")
        count = int(root.attrs[ATTRS_KEY]["true_count"])
        image_path = ome_zarr_image(root, path).array_path
        labels_group = root[f"labels/{LABEL_NAME}"]
        labels_path = ome_zarr_image(labels_group, path / "labels" / LABEL_NAME).array_path
    except (KeyError, TypeError, ValueError, IndexError, FileNotFoundError) as error:
        raise ValueError(
            f"{path} is not a complete nuclei store: expected an OME-Zarr image with "
            f"labels/{LABEL_NAME} and attrs[{ATTRS_KEY!r}]['true_count'] ({error!r})"
        ) from error
    image = da.from_zarr(root[image_path])
    labels = da.from_zarr(labels_group[labels_path])
    return image, labels, count


def _pyramid_factors(shape: tuple[int, int]) -> list[int]:
    """Downsampling factors 1, 2, 4... until the longest side is about a screen wide."""
    factors = [1]
    while -(-max(shape) // factors[-1]) > _SMALLEST_LEVEL_PX and min(shape) >= 2 * factors[-1]:
        factors.append(2 * factors[-1])
    return factors


def _datasets(factors: list[int]) -> list[dict]:
    return [
        {"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": [float(factor), float(factor)]}
        ]}
        for level, factor in enumerate(factors)
    ]  # fmt: skip


def _create_level(group, name, shape, chunks, dtype):
    """Create one zarr (format 2) array with "/" chunk keys, as OME-NGFF 0.4 asks."""
    clipped = tuple(min(c, s) for c, s in zip(chunks, shape, strict=True))
    return create_ngff_array(group, name, shape, clipped, dtype)


def _lazy_render(
    layout: NucleiLayout, chunks: tuple[int, int], factor: int = 1
) -> tuple[da.Array, da.Array]:
    """Lazy image and labels whose blocks are rendered from the layout.

    Both come from one rendering per block. With ``factor`` > 1, every
    ``factor``-th pixel of the full image (a pyramid level).
    """
    level_shape = tuple(-(-size // factor) for size in layout.shape)
    grid = da.core.normalize_chunks(
        tuple(min(c, s) for c, s in zip(chunks, level_shape, strict=True)), level_shape
    )

    def block(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"][1:]
        rows = slice(y0 * factor, (y1 - 1) * factor + 1, factor)
        cols = slice(x0 * factor, (x1 - 1) * factor + 1, factor)
        image, labels = render_nuclei(layout, rows, cols)
        return np.stack([image.astype(np.int32), labels])

    both = da.map_blocks(
        block,
        chunks=((2,), *grid),
        dtype=np.int32,
        meta=np.empty((0, 0, 0), dtype=np.int32),
        name=f"nuclei-{layout.seed}-{layout.shape[0]}x{layout.shape[1]}-"
        f"{chunks[0]}x{chunks[1]}-{factor}",
    )
    return both[0].astype(np.uint8), both[1]
