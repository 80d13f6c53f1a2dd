"""Reading microscopy images lazily as (T, C, Z, Y, X) xarray DataArrays backed by dask.

TIFF files of every layout tifffile understands (read through its zarr interface), folders
of TIFF files and zarr / OME-Zarr stores; only headers are read up front, and each stored
plane is read once, when a computation needs it.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import os
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from xml.etree import ElementTree

import dask
import dask.array as da
import numpy as np
import numpy.typing as npt
import tifffile
import xarray as xr

if TYPE_CHECKING:
    # zarr is imported where a store is opened: reading TIFF files does not need it.
    import zarr

__all__ = [
    "DIMS",
    "TIFF_SUFFIXES",
    "OmeZarrImage",
    "natural_key",
    "ome_zarr_image",
    "read_image",
    "select_channels",
    "tiff_header",
]

DIMS = ("T", "C", "Z", "Y", "X")
TIFF_SUFFIXES = (".tif", ".tiff")
_GLOB_CHARS = re.compile(r"[*?\[]")
# t, c (or ch) or z followed by digits, not preceded by a letter: "t0c1", "img_t001_z02".
_NAME_TOKEN = re.compile(r"(?<![a-z])(ch|[tcz])(\d+)", re.IGNORECASE)
_TOKEN_AXES = {"t": "T", "c": "C", "ch": "C", "z": "Z"}
_LAYOUT_GROUPS = {"t": "T", "c": "C", "z": "Z"}
# tifffile's letters for a stack axis of unknown meaning ("I" image series, "Q" unknown).
_GENERIC_AXES = frozenset("IQ")
_ZARR_METADATA_FILES = frozenset({".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"})
_HEADER_ERRORS = (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError)
_SHOWN = 3  # names or keys quoted in an error message

MissingChunks = Literal["error", "fill"]
# An index along one axis, as numpy takes it: a position, a slice or positions.
_AxisIndex = int | np.integer | slice | npt.NDArray[np.integer]


def natural_key(text: str) -> list[int | str]:
    """Sort key putting ``t2`` before ``t10``.

    Examples
    --------
    >>> sorted(["t10.tif", "t2.tif", "t1.tif"], key=natural_key)
    ['t1.tif', 't2.tif', 't10.tif']
    """
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


# --------------------------------------------------------------------------- readers
# Every pixel read goes through one of these module-level functions, so that a test
# (or a curious learner) can wrap them and count how often the disk is touched.


def _read_tiff_page(source: _StoredImage, key: tuple[Any, ...]) -> np.ndarray:
    """Read one block (a page, or the part of it asked for) of a TIFF source."""
    return source.load(key)


def _read_zarr_block(source: _StoredImage, key: tuple[Any, ...]) -> np.ndarray:
    """Read one block of a zarr source."""
    return source.load(key)


def _read_whole_tiff(path: str) -> np.ndarray:
    """Read every page of a TIFF file (the classic one-read-per-file construction)."""
    try:
        return tifffile.imread(path)
    except _HEADER_ERRORS as error:
        raise ValueError(f"cannot read TIFF file {path}: {error}") from error


# --------------------------------------------------------------------------- headers


def tiff_header(path: str | os.PathLike[str]) -> tuple[tuple[int, ...], np.dtype, str]:
    """Shape, dtype and axes of a TIFF file's first series, from its header only.

    Raises
    ------
    ValueError
        Naming the file, if it is not a readable TIFF.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), np.dtype(series.dtype), series.axes
    except _HEADER_ERRORS as error:
        raise ValueError(f"cannot read TIFF file {path}: {error}") from error


def _standard_axes(
    axes: Sequence[str], shape: Sequence[int], where: object, generic: str, samples: str = "C"
) -> str:
    """Name every stored axis T, C, Z, Y or X, or "-" for a length-1 axis to drop.

    Samples (S) are ``samples`` (channels by default); a stack axis of unknown
    meaning (tifffile's I or Q) becomes ``generic`` when no axis has that name
    yet; any other axis must have length 1. ``axes`` is a string of letters or
    a sequence of axis names.
    """
    names = [str(a).upper() for a in axes]
    named = []
    for name, size in zip(names, shape, strict=True):
        letter = samples if name == "S" else name
        if letter in _GENERIC_AXES and generic not in names:
            letter = generic
        if letter not in DIMS:
            if size != 1:
                raise ValueError(
                    f"{where} has axes {_axes_text(names)} of shape {tuple(shape)}: axis "
                    f"{name!r} of length {size} is none of T, C, Z, Y, X"
                )
            letter = "-"
        named.append(letter)
    # A length-1 axis may stand beside a real one of the same name (C beside samples).
    for letter in sorted(set(named) - {"-"}):
        positions = [i for i, a in enumerate(named) if a == letter]
        while len(positions) > 1 and any(shape[i] == 1 for i in positions):
            drop = next(i for i in positions if shape[i] == 1)
            named[drop] = "-"
            positions.remove(drop)
        if len(positions) > 1:
            raise ValueError(
                f"{where} has axes {_axes_text(names)} of shape {tuple(shape)}: two axes would be "
                f"{letter}; expected distinct axes among T, C, Z, Y, X"
            )
    if "Y" not in named or "X" not in named:
        raise ValueError(f"{where} has axes {_axes_text(names)}; expected Y and X among them")
    return "".join(named)


