"""Teaching-only readers: the classic constructions the lessons compare with ``read_image``.

A delayed read per file stacked with ``da.stack``, dask-image's ``imread`` and dask's own
``imread``; the analysis core reads through :func:`nima_lessons.io.read_image` instead.
"""

from __future__ import annotations

import glob
import os

import dask
import dask.array as da

from nima_lessons.io import _read_whole_tiff, natural_key, tiff_header

__all__ = ["imread_dask", "imread_dask_image", "lazy_imread"]


def _matching_tiffs(pattern: str) -> list[str]:
    files = sorted(glob.glob(os.fspath(pattern)), key=natural_key)
    if not files:
        raise FileNotFoundError(f"no file matches the pattern {os.fspath(pattern)!r}")
    return files


def lazy_imread(pattern: str | os.PathLike) -> da.Array:
    """Stack image files lazily: one ``dask.delayed`` read per file.

    The classic construction: the shape and dtype come from the first file's
    header, each file becomes ``da.from_delayed(delayed(imread)(file))`` and
    ``da.stack`` puts them together. Computing one frame reads exactly one file.

    Parameters
    ----------
    pattern : str or path-like
        Glob pattern of TIFF files, stacked in natural order.

    Returns
    -------
    dask.array.Array
        ``(n_files, *file_shape)``, one chunk per file.

    Raises
    ------
    FileNotFoundError
        If no file matches ``pattern``.
    ValueError
        If a file's shape or dtype differs from the first one's (both named).
    """
    files = _matching_tiffs(pattern)
    shape, dtype, _ = tiff_header(files[0])
    for path in files[1:]:
        other_shape, other_dtype, _ = tiff_header(path)
        if (other_shape, other_dtype) != (shape, dtype):
            raise ValueError(
                f"{path} has shape {other_shape} and dtype {other_dtype}, but {files[0]} "
                f"has shape {shape} and dtype {dtype}"
            )
    read = dask.delayed(_read_whole_tiff, pure=True)
    frames = [da.from_delayed(read(path), shape=shape, dtype=dtype) for path in files]
    return da.stack(frames)


def imread_dask_image(pattern: str | os.PathLike) -> da.Array:
    """Read a file pattern with ``dask_image.imread.imread`` (one chunk per frame).

    dask-image reads through pims, which treats every file as a sequence of 2D
    frames: it is right for a pattern of 2D files or for one multi-page file,
    but on a folder of 3D (Z, Y, X) files each chunk delivers only the first
    page of its file, and a file of 3 or 4 planes is taken for colour channels.
    Use :func:`lazy_imread`, :func:`imread_dask` or :func:`~nima_lessons.io.read_image` for
    3D files.

    Parameters
    ----------
    pattern : str or path-like
        A glob pattern or a single file.

    Returns
    -------
    dask.array.Array
        Frames stacked along the first axis.

    Raises
    ------
    FileNotFoundError
        If no file matches ``pattern``.
    """
    import dask_image.imread

    _matching_tiffs(pattern)
    return dask_image.imread.imread(os.fspath(pattern))


def imread_dask(pattern: str | os.PathLike) -> da.Array:
    """Read a file pattern with ``dask.array.image.imread`` and tifffile.

    Raises
    ------
    FileNotFoundError
        If no file matches ``pattern``.
    """
    import dask.array.image

    _matching_tiffs(pattern)
    return dask.array.image.imread(os.fspath(pattern), imread=_read_whole_tiff)
