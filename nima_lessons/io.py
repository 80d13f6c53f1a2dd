"""Reading microscopy images lazily as (T, C, Z, Y, X) xarray DataArrays backed by dask.

Sources are TIFF folders or patterns, multi-dimensional TIFF files and zarr / OME-Zarr
stores; only headers are read up front and each plane is read once, when it is needed.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import tifffile
import xarray as xr

DIMS = ("T", "C", "Z", "Y", "X")
TIFF_SUFFIXES = (".tif", ".tiff")
_GLOB_CHARS = re.compile(r"[*?\[]")
_TIME_TOKEN = re.compile(r"^t(\d+)$", re.IGNORECASE)
_CHANNEL_TOKEN = re.compile(r"^(?:c|ch)(\d+)$", re.IGNORECASE)
# Axis letters other than T C Z Y X that tifffile and NGFF use for a time-like series.
_SERIES_AXES = {"Q": "T", "I": "T"}
_READ_ERRORS = (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError)


def natural_key(text: str) -> list:
    """Sort key putting ``t2`` before ``t10``.

    Examples
    --------
    >>> sorted(["t10.tif", "t2.tif", "t1.tif"], key=natural_key)
    ['t1.tif', 't2.tif', 't10.tif']
    """
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


# --------------------------------------------------------------------------- readers
# Module-level functions so that a test (or a curious learner) can wrap them and
# count how many times the disk is touched.


def _read_tiff_page(path: str, index: int) -> np.ndarray:
    """Read page ``index`` of the first series of a TIFF file."""
    try:
        with tifffile.TiffFile(path) as tif:
            return tif.asarray(key=index, series=0)
    except _READ_ERRORS as error:
        raise ValueError(f"cannot read page {index} of TIFF file {path}: {error}") from error


def _read_zarr_block(array, index: tuple) -> np.ndarray:
    """Read one block of a zarr array."""
    return np.asarray(array[index])


def _read_whole_tiff(path: str) -> np.ndarray:
    """Read every page of a TIFF file (the classic one-read-per-file construction)."""
    try:
        return tifffile.imread(path)
    except _READ_ERRORS as error:
        raise ValueError(f"cannot read TIFF file {path}: {error}") from error


# --------------------------------------------------------------------------- headers


def tiff_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype, str]:
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
    except _READ_ERRORS as error:
        raise ValueError(f"cannot read TIFF file {path}: {error}") from error


# --------------------------------------------------------------------------- plane sources


class _PlaneSource:
    """Array-like (T, C, Z, Y, X) whose indexing reads only the planes asked for.

    ``dask.array.from_array`` slices it chunk by chunk; one chunk is one plane,
    read by ``read_plane`` exactly once.
    """

    ndim = 5

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, token: object):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self._token = token

    def __dask_tokenize__(self):
        return (type(self).__name__, self.shape, str(self.dtype), self._token)

    def read_plane(self, t: int, c: int, z: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        ranges = []
        for k, n in zip(key[:3], self.shape[:3], strict=True):
            ranges.append([int(k) % n] if isinstance(k, (int, np.integer)) else range(n)[k])
        y_key, x_key = key[3], key[4]
        out_shape = tuple(len(r) for r in ranges) + (
            len(range(self.shape[3])[y_key]) if isinstance(y_key, slice) else 1,
            len(range(self.shape[4])[x_key]) if isinstance(x_key, slice) else 1,
        )
        out = np.empty(out_shape, dtype=self.dtype)
        for i, t in enumerate(ranges[0]):
            for j, c in enumerate(ranges[1]):
                for k, z in enumerate(ranges[2]):
                    plane = self.read_plane(t, c, z)[y_key, x_key]
                    out[i, j, k] = plane.reshape(out_shape[3:])
        squeeze = tuple(
            axis for axis, k in enumerate(key) if isinstance(k, (int, np.integer))
        )
        return out.squeeze(axis=squeeze) if squeeze else out


class _TiffFilesSource(_PlaneSource):
    """Planes of a grid of TIFF files, one file per (T, C), each (Z, Y, X) or (Y, X)."""

    def __init__(self, files: np.ndarray, shape, dtype):
        super().__init__(shape, dtype, [(f, os.path.getmtime(f)) for f in files.ravel()])
        self.files = files

    def read_plane(self, t, c, z):
        plane = _read_tiff_page(str(self.files[t, c]), z)
        return plane.reshape(self.shape[3:])


class _TiffSeriesSource(_PlaneSource):
    """Planes of one multi-dimensional TIFF, one page per plane."""

    def __init__(self, path: str, shape, dtype, page_axes: str, page_shape, sample_axis: bool):
        super().__init__(shape, dtype, (path, os.path.getmtime(path)))
        self.path = path
        self.page_axes = page_axes  # e.g. "TZC": order of the pages in the file
        self.page_shape = page_shape
        self.sample_axis = sample_axis  # RGB-like samples hold the channels

    def read_plane(self, t, c, z):
        position = {"T": t, "C": c, "Z": z}
        index = int(
            np.ravel_multi_index(
                tuple(position[a] for a in self.page_axes), self.page_shape
            )
        ) if self.page_axes else 0
        page = _read_tiff_page(self.path, index)
        return page[..., c] if self.sample_axis else page


class _ZarrSource(_PlaneSource):
    """Planes of a zarr array whose axes are a subset of T, C, Z, Y, X."""

    def __init__(self, store: str, array_path: str, axes: str, shape, dtype):
        super().__init__(shape, dtype, (store, array_path, axes))
        self.store = store
        self.array_path = array_path
        self.axes = axes
        self._array = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_array"] = None  # reopened where it is used (worker processes)
        return state

    @property
    def array(self):
        if self._array is None:
            import zarr

            self._array = zarr.open_array(self.store, path=self.array_path or None, mode="r")
        return self._array

    def read_plane(self, t, c, z):
        position = {"T": t, "C": c, "Z": z}
        index = tuple(position[a] if a in position else slice(None) for a in self.axes)
        plane = _read_zarr_block(self.array, index)
        return plane.T if self.axes.index("X") < self.axes.index("Y") else plane


# --------------------------------------------------------------------------- sources


def _tiff_sequence(pattern: str) -> tuple[_PlaneSource, list[str]]:
    files = sorted(
        (f for f in glob.glob(pattern) if Path(f).suffix.lower() in TIFF_SUFFIXES),
        key=natural_key,
    )
    if not files:
        raise FileNotFoundError(f"no TIFF file matches the pattern {pattern!r}")
    first_shape, first_dtype, _ = tiff_header(files[0])
    for path in files[1:]:
        shape, dtype, _ = tiff_header(path)
        if shape != first_shape or dtype != first_dtype:
            raise ValueError(
                f"{path} has shape {shape} and dtype {dtype}, but {files[0]} has shape "
                f"{first_shape} and dtype {first_dtype}: all files must match"
            )
    if len(first_shape) not in (2, 3):
        raise ValueError(
            f"{files[0]} has shape {first_shape}; each file must hold (Y, X) or (Z, Y, X)"
        )
    grid, channel_names = _file_grid(files)
    plane_shape = first_shape if len(first_shape) == 3 else (1, *first_shape)
    source = _TiffFilesSource(grid, (*grid.shape, *plane_shape), first_dtype)
    return source, channel_names


def _file_grid(files: list[str]) -> tuple[np.ndarray, list[str]]:
    """Arrange files in a (T, C) grid from the t<digits> / c<digits> name tokens."""
    keys = []
    for path in files:
        tokens = re.split(r"[_\-. ]", Path(path).stem)
        time = next((int(m[1]) for tok in tokens if (m := _TIME_TOKEN.match(tok))), None)
        channel = next((m[1] for tok in tokens if (m := _CHANNEL_TOKEN.match(tok))), "0")
        keys.append([time, channel])
    channels = sorted({key[1] for key in keys}, key=natural_key)
    if all(key[0] is None for key in keys):
        # No time in the names: the files of each channel are its time points, in order.
        seen = dict.fromkeys(channels, 0)
        for key in keys:
            key[0], seen[key[1]] = seen[key[1]], seen[key[1]] + 1
    elif any(key[0] is None for key in keys):
        missing = files[[key[0] for key in keys].index(None)]
        raise ValueError(f"{missing} has no time token (such as t0001) unlike other files")
    times = sorted({key[0] for key in keys})
    grid = np.full((len(times), len(channels)), None, dtype=object)
    for path, (time, channel) in zip(files, keys, strict=True):
        cell = (times.index(time), channels.index(channel))
        if grid[cell] is not None:
            raise ValueError(f"{grid[cell]} and {path} are both time {time}, channel {channel}")
        grid[cell] = path
    empty = np.argwhere(grid == None)  # noqa: E711 - elementwise comparison
    if len(empty):
        t, c = empty[0]
        raise ValueError(
            f"no file for time {times[t]}, channel {channels[c]} among the files matched"
        )
    return grid, channels


def _standard_axes(axes: str, where: object) -> str:
    axes = axes.upper()
    for letter, standard in _SERIES_AXES.items():
        if letter in axes and standard not in axes:
            axes = axes.replace(letter, standard)
    unknown = set(axes) - set(DIMS) - {"S"}
    if unknown or "Y" not in axes or "X" not in axes or len(set(axes)) != len(axes):
        raise ValueError(
            f"{where} has axes {axes!r}; expected distinct letters among T, C, Z, Y, X "
            "including Y and X"
        )
    return axes


def _tiff_file(path: Path) -> tuple[_PlaneSource, list[str]]:
    _, dtype, _ = tiff_header(path)
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = _standard_axes(series.axes, path)
        sizes = dict(zip(axes, series.shape, strict=True))
        ome = tif.ome_metadata
    sample_axis = "S" in axes
    if sample_axis:
        if "C" in axes:
            raise ValueError(f"{path} has both C and S (samples) axes {axes!r}")
        axes = axes.replace("S", "C")
        sizes["C"] = sizes.pop("S")
    page_axes = "".join(a for a in axes if a in "TCZ" and not (sample_axis and a == "C"))
    shape = tuple(sizes.get(dim, 1) for dim in DIMS)
    source = _TiffSeriesSource(
        str(path), shape, dtype, page_axes, tuple(sizes[a] for a in page_axes), sample_axis
    )
    names = re.findall(r"<Channel\b[^>]*\bName=\"([^\"]*)\"", ome or "")
    if len(names) != shape[1]:
        names = [str(i) for i in range(shape[1])]
    return source, names


def _is_zarr(path: Path) -> bool:
    markers = ("zarr.json", ".zgroup", ".zarray")
    return path.suffix.lower() == ".zarr" or any((path / m).exists() for m in markers)


def _zarr_store(path: Path) -> tuple[_PlaneSource, list[str]]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises several types for a broken store
        raise ValueError(f"cannot open zarr store {path}: {error}") from error
    array_path, axes, names = "", None, None
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        ome = attrs.get("ome", attrs)
        multiscales = ome.get("multiscales")
        if not multiscales:
            arrays = sorted(name for name, _ in node.arrays())
            raise ValueError(
                f"zarr group {path} has no OME-Zarr multiscales metadata; open one of its "
                f"arrays instead: {arrays}"
            )
        array_path = multiscales[0]["datasets"][0]["path"]
        raw_axes = multiscales[0].get("axes", "tczyx")
        axes = "".join(a["name"] if isinstance(a, dict) else a for a in raw_axes)
        channels = ome.get("omero", {}).get("channels", [])
        names = [str(ch.get("label", i)) for i, ch in enumerate(channels)] or None
        array = node[array_path]
    else:
        array = node
        dims = node.attrs.get("_ARRAY_DIMENSIONS")
        axes = "".join(dims) if dims else {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}.get(
            node.ndim, ""
        )
        if not axes:
            raise ValueError(f"zarr array {path} has {node.ndim} dims and no axis names")
    axes = _standard_axes(axes, path)
    if len(axes) != array.ndim:
        raise ValueError(f"zarr array in {path} has {array.ndim} dims but axes {axes!r}")
    sizes = dict(zip(axes, array.shape, strict=True))
    shape = tuple(sizes.get(dim, 1) for dim in DIMS)
    if names is None or len(names) != shape[1]:
        names = [str(i) for i in range(shape[1])]
    return _ZarrSource(str(path), array_path, axes, shape, array.dtype), names


def _open_source(source) -> tuple[_PlaneSource, list[str]]:
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or a glob pattern, got {type(source).__name__}")
    text = os.fspath(source)
    path = Path(text)
    if not path.exists():
        if _GLOB_CHARS.search(text):
            return _tiff_sequence(text)
        raise FileNotFoundError(f"no such file, folder or pattern: {text!r}")
    if path.is_dir():
        if _is_zarr(path):
            return _zarr_store(path)
        return _tiff_sequence(str(path / "*"))
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _tiff_file(path)
    raise ValueError(
        f"{path} is not a TIFF file, a folder of TIFF files or a zarr store"
    )


def select_channels(
    image: xr.DataArray, channels: Sequence[str] | Mapping[str, str] | None
) -> xr.DataArray:
    """Keep (and, given a mapping, rename) channels of an image by name.

    Parameters
    ----------
    image : xarray.DataArray
        Image with a C coordinate of channel names.
    channels : sequence of str, mapping or None
        Names to keep in this order; a mapping ``{old: new}`` also renames;
        ``None`` keeps everything.

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    ValueError
        If a name is not a channel of ``image`` (the available ones are listed).
    """
    if channels is None:
        return image
    if isinstance(channels, str):
        channels = [channels]
    wanted = list(channels)
    available = [str(c) for c in image.coords["C"].values]
    missing = [str(c) for c in wanted if str(c) not in available]
    if missing:
        raise ValueError(f"unknown channels {missing}; available channels: {available}")
    image = image.sel(C=[str(c) for c in wanted])
    if isinstance(channels, Mapping):
        image = image.assign_coords(C=[str(channels[c]) for c in wanted])
    return image


def read_image(
    source: str | os.PathLike, channels: Sequence[str] | Mapping[str, str] | None = None
) -> xr.DataArray:
    """Open an image lazily as a (T, C, Z, Y, X) DataArray, one dask chunk per plane.

    Only file headers and metadata are read here; each (Y, X) plane is read
    once, when a computation needs it.

    Parameters
    ----------
    source : str or path-like
        One of:

        * a folder of TIFF files or a glob pattern (``"data/t*_c*.tif"``): each
          file holds (Y, X) or (Z, Y, X); time and channel come from name tokens
          ``t<digits>`` and ``c<digits>`` (files without a time token are taken
          in natural order as time points);
        * one multi-dimensional TIFF file, axes from its metadata (ImageJ
          hyperstacks, OME-TIFF; RGB samples become channels);
        * a zarr array or OME-Zarr store (axes from the multiscales metadata,
          channel names from the omero metadata; level "0" is read).
    channels : sequence of str or mapping, optional
        Channels to keep, by name, in the given order; a mapping also renames
        them, e.g. ``{"0": "G", "1": "R", "2": "C"}`` for files named ``c0``...

    Returns
    -------
    xarray.DataArray
        Dims ("T", "C", "Z", "Y", "X") (missing axes have size 1), coordinates
        T (0, 1, ...) and C (channel names as strings), dask chunks
        (1, 1, 1, Y, X).

    Raises
    ------
    FileNotFoundError
        If nothing exists at ``source`` or no TIFF file matches the pattern.
    ValueError
        If files differ in shape or dtype (naming the first offending file and
        both shapes), a file is not a readable TIFF (naming it), a file is
        missing from the time x channel grid, or a channel name is unknown
        (listing the available ones).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for t in range(2):
    ...     for c in range(2):
    ...         tifffile.imwrite(
    ...             folder / f"t{t:04d}_c{c}.tif", np.full((3, 4, 5), t, np.uint16),
    ...             photometric="minisblack",
    ...         )
    >>> im = read_image(folder, channels={"0": "G", "1": "C"})
    >>> im.dims, im.shape, im.C.values.tolist()
    (('T', 'C', 'Z', 'Y', 'X'), (2, 2, 3, 4, 5), ['G', 'C'])
    >>> int(im.isel(T=1, C=0, Z=2).sum())
    20
    """
    plane_source, names = _open_source(source)
    data = da.from_array(
        plane_source,
        chunks=(1, 1, 1, -1, -1),
        meta=np.empty((0,) * 5, dtype=plane_source.dtype),
        name=f"read-image-{dask.base.tokenize(plane_source)}",
    )
    image = xr.DataArray(
        data,
        dims=DIMS,
        coords={"T": np.arange(plane_source.shape[0]), "C": names},
        name="image",
        attrs={"source": os.fspath(source)},
    )
    return select_channels(image, channels)


def __getattr__(name: str) -> object:
    """The teaching-only readers moved to :mod:`nima_lessons.course.readers`."""
    from nima_lessons._moved import moved_attribute

    readers = ("lazy_imread", "imread_dask_image", "imread_dask")
    return moved_attribute(__name__, name, {old: f"nima_lessons.course.readers:{old}" for old in readers})