def _axes_text(names: list[str]) -> str:
    return repr("".join(names)) if all(len(n) == 1 for n in names) else str(names)


def _page_unit(axes: str, shape: Sequence[int]) -> list[int]:
    """Stored unit of a TIFF series: one page, i.e. one plane and its interleaved samples."""
    interleaved = "C" in axes and axes.index("C") > axes.index("Y")
    return [n if (a == "C" and interleaved) else 1 for a, n in zip(axes, shape, strict=True)]


def _ome_tiff_channels(xml: str | None, n_channels: int) -> list[str] | None:
    """Channel names of the first image of an OME-XML document, if all are named."""
    if not xml:
        return None
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None

    def local(element: ElementTree.Element) -> str:
        return element.tag.rsplit("}", 1)[-1]

    image = next((e for e in root.iter() if local(e) == "Image"), None)
    pixels = next((e for e in image if local(e) == "Pixels"), None) if image is not None else None
    if pixels is None:
        return None
    names = [e.get("Name") or "" for e in pixels if local(e) == "Channel"]
    if names and all(names) and len(names) == n_channels:
        return names
    if any(names):
        warnings.warn(
            f"OME metadata names channels {names} but the image has {n_channels}; "
            "channels are numbered instead",
            UserWarning,
            stacklevel=4,
        )
    return None


# --------------------------------------------------------------------------- stored images


def _covering_range(key: _AxisIndex, size: int) -> tuple[slice, _AxisIndex]:
    """Split an index into the step-1 slice that covers it and the index inside that slice."""
    if isinstance(key, slice):
        start, stop, step = key.indices(size)
        count = len(range(start, stop, step))
        if count == 0:
            return slice(0, 0), slice(None)
        last = start + (count - 1) * step
        low, high = min(start, last), max(start, last) + 1
        inner = slice(None) if step == 1 else slice(start - low, None, step)
        return slice(low, high), inner
    if isinstance(key, (int, np.integer)):
        index = range(size)[key]
        return slice(index, index + 1), 0
    indices = np.arange(size)[key]
    if indices.size == 0:
        return slice(0, 0), slice(None)
    low = int(indices.min())
    return slice(low, int(indices.max()) + 1), indices - low


class _StoredImage:
    """A stored image seen as a (T, C, Z, Y, X) array; indexing reads only what it needs.

    ``dask.array.from_array`` slices it chunk by chunk, one chunk per stored unit
    (a page, or a zarr chunk with Y and X whole), so each unit is read once.
    Subclasses read a block given in the stored axis order.
    """

    ndim = 5

    def __init__(
        self,
        axes: str,
        stored_shape: Sequence[int],
        dtype: npt.DTypeLike,
        unit_shape: Sequence[int],
        token: object,
        where: str,
    ) -> None:
        self.axes = axes  # stored axis order; "-" marks a dropped length-1 axis
        self.stored_shape = tuple(int(n) for n in stored_shape)
        sizes = dict(zip(axes, self.stored_shape, strict=True))
        self.shape = tuple(sizes.get(dim, 1) for dim in DIMS)
        self.dtype = np.dtype(dtype)
        units = dict(zip(axes, unit_shape, strict=True))
        self.unit = tuple(
            size if dim in "YX" else min(size, int(units.get(dim, 1)))
            for dim, size in zip(DIMS, self.shape, strict=True)
        )
        self.where = where
        self._token = token

    def __dask_tokenize__(self) -> tuple[object, ...]:
        return (type(self).__name__, self.axes, self.stored_shape, str(self.dtype), self._token)

    def __getitem__(self, key: object) -> np.ndarray:
        index = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in index):
            at = index.index(Ellipsis)
            index = index[:at] + (slice(None),) * (self.ndim - len(index) + 1) + index[at + 1 :]
        index = index + (slice(None),) * (self.ndim - len(index))
        cover, inner = zip(*map(_covering_range, index, self.shape), strict=True)
        block = self._read_cover(cover)
        # What is left of the index, one axis at a time (orthogonal indexing).
        for axis in reversed(range(self.ndim)):
            if not (isinstance(inner[axis], slice) and inner[axis] == slice(None)):
                block = block[(slice(None),) * axis + (inner[axis],)]
        return block

    def _read_cover(self, cover: tuple[slice, ...]) -> np.ndarray:
        """Read the (T, C, Z, Y, X) block spanned by the step-1 slices ``cover``."""
        where = dict(zip(DIMS, cover, strict=True))
        stored_key = tuple(where.get(a, 0) for a in self.axes)
        block = np.asarray(self.read(stored_key))
        kept = [a for a in self.axes if a in DIMS]
        block = np.transpose(block, [kept.index(d) for d in DIMS if d in kept])
        out_shape = tuple(len(range(n)[c]) for c, n in zip(cover, self.shape, strict=True))
        return block.reshape(out_shape)

    def read(self, stored_key: tuple[Any, ...]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, key: tuple[Any, ...]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def _tiff_array(tif: tifffile.TiffFile) -> zarr.Array:
    """The full-resolution level of an open TIFF's first series, as a zarr array."""
    import zarr

    return zarr.open_array(tif.aszarr(series=0, level=0), mode="r")


def _unreadable_tiff(path: str, error: Exception) -> ValueError:
    return ValueError(f"cannot read TIFF file {path}: {type(error).__name__}: {error}")


class _TiffFileImage(_StoredImage):
    """One multi-dimensional TIFF file, opened once in each process that reads it."""

    def __init__(
        self, path: str, axes: str, stored_shape: Sequence[int], dtype: npt.DTypeLike
    ) -> None:
        unit = _page_unit(axes, stored_shape)
        super().__init__(axes, stored_shape, dtype, unit, (path, os.path.getmtime(path)), path)
        self.path = path
        self._opened: tuple[tifffile.TiffFile, zarr.Array] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_opened"] = state["_lock"] = None  # reopened where it is read
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __del__(self) -> None:
        opened = getattr(self, "_opened", None)
        if opened is not None:
            opened[0].close()

    def _array(self) -> zarr.Array:
        with self._lock:
            if self._opened is None:
                tif = tifffile.TiffFile(self.path)
                self._opened = (tif, _tiff_array(tif))
            return self._opened[1]

    def read(self, stored_key: tuple[Any, ...]) -> np.ndarray:
        return _read_tiff_page(self, stored_key)

    def load(self, key: tuple[Any, ...]) -> np.ndarray:
        try:
            return np.asarray(self._array()[key])
        except Exception as error:  # codecs and tifffile raise many types
            raise _unreadable_tiff(self.path, error) from None


class _TiffFolderImage(_StoredImage):
    """A grid of TIFF files, one per (T, C, Z) position given by their names."""

    def __init__(
        self,
        files: np.ndarray,
        grid_axes: str,
        file_axes: str,
        file_shape: Sequence[int],
        dtype: npt.DTypeLike,
    ) -> None:
        unit = [1] * len(grid_axes) + _page_unit(file_axes, file_shape)
        paths = [str(f) for f in files.ravel()]
        token = [(path, os.path.getmtime(path)) for path in paths]
        folder = os.path.dirname(paths[0]) if len(paths) == 1 else os.path.commonpath(paths)
        super().__init__(
            grid_axes + file_axes, (*files.shape, *file_shape), dtype, unit, token, folder
        )
        self.files = files
        self.n_grid = len(grid_axes)

    def read(self, stored_key: tuple[Any, ...]) -> np.ndarray:
        grid_key, file_key = stored_key[: self.n_grid], stored_key[self.n_grid :]
        cells = np.asarray(self.files[grid_key], dtype=object)
        parts = [_read_tiff_page(self, (path, file_key)) for path in cells.ravel()]
        return np.stack(parts).reshape(cells.shape + parts[0].shape)

    def load(self, key: tuple[Any, ...]) -> np.ndarray:
        path, file_key = key
        try:
            with tifffile.TiffFile(path) as tif:
                return np.asarray(_tiff_array(tif)[file_key])
        except Exception as error:  # codecs and tifffile raise many types
            raise _unreadable_tiff(path, error) from None


class _ZarrImage(_StoredImage):
    """One zarr array, opened once in each process that reads it."""

    def __init__(self, store: str, array_path: str, axes: str, array: zarr.Array) -> None:
        unit = array.shards or array.chunks
        where = os.path.join(store, array_path) if array_path else store
        token = (store, array_path, _zarr_mtime(where))
        super().__init__(axes, array.shape, array.dtype, unit, token, where)
        self.store = store
        self.array_path = array_path
        self._array: zarr.Array | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"] = None  # reopened where it is read
        return state

    def array(self) -> zarr.Array:
        if self._array is None:
            import zarr

            # An empty path is the store's root: a store that is itself the array.
            self._array = zarr.open_array(self.store, path=self.array_path, mode="r")
        return self._array

    def read(self, stored_key: tuple[Any, ...]) -> np.ndarray:
        return _read_zarr_block(self, stored_key)

    def load(self, key: tuple[Any, ...]) -> np.ndarray:
        try:
            return np.asarray(self.array()[key])
        except Exception as error:  # each codec raises its own type
            raise ValueError(self._unreadable(key, error)) from None

    def _unreadable(self, key: tuple[Any, ...], error: Exception) -> str:
        """Name the first chunk of ``key`` that cannot be read, or the block if none alone fails."""
        array = self.array()
        ranges = []
        for k, size, chunk in zip(key, array.shape, array.chunks, strict=True):
            start, stop = (k, k + 1) if isinstance(k, (int, np.integer)) else k.indices(size)[:2]
            ranges.append(range(start // chunk, max(start, stop - 1) // chunk + 1))
        for coords in itertools.product(*ranges):
            region = tuple(
                slice(c * n, (c + 1) * n) for c, n in zip(coords, array.chunks, strict=True)
            )
            try:
                array[region]
            except Exception as chunk_error:  # each codec raises its own type
                chunk_key = array.metadata.encode_chunk_key(coords)
                reason = str(chunk_error).splitlines()[0] if str(chunk_error) else ""
                return (
                    f"cannot read chunk {chunk_key!r} of zarr array {self.where}: it is "
                    f"corrupt or not in the array's format ({type(chunk_error).__name__}: "
                    f"{reason})"
                )
        reason = str(error).splitlines()[0] if str(error) else ""
        return f"cannot read zarr array {self.where} at {key}: {type(error).__name__}: {reason}"


def _zarr_mtime(path: str) -> float | None:
    for name in ("zarr.json", ".zarray"):
        candidate = os.path.join(path, name)
        if os.path.exists(candidate):
            return os.path.getmtime(candidate)
    return None


# --------------------------------------------------------------------------- TIFF sources


def _tiff_file(path: Path) -> tuple[_StoredImage, list[str]]:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype, raw_axes = tuple(series.shape), series.dtype, series.axes
            ome = tif.ome_metadata if tif.is_ome else None
    except _HEADER_ERRORS as error:
        raise ValueError(f"cannot read TIFF file {path}: {error}") from error
    axes = _standard_axes(raw_axes, shape, path, generic="T")
    image = _TiffFileImage(str(path), axes, shape, dtype)
    names = _ome_tiff_channels(ome, image.shape[1])
    return image, names or [str(i) for i in range(image.shape[1])]


def _tiff_files(pattern: str) -> list[str]:
    files = sorted(
        (f for f in glob.glob(pattern) if Path(f).suffix.lower() in TIFF_SUFFIXES),
        key=natural_key,
    )
    if not files:
        raise FileNotFoundError(f"no TIFF file matches the pattern {pattern!r}")
    return files


def _expected_names_hint() -> str:
    return (
        "expected t<digits>, c<digits> and z<digits> tokens in every name, with any "
        "separator or none (t0001_c0.tif, t0c1.tif, img_t3_z02_c1.tif), or pass "
        r"layout=r'frame(?P<t>\d+)' (a regular expression with groups t, c, z) or a "
        "mapping {file name: {'t': ..., 'c': ..., 'z': ...}}"
    )


def _positions_from_tokens(files: list[str], where: str) -> list[dict[str, str]]:
    positions = []
    for path in files:
        found: dict[str, str] = {}
        for token, digits in _NAME_TOKEN.findall(Path(path).name):
            axis = _TOKEN_AXES[token.lower()]
            if axis in found:
                raise ValueError(
                    f"{Path(path).name} in {where} holds two {axis} tokens; "
                    + _expected_names_hint()
                )
            found[axis] = str(int(digits))
        positions.append(found)
    if len(files) == 1:
        return positions
    kinds = {tuple(sorted(p)) for p in positions}
    if kinds == {()} or len(kinds) > 1:
        shown = [Path(f).name for f in files[:_SHOWN]]
        odd = [Path(f).name for f, p in zip(files, positions, strict=True) if not p][:_SHOWN]
        detail = f"; names without any token: {odd}" if odd and kinds != {()} else ""
        raise ValueError(
            f"cannot tell time, channel and Z from the names of the {len(files)} files in "
            f"{where} ({shown}...{detail}): " + _expected_names_hint()
        )
    return positions


def _positions_from_pattern(files: list[str], pattern: str, where: str) -> list[dict[str, str]]:
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"layout {pattern!r} is not a regular expression: {error}") from None
    groups = set(regex.groupindex)
    if not groups or not groups <= set(_LAYOUT_GROUPS):
        raise ValueError(
            f"layout {pattern!r} must name its groups among t, c, z, e.g. "
            r"r'frame(?P<t>\d+)_(?P<c>\w+)'; it names {sorted(groups)}"
        )
    positions = []
    for path in files:
        match = regex.search(Path(path).name)
        if match is None or any(match[g] is None for g in groups):
            raise ValueError(f"{Path(path).name} in {where} does not match layout {pattern!r}")
        positions.append({_LAYOUT_GROUPS[g]: match[g] for g in groups})
    return positions


def _positions_from_mapping(
    folder: Path, layout: Mapping[str, object]
) -> tuple[list[str], list[dict[str, str]]]:
    files: list[str] = []
    positions: list[dict[str, str]] = []
    for name, where in layout.items():
        if not isinstance(where, Mapping) or not set(where) <= set(_LAYOUT_GROUPS):
            raise ValueError(
                f"layout[{name!r}] must map some of 't', 'c', 'z' to positions, got {where!r}"
            )
        files.append(str(folder / name))
        positions.append({_LAYOUT_GROUPS[k]: str(v) for k, v in where.items()})
    if not files:
        raise ValueError("layout is an empty mapping: no file to read")
    if len({tuple(sorted(p)) for p in positions}) > 1:
        raise ValueError("every entry of layout must give the same axes among 't', 'c', 'z'")
    return files, positions


def _file_grid(
    files: list[str], positions: list[dict[str, str]], where: str
) -> tuple[np.ndarray, str, dict[str, list[str]]]:
    """Arrange files in a grid over the axes their positions give, in T, C, Z order."""
    grid_axes = "".join(a for a in "TCZ" if positions and a in positions[0])
    values = {a: sorted({p[a] for p in positions}, key=natural_key) for a in grid_axes}
    grid = np.full(tuple(len(values[a]) for a in grid_axes), None, dtype=object)
    for path, position in zip(files, positions, strict=True):
        cell = tuple(values[a].index(position[a]) for a in grid_axes)
        if grid[cell] is not None:
            raise ValueError(
                f"{grid[cell]} and {path} are both at {position} in {where}: one file per position"
            )
        grid[cell] = path
    empty = [cell for cell in np.ndindex(*grid.shape) if grid[cell] is None]
    if empty:
        missing = {a: values[a][i] for a, i in zip(grid_axes, empty[0], strict=True)}
        label = {"T": "time", "C": "channel", "Z": "z"}
        wanted = ", ".join(f"{label[a]} {v}" for a, v in missing.items())
        raise ValueError(f"no file for {wanted} among the files of {where} ({len(empty)} missing)")
    return grid, grid_axes, values


def _tiff_folder(
    files: list[str], positions: list[dict[str, str]], where: str
) -> tuple[_StoredImage, list[str]]:
    grid, grid_axes, values = _file_grid(files, positions, where)
    first = grid.flat[0]
    first_shape, first_dtype, first_axes = tiff_header(first)
    for path in grid.flat[1:]:
        shape, dtype, axes = tiff_header(path)
        if shape != first_shape or dtype != first_dtype or axes != first_axes:
            raise ValueError(
                f"{path} has shape {shape} and dtype {dtype}, but {first} has shape "
                f"{first_shape} and dtype {first_dtype}: all files must match"
            )
    # A stack axis of unknown meaning in a file of a folder is Z (its time is in the
    # name). Where names give the channel, samples stored as separate planes are Z too:
    # tifffile stores a plain (3, Y, X) or (4, Y, X) stack that way.
    planar_samples = "S" in first_axes and first_axes.index("S") < first_axes.index("Y")
    samples = "Z" if "C" in grid_axes and planar_samples and "Z" not in first_axes else "C"
    file_axes = _standard_axes(first_axes, first_shape, first, "Z", samples)
    shared = [a for a in grid_axes if a in file_axes]
    if shared:
        raise ValueError(
            f"{first} holds axes {first_axes} of shape {first_shape}, but its name also gives "
            f"{shared}: a file holds (Y, X), (Z, Y, X) or channels its name does not give"
        )
    image = _TiffFolderImage(grid, grid_axes, file_axes, first_shape, first_dtype)
    names = values["C"] if "C" in grid_axes else [str(i) for i in range(image.shape[1])]
    return image, names


def _tiff_sequence(
    files: list[str], layout: str | None, where: str
) -> tuple[_StoredImage, list[str]]:
    if layout is None:
        positions = _positions_from_tokens(files, where)
    else:
        positions = _positions_from_pattern(files, layout, where)
    return _tiff_folder(files, positions, where)


# --------------------------------------------------------------------------- zarr sources


@dataclasses.dataclass(frozen=True)
class OmeZarrImage:
    """What the OME-Zarr (NGFF) metadata of an image group says about its pixels.

    Attributes
    ----------
    array_path : str
        Path of the full-resolution array inside the group (``"0"`` usually).
    axes : tuple of str
        Axis names of that array, upper-cased (``("T", "C", "Z", "Y", "X")``).
    channels : tuple of str or None
        Channel labels from the ``omero`` metadata, one per C entry; ``None``
        without omero channel metadata.
    """

    array_path: str
    axes: tuple[str, ...]
    channels: tuple[str, ...] | None


def _ome_error(where: object, detail: str) -> ValueError:
    return ValueError(f"OME-Zarr image {where}: {detail}")


def ome_zarr_image(group: zarr.Group, where: str | os.PathLike[str] | None = None) -> OmeZarrImage:
    """Read and check the OME-Zarr metadata of an image group (NGFF 0.4 and 0.5).

    The one reader of this metadata in the package: every OME-Zarr reader
    (:func:`read_image`, the course datasets) goes through it.

    Parameters
    ----------
    group : zarr.Group
        The image group (holding ``multiscales``, directly or under ``ome``).
    where : path-like, optional
        Name used in error messages; default the group's store path.

    Returns
    -------
    OmeZarrImage
        The full-resolution array's path (which exists in the group), its
        axis names and the channel labels.

    Raises
    ------
    ValueError
        One line naming the group and what is wrong: no ``multiscales``
        (listing the group's arrays), ``multiscales`` or its ``datasets`` not
        lists of objects or empty, a dataset path that is not an array of the
        group, axes that do not match the array, or ``omero`` channels whose
        number differs from the array's C length.

    Examples
    --------
    >>> import tempfile, zarr
    >>> root = zarr.open_group(tempfile.mkdtemp() + "/im.zarr", mode="w")
    >>> _ = root.create_array("0", shape=(2, 8, 8), dtype="u2")
    >>> root.attrs["multiscales"] = [{"axes": ["c", "y", "x"], "datasets": [{"path": "0"}]}]
    >>> root.attrs["omero"] = {"channels": [{"label": "G"}, {"label": "C"}]}
    >>> ome_zarr_image(root)
    OmeZarrImage(array_path='0', axes=('C', 'Y', 'X'), channels=('G', 'C'))
    """
    import zarr

    shown = where if where is not None else group.store_path
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)
    if not isinstance(ome, Mapping):
        raise _ome_error(shown, f"'ome' must be an object, got {type(ome).__name__}")
    multiscales = ome.get("multiscales")
    if multiscales is None:
        arrays = sorted(name for name, _ in group.arrays())
        raise _ome_error(
            shown,
            f"no OME-Zarr multiscales metadata; open one of its arrays instead: {arrays}",
        )
    if (
        not isinstance(multiscales, list)
        or not multiscales
        or not all(isinstance(m, Mapping) for m in multiscales)
    ):
        raise _ome_error(
            shown, f"'multiscales' must be a non-empty list of objects, got {multiscales!r:.60}"
        )
    datasets = multiscales[0].get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise _ome_error(shown, f"multiscales[0] has no datasets (got {datasets!r:.60})")
    first = datasets[0]
    if not isinstance(first, Mapping) or not isinstance(first.get("path"), str):
        raise _ome_error(shown, f"multiscales[0].datasets[0] has no path (got {first!r:.60})")
    array_path = first["path"]
    array: zarr.Array | zarr.Group | None
    try:
        array = group[array_path]
    except (KeyError, FileNotFoundError):
        array = None
    if not isinstance(array, zarr.Array):
        arrays = sorted(name for name, _ in group.arrays())
        raise _ome_error(
            shown,
            f"multiscales[0].datasets[0].path {array_path!r} is not an array of the store "
            f"(arrays: {arrays})",
        )
    raw_axes = multiscales[0].get("axes")
    if raw_axes is None:
        axes = tuple(_default_axes(array.ndim, shown))
    else:
        if not isinstance(raw_axes, list):
            raise _ome_error(shown, f"multiscales[0].axes must be a list, got {raw_axes!r:.60}")
        axes = tuple(str(a.get("name") if isinstance(a, Mapping) else a).upper() for a in raw_axes)
    if len(axes) != array.ndim:
        raise _ome_error(
            shown, f"array {array_path!r} has {array.ndim} dims but the axes are {list(axes)}"
        )
    return OmeZarrImage(array_path, axes, _omero_channels(ome, axes, array.shape, shown))


def _omero_channels(
    ome: Mapping[str, object], axes: Sequence[str], shape: Sequence[int], where: object
) -> tuple[str, ...] | None:
    omero = ome.get("omero")
    if omero is None:
        return None
    channels = omero.get("channels") if isinstance(omero, Mapping) else None
    if not isinstance(channels, list) or not all(isinstance(c, Mapping) for c in channels):
        raise _ome_error(where, f"omero.channels must be a list of objects, got {channels!r:.60}")
    n_channels = shape[axes.index("C")] if "C" in axes else 1
    if len(channels) != n_channels:
        raise _ome_error(
            where,
            f"omero metadata names {len(channels)} channels but the image has {n_channels}; "
            "fix the metadata, or open the array itself to read numbered channels",
        )
    return tuple(str(c.get("label", i)) for i, c in enumerate(channels))


def _default_axes(ndim: int, where: object) -> str:
    axes = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}.get(ndim)
    if axes is None:
        raise ValueError(f"zarr array {where} has {ndim} dims and no axis names")
    return axes


def _is_zarr(path: Path) -> bool:
    markers = ("zarr.json", ".zgroup", ".zarray")
    return path.suffix.lower() == ".zarr" or any((path / m).exists() for m in markers)


def _stored_chunk_keys(folder: str) -> set[str]:
    keys = set()
    for root, _, names in os.walk(folder):
        relative = os.path.relpath(root, folder)
        for name in names:
            if name not in _ZARR_METADATA_FILES:
                key = name if relative == "." else f"{relative}/{name}"
                keys.add(key.replace(os.sep, "/"))
    return keys


def _check_chunks(array: zarr.Array, folder: str, where: str) -> None:
    """Refuse an array some of whose chunks are not stored (they would read as fill values)."""
    unit = array.shards or array.chunks
    grid = [-(-n // c) for n, c in zip(array.shape, unit, strict=True)]
    stored = _stored_chunk_keys(folder)
    missing = [
        key
        for coords in np.ndindex(*grid)
        if (key := array.metadata.encode_chunk_key(coords)) not in stored
    ]
    if missing:
        raise ValueError(
            f"zarr array {where} lacks {len(missing)} of its {int(np.prod(grid))} chunks "
            f"(first {missing[:_SHOWN]}), which would read as the fill value "
            f"{array.fill_value!r}; pass missing_chunks='fill' if the array is sparse on "
            "purpose (zarr does not store chunks that hold only the fill value)"
        )


def _zarr_store(path: Path, missing_chunks: MissingChunks) -> tuple[_StoredImage, list[str]]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises several types
        raise ValueError(f"cannot open zarr store {path}: {error}") from None
    names: tuple[str, ...] | None = None
    if isinstance(node, zarr.Group):
        ome = ome_zarr_image(node, path)
        array_path, axes, names = ome.array_path, ome.axes, ome.channels
        array = node[array_path]
        assert isinstance(array, zarr.Array)  # ome_zarr_image checked it
    else:
        array_path, array = "", node
        dims = getattr(node.metadata, "dimension_names", None) or node.attrs.get(
            "_ARRAY_DIMENSIONS"
        )
        if dims and isinstance(dims, (list, tuple)):
            axes = tuple(str(d) for d in dims)
        else:
            axes = tuple(_default_axes(node.ndim, path))
        if len(axes) != node.ndim:
            raise ValueError(f"zarr array {path} has {node.ndim} dims but axes {list(axes)}")
    where = str(path / array_path) if array_path else str(path)
    standard = _standard_axes(axes, array.shape, where, generic="T")
    if missing_chunks == "error":
        _check_chunks(array, where, where)
    image = _ZarrImage(str(path), array_path, standard, array)
    return image, list(names) if names else [str(i) for i in range(image.shape[1])]


# --------------------------------------------------------------------------- opening


def _open_source(
    source: object, layout: object, missing_chunks: MissingChunks
) -> tuple[_StoredImage, list[str]]:
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or a glob pattern, got {type(source).__name__}")
    if missing_chunks not in ("error", "fill"):
        raise ValueError(f"missing_chunks must be 'error' or 'fill', got {missing_chunks!r}")
    text = os.fspath(source)
    path = Path(text)
    if isinstance(layout, Mapping):
        if not path.is_dir():
            raise ValueError(f"a layout mapping needs a folder as source, got {text!r}")
        files, positions = _positions_from_mapping(path, layout)
        return _tiff_folder(files, positions, text)
    if layout is not None and not isinstance(layout, str):
        raise TypeError(f"layout must be a string, a mapping or None, got {type(layout).__name__}")
    if not path.exists():
        if _GLOB_CHARS.search(text):
            return _tiff_sequence(_tiff_files(text), layout, text)
        raise FileNotFoundError(f"no such file, folder or pattern: {text!r}")
    if path.is_dir():
        if _is_zarr(path):
            return _zarr_store(path, missing_chunks)
        return _tiff_sequence(_tiff_files(str(path / "*")), layout, text)
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _tiff_file(path)
    raise ValueError(f"{path} is not a TIFF file, a folder of TIFF files or a zarr store")


def select_channels(
    image: xr.DataArray,
    channels: str | Sequence[str] | Mapping[str, str] | None,
    argument: str = "channels",
) -> xr.DataArray:
    """Keep (and, given a mapping, rename) channels of an image by name.

    Parameters
    ----------
    image : xarray.DataArray
        Image with a C dim whose coordinate holds the channel names.
    channels : str, sequence of str, mapping or None
        Names to keep, in this order; a mapping ``{old: new}`` also renames;
        ``None`` keeps everything.
    argument : str
        What the names were given as, for error messages (``"numerator"``...).

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    ValueError
        If a name is not a channel of ``image`` (the available ones are listed).

    Examples
    --------
    >>> im = xr.DataArray(np.zeros((3, 2, 2)), dims=("C", "Y", "X"), coords={"C": ["0", "1", "2"]})
    >>> select_channels(im, {"2": "C", "0": "G"}).C.values.tolist()
    ['C', 'G']
    """
    if channels is None:
        return image
    if isinstance(channels, str):
        channels = [channels]
    wanted = [str(c) for c in channels]
    available = [str(c) for c in image.coords["C"].values] if "C" in image.coords else []
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ValueError(f"{argument}: unknown channels {missing}; available channels: {available}")
    image = image.assign_coords(C=available).sel(C=wanted)
    if isinstance(channels, Mapping):
        image = image.assign_coords(C=[str(channels[c]) for c in channels])
    return image


def read_image(
    source: str | os.PathLike[str],
    channels: Sequence[str] | Mapping[str, str] | None = None,
    *,
    layout: str | Mapping[str, Mapping[str, int | str]] | None = None,
    missing_chunks: MissingChunks = "error",
) -> xr.DataArray:
    r"""Open an image lazily as a (T, C, Z, Y, X) DataArray, one dask chunk per plane.

    Only headers and metadata are read here; pixels are read when a
    computation needs them, each stored plane once.

    Parameters
    ----------
    source : str or path-like
        One of:

        * one TIFF file of any layout tifffile understands, read through its
          zarr interface: pages or samples (RGB-like), ImageJ hyperstacks,
          OME-TIFF (axes and channel names from the metadata), tiled or
          compressed (LZW, zstd, JPEG 2000... through imagecodecs), pyramids
          (the full resolution is read). An unnamed stack axis (a plain
          ``tifffile.imwrite`` of a 3-D array) is time;
        * a folder of TIFF files, or a glob pattern (``"data/t*_c*.tif"``):
          each file holds (Y, X), (Z, Y, X) or channels as samples; its
          time, channel and Z come from its name (see ``layout``), and an
          unnamed stack axis inside a file is Z;
        * a zarr array or OME-Zarr image (axes from the multiscales metadata,
          channel names from the omero metadata, the full resolution).
    channels : sequence of str or mapping, optional
        Channels to keep, by name, in the given order; a mapping also renames
        them, e.g. ``{"0": "G", "1": "R", "2": "C"}`` for unnamed channels.
    layout : str or mapping, optional
        For folders: how file names give positions. ``None`` looks for the
        tokens ``t``, ``c`` (or ``ch``) and ``z`` followed by digits, with any
        separator or none (``t0001_c0.tif``, ``t0c1.tif``); channel names are
        the numbers (``c01`` is ``"1"``). A string is a regular expression
        searched in each file name, with named groups among ``t``, ``c``,
        ``z`` (``r"frame(?P<t>\d+)_(?P<c>GFP|RFP)"``; a ``c`` group's text is
        the channel name). A mapping ``{file name: {"t": 0, "c": "G"}}`` lists
        the files of the folder to read and their positions.
    missing_chunks : {"error", "fill"}
        For zarr input: a chunk of the array's grid that is not stored reads
        as the fill value; ``"error"`` refuses such an array (naming the
        missing chunk keys), ``"fill"`` accepts it (sparse data).

    Returns
    -------
    xarray.DataArray
        Dims ("T", "C", "Z", "Y", "X") (missing axes have length 1),
        coordinates T (0, 1, ...) and C (channel names as strings), dask
        chunks (1, 1, 1, Y, X), name "image", ``attrs["source"]``.

    Raises
    ------
    FileNotFoundError
        If nothing exists at ``source`` or no TIFF file matches the pattern.
    ValueError
        With one line naming the file, chunk or option: files that differ in
        shape, dtype or axes, names that give no position (a few are listed
        with the tokens expected), a position without a file, a file that is
        not a readable TIFF, zarr chunks missing, broken OME-Zarr metadata,
        an unknown channel name (the available ones are listed). A file or
        chunk that cannot be decoded raises a ValueError naming it when it is
        computed.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for t in range(2):
    ...     for c in range(2):
    ...         tifffile.imwrite(folder / f"t{t}c{c}.tif", np.full((3, 4, 5), t, np.uint16),
    ...                          photometric="minisblack")
    >>> im = read_image(folder, channels={"0": "G", "1": "C"})
    >>> im.dims, im.shape, im.C.values.tolist()
    (('T', 'C', 'Z', 'Y', 'X'), (2, 2, 3, 4, 5), ['G', 'C'])
    >>> int(im.isel(T=1, C=0, Z=2).sum())
    20
    """
    stored, names = _open_source(source, layout, missing_chunks)
    data = da.from_array(
        stored,
        chunks=stored.unit,
        meta=np.empty((0,) * 5, dtype=stored.dtype),
        name=f"read-image-{dask.base.tokenize(stored)}",
        asarray=False,
        fancy=False,
    )
    if any(n > 1 for n in stored.unit[:3]):
        # Each stored unit is read once, then split into planes.
        data = data.rechunk((1, 1, 1, -1, -1))
    image = xr.DataArray(
        data,
        dims=DIMS,
        coords={"T": np.arange(stored.shape[0]), "C": names},
        name="image",
        attrs={"source": os.fspath(source)},
    )
    return select_channels(image, channels)


def __getattr__(name: str) -> object:
    """The teaching-only readers moved to :mod:`nima_lessons.course.readers`."""
    from nima_lessons._moved import moved_attribute

    readers = ("lazy_imread", "imread_dask_image", "imread_dask")
    return moved_attribute(
        __name__, name, {old: f"nima_lessons.course.readers:{old}" for old in readers}
    )
