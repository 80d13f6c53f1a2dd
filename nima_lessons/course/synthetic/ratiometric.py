"""Synthetic ratiometric time-lapse with known per-cell ratios, for the pipeline lesson.

Cells carry a known G/C ratio per time point; the camera adds a dark frame, vignetting (flat
field), photon noise and read noise, as a real microscope would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import xarray as xr
import zarr
from tqdm.auto import tqdm

from nima_lessons._atomic import atomic_path
from nima_lessons.config import progress_enabled
from nima_lessons.course.synthetic._ome import (
    create_ngff_array,
    open_ngff_group,
    write_tczyx_metadata,
)
from nima_lessons.course.synthetic._validate import check_positive_int, check_seed, check_shape
from nima_lessons.io import ome_zarr_image

#: Channel names, in the order of the C axis. The known ratio is G / C.
CHANNELS = ("G", "R", "C")
NUMERATOR = "G"
DENOMINATOR = "C"

_TERRITORY_PX = 48  # one cell at most per territory: 40 px cells, 4 px margins
_MARGIN_PX = 4
_SEMI_MAJOR_PX = (8.0, 20.0)
_MIN_SEMI_MINOR_PX = 7.5
_ASPECT = (1.0, 1.6)
_DENOMINATOR_LEVEL = (1500.0, 3000.0)  # photons per pixel in C at t = 0
_RED_LEVEL = (800.0, 2000.0)
_RATIO_START = (0.6, 1.6)
_RATIO_DRIFT = (-0.3, 0.3)  # relative change of the ratio over the whole time-lapse
_BLEACH_PER_FRAME = 0.005  # same for all channels: the ratio does not see it
_BACKGROUND = {"G": 60.0, "R": 40.0, "C": 80.0}  # photons per pixel
_DARK_LEVEL = {"G": 100.0, "R": 104.0, "C": 98.0}  # camera offset (counts)
_DARK_PATTERN_SD = 2.0
_READ_NOISE_SD = 3.0
_VIGNETTING = 0.35  # relative loss in the corners of the field
_VIGNETTING_CENTRE = {"G": (0.02, -0.03), "R": (-0.02, 0.01), "C": (0.03, 0.02)}


@dataclass(frozen=True)
class RatiometricData:
    """A ratiometric time-lapse with its calibration frames and ground truth.

    Attributes
    ----------
    image : xarray.DataArray
        uint16, dims ("T", "C", "Z", "Y", "X"), C coordinate ``CHANNELS``.
    dark : xarray.DataArray
        float32, dims ("C", "Y", "X"): the camera offset, in counts.
    flat : xarray.DataArray
        float32, dims ("C", "Y", "X"): relative illumination, mean 1.
    labels : xarray.DataArray
        int32, dims ("Z", "Y", "X"): the cells (1..n), fixed over time.
    truth : pandas.DataFrame
        Columns "T", "label", "ratio" (G / C of the noise-free cell signal)
        and "G", "R", "C" (noise-free photons per pixel of each cell).
    background : dict
        Photons per pixel outside cells, per channel (before the flat field).
    """

    image: xr.DataArray
    dark: xr.DataArray
    flat: xr.DataArray
    labels: xr.DataArray
    truth: pd.DataFrame
    background: dict


@dataclass(frozen=True)
class RatiometricScene:
    """Everything but the noise: cells, their signal per time point and the camera."""

    n_t: int
    n_z: int
    shape: tuple[int, int]
    seed: int
    labels: np.ndarray  # int32 (Y, X)
    signal: np.ndarray  # float64 (T, C, n_cells): photons per pixel inside each cell
    dark: np.ndarray  # float32 (C, Y, X)
    flat: np.ndarray  # float32 (C, Y, X)

    def truth(self) -> pd.DataFrame:
        """Return the per-cell, per-time ratio table."""
        n_cells = self.signal.shape[2]
        frame = pd.DataFrame(
            {
                "T": np.repeat(np.arange(self.n_t), n_cells),
                "label": np.tile(np.arange(1, n_cells + 1), self.n_t),
            }
        )
        for index, name in enumerate(CHANNELS):
            frame[name] = self.signal[:, index, :].ravel()
        numerator = CHANNELS.index(NUMERATOR)
        denominator = CHANNELS.index(DENOMINATOR)
        frame.insert(
            2, "ratio", (self.signal[:, numerator, :] / self.signal[:, denominator, :]).ravel()
        )
        return frame

    def plane(self, t: int, c: int, z: int) -> np.ndarray:
        """Return the noisy camera image of one plane (uint16, (Y, X)).

        Each plane has its own random stream, so planes can be made in any
        order, alone, with identical results.
        """
        rng = np.random.default_rng([self.seed, 1, t, c, z])
        photons = np.append(_BACKGROUND[CHANNELS[c]], self.signal[t, c] + _BACKGROUND[CHANNELS[c]])
        expected = self.flat[c] * photons[self.labels]
        counts = rng.poisson(expected) + self.dark[c]
        counts = counts + rng.normal(0.0, _READ_NOISE_SD, counts.shape)
        return np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def max_cells(shape: tuple[int, int]) -> int:
    """Return how many non-touching cells fit in an image of this shape.

    Examples
    --------
    >>> max_cells((512, 512))
    100
    """
    shape = check_shape(shape, "shape", ndim=2)
    return (shape[0] // _TERRITORY_PX) * (shape[1] // _TERRITORY_PX)


def ratiometric_scene(
    n_t: int = 10,
    n_z: int = 1,
    shape: tuple[int, int] = (512, 512),
    n_cells: int = 30,
    seed: int = 0,
) -> RatiometricScene:
    """Draw the cells, their signals and the camera of a ratiometric time-lapse.

    Parameters are those of :func:`ratiometric_timelapse`.

    Returns
    -------
    RatiometricScene
    """
    n_t = check_positive_int(n_t, "n_t")
    n_z = check_positive_int(n_z, "n_z")
    shape = check_shape(shape, "shape", ndim=2)
    n_cells = check_positive_int(n_cells, "n_cells")
    seed = check_seed(seed)
    if n_cells > max_cells(shape):
        raise ValueError(
            f"n_cells={n_cells} cells do not fit in an image of shape {shape}: "
            f"at most {max_cells(shape)} (one per {_TERRITORY_PX} x {_TERRITORY_PX} px)"
        )
    rng = np.random.default_rng([seed, 0])
    labels = _draw_cells(shape, n_cells, rng)
    return RatiometricScene(
        n_t=n_t,
        n_z=n_z,
        shape=shape,
        seed=seed,
        labels=labels,
        signal=_draw_signals(n_t, n_cells, rng),
        dark=_dark_frames(shape, rng),
        flat=_flat_fields(shape),
    )


def ratiometric_timelapse(
    n_t: int = 10,
    n_z: int = 1,
    shape: tuple[int, int] = (512, 512),
    n_cells: int = 30,
    seed: int = 0,
) -> RatiometricData:
    """Make a (T, C, Z, Y, X) ratiometric time-lapse with known per-cell ratios.

    Cells are non-touching ellipses 15 to 40 px across, fixed over time and
    spanning every Z plane. Inside a cell each channel is uniform, so the ratio
    of the per-cell mean intensities (after dark, flat and background
    correction) equals the true ratio; the ratio drifts slowly over time,
    differently for each cell, while all channels bleach alike. The camera
    records ``flat * (cell + background)`` photons with Poisson noise, adds the
    dark frame and Gaussian read noise, and stores uint16 counts.

    Parameters
    ----------
    n_t, n_z : int
        Number of time points and of Z planes.
    shape : tuple of int
        Plane shape (Y, X) in pixels.
    n_cells : int
        Number of cells; at most :func:`max_cells` of ``shape``.
    seed : int
        Random seed.

    Returns
    -------
    RatiometricData

    Raises
    ------
    ValueError
        If a size is not a positive integer or the cells do not fit.

    Examples
    --------
    >>> data = ratiometric_timelapse(n_t=2, shape=(128, 128), n_cells=4, seed=1)
    >>> data.image.dims, data.image.C.values.tolist()
    (('T', 'C', 'Z', 'Y', 'X'), ['G', 'R', 'C'])
    >>> len(data.truth)
    8
    """
    scene = ratiometric_scene(n_t, n_z, shape, n_cells, seed)
    planes = np.empty((scene.n_t, len(CHANNELS), scene.n_z, *scene.shape), dtype=np.uint16)
    for t in range(scene.n_t):
        for c in range(len(CHANNELS)):
            for z in range(scene.n_z):
                planes[t, c, z] = scene.plane(t, c, z)
    return RatiometricData(
        image=xr.DataArray(
            planes,
            dims=("T", "C", "Z", "Y", "X"),
            coords={"T": np.arange(scene.n_t), "C": list(CHANNELS)},
            name="image",
            attrs={"units": "counts", "ratio": f"{NUMERATOR}/{DENOMINATOR}"},
        ),
        dark=_channel_array(scene.dark, "dark", "counts"),
        flat=_channel_array(scene.flat, "flat", "relative illumination"),
        labels=xr.DataArray(
            np.broadcast_to(scene.labels, (scene.n_z, *scene.shape)).copy(),
            dims=("Z", "Y", "X"),
            name="labels",
        ),
        truth=scene.truth(),
        background=dict(_BACKGROUND),
    )


def _channel_array(values: np.ndarray, name: str, units: str) -> xr.DataArray:
    return xr.DataArray(
        values, dims=("C", "Y", "X"), coords={"C": list(CHANNELS)}, name=name,
        attrs={"units": units},
    )  # fmt: skip


def _draw_cells(shape: tuple[int, int], n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Return a label image of ``n_cells`` ellipses, one per chosen territory."""
    grid = (shape[0] // _TERRITORY_PX, shape[1] // _TERRITORY_PX)
    chosen = np.sort(rng.choice(grid[0] * grid[1], size=n_cells, replace=False))
    labels = np.zeros(shape, dtype=np.int32)
    rows, cols = np.mgrid[0:_TERRITORY_PX, 0:_TERRITORY_PX]
    for label, territory in enumerate(chosen, start=1):
        semi_major = rng.uniform(*_SEMI_MAJOR_PX)
        semi_minor = max(semi_major / rng.uniform(*_ASPECT), _MIN_SEMI_MINOR_PX)
        angle = rng.uniform(0.0, np.pi)
        reach = semi_major + _MARGIN_PX
        centre_y, centre_x = reach + rng.random(2) * (_TERRITORY_PX - 2 * reach)
        dy, dx = rows - centre_y, cols - centre_x
        along = (dx * np.cos(angle) + dy * np.sin(angle)) / semi_major
        across = (-dx * np.sin(angle) + dy * np.cos(angle)) / semi_minor
        top = (territory // grid[1]) * _TERRITORY_PX
        left = (territory % grid[1]) * _TERRITORY_PX
        window = labels[top : top + _TERRITORY_PX, left : left + _TERRITORY_PX]
        window[along**2 + across**2 <= 1.0] = label
    return labels


def _draw_signals(n_t: int, n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Return photons per pixel, shape (T, C, n_cells), with a drifting G/C ratio."""
    denominator = rng.uniform(*_DENOMINATOR_LEVEL, n_cells)
    red = rng.uniform(*_RED_LEVEL, n_cells)
    start = rng.uniform(*_RATIO_START, n_cells)
    drift = rng.uniform(*_RATIO_DRIFT, n_cells)
    progress = np.arange(n_t)[:, None] / max(n_t - 1, 1)
    ratio = start * (1.0 + drift * progress)
    bleach = (1.0 - _BLEACH_PER_FRAME) ** np.arange(n_t)[:, None]
    signal = np.empty((n_t, len(CHANNELS), n_cells))
    signal[:, CHANNELS.index(DENOMINATOR)] = bleach * denominator
    signal[:, CHANNELS.index(NUMERATOR)] = bleach * denominator * ratio
    signal[:, CHANNELS.index("R")] = bleach * red
    return signal


def _dark_frames(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Return the camera offset per channel: a level plus a fixed pixel pattern."""
    pattern = rng.normal(0.0, _DARK_PATTERN_SD, shape)
    return np.stack([_DARK_LEVEL[name] + pattern for name in CHANNELS]).astype(np.float32)


def _flat_fields(shape: tuple[int, int]) -> np.ndarray:
    """Return a radial vignetting per channel, normalised to mean 1."""
    y = np.linspace(-1.0, 1.0, shape[0])[:, None]
    x = np.linspace(-1.0, 1.0, shape[1])[None, :]
    fields = []
    for name in CHANNELS:
        centre_y, centre_x = _VIGNETTING_CENTRE[name]
        radius2 = ((y - centre_y) ** 2 + (x - centre_x) ** 2) / 2.0
        field = 1.0 - _VIGNETTING * radius2
        fields.append(field / field.mean())
    return np.stack(fields).astype(np.float32)


#: Files of a ratiometric dataset folder.
RATIOMETRIC_FILES = ("image.zarr", "dark.tif", "flat.tif", "labels.tif", "truth.csv")


def write_ratiometric(
    folder: str | os.PathLike,
    n_t: int = 10,
    n_z: int = 1,
    shape: tuple[int, int] = (512, 512),
    n_cells: int = 30,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write a ratiometric time-lapse, its calibration frames and ground truth to a folder.

    The folder holds ``image.zarr`` (OME-Zarr, NGFF 0.4, axes t, c, z, y, x,
    one chunk per plane, channel names in the ``omero`` metadata and the
    background levels in ``attrs["nima_lessons"]``), ``dark.tif`` and
    ``flat.tif`` (C, Y, X float32), ``labels.tif`` (Z, Y, X int32) and
    ``truth.csv`` (columns T, label, ratio, G, R, C). Planes are generated and
    written one at a time, so the time-lapse never has to fit in memory; the
    folder appears under its final name only when complete.

    Parameters
    ----------
    folder : path-like
        Output folder.
    n_t, n_z, shape, n_cells, seed
        As in :func:`ratiometric_timelapse`.
    overwrite : bool
        Replace an existing folder.
    progress : bool, optional
        Show a progress bar; default :func:`nima_lessons.config.progress_enabled`.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    ValueError
        If a size is not a positive integer or the cells do not fit.
    FileExistsError
        If ``folder`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> out = write_ratiometric(tempfile.mkdtemp() + "/ratio", n_t=2, shape=(96, 96),
    ...                         n_cells=3, progress=False)
    >>> sorted(p.name for p in out.iterdir())
    ['dark.tif', 'flat.tif', 'image.zarr', 'labels.tif', 'truth.csv']
    """
    progress = progress_enabled(progress)
    scene = ratiometric_scene(n_t, n_z, shape, n_cells, seed)
    with atomic_path(folder, overwrite=overwrite) as tmp:
        tmp.mkdir()
        _write_image_zarr(scene, tmp / "image.zarr", progress)
        for name, frames in (("dark", scene.dark), ("flat", scene.flat)):
            tifffile.imwrite(
                tmp / f"{name}.tif", frames, photometric="minisblack", metadata={"axes": "CYX"}
            )
        labels = np.broadcast_to(scene.labels, (scene.n_z, *scene.shape))
        tifffile.imwrite(tmp / "labels.tif", np.ascontiguousarray(labels), metadata={"axes": "ZYX"})
        scene.truth().to_csv(tmp / "truth.csv", index=False)
    return Path(folder)


def open_ratiometric(folder: str | os.PathLike) -> RatiometricData:
    """Open a folder written by :func:`write_ratiometric`; the image stays lazy.

    Parameters
    ----------
    folder : path-like
        The dataset folder.

    Returns
    -------
    RatiometricData
        ``image`` is backed by a dask array with one chunk per plane.

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    """
    import dask.array as da

    folder = Path(folder)
    missing = [name for name in RATIOMETRIC_FILES if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a ratiometric dataset: missing {missing}")
    root = zarr.open_group(str(folder / "image.zarr"), mode="r")
    record = root.attrs["nima_lessons"]
    metadata = ome_zarr_image(root, folder / "image.zarr")
    channels = list(metadata.channels or CHANNELS)
    image = da.from_zarr(root[metadata.array_path])
    dark = tifffile.imread(folder / "dark.tif")
    flat = tifffile.imread(folder / "flat.tif")
    return RatiometricData(
        image=xr.DataArray(
            image,
            dims=("T", "C", "Z", "Y", "X"),
            coords={"T": np.arange(image.shape[0]), "C": channels},
            name="image",
            attrs={"units": "counts", "ratio": f"{NUMERATOR}/{DENOMINATOR}"},
        ),
        dark=_channel_array(dark, "dark", "counts"),
        flat=_channel_array(flat, "flat", "relative illumination"),
        labels=xr.DataArray(tifffile.imread(folder / "labels.tif"), dims=("Z", "Y", "X"),
                            name="labels"),
        truth=pd.read_csv(folder / "truth.csv"),
        background=dict(record["background"]),
    )  # fmt: skip


def _write_image_zarr(scene: RatiometricScene, path: Path, progress: bool) -> None:
    """Write the planes of ``scene`` one by one into an OME-Zarr (NGFF 0.4) image."""
    root = open_ngff_group(str(path))
    shape = (scene.n_t, len(CHANNELS), scene.n_z, *scene.shape)
    array = create_ngff_array(root, "0", shape, (1, 1, 1, *scene.shape))
    planes = list(np.ndindex(*shape[:3]))
    for t, c, z in tqdm(planes, desc="ratiometric", unit="plane", disable=not progress):
        array[t, c, z] = scene.plane(t, c, z)
    write_tczyx_metadata(root, "ratiometric", CHANNELS)
    # written last: the record marks a complete image
    root.attrs["nima_lessons"] = {
        "seed": scene.seed,
        "n_cells": int(scene.labels.max()),
        "background": dict(_BACKGROUND),
        "ratio": f"{NUMERATOR}/{DENOMINATOR}",
    }


def cell_parameters(n_cells: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw the shapes and t = 0 signals of ``n_cells`` cells, as the time-lapse draws them.

    For generators that place cells themselves (a stitched plane far larger
    than memory): each cell is an ellipse inside its own square territory of
    ``territory_px`` pixels, with the sizes, aspect ratios, brightness and
    G/C ratios of :func:`ratiometric_timelapse`.

    Parameters
    ----------
    n_cells : int
        Number of cells (any, including 0).
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    dict
        float64 arrays of length ``n_cells``: ``semi_major``, ``semi_minor``
        (pixels), ``angle`` (radians), ``centre_y``, ``centre_x`` (pixels from
        the territory's corner), ``ratio`` (G / C) and photons per pixel
        ``G``, ``R``, ``C``; and ``territory_px`` (int).

    Examples
    --------
    >>> cells = cell_parameters(3, np.random.default_rng(0))
    >>> bool(np.all(cells["semi_minor"] <= cells["semi_major"]))
    True
    """
    semi_major = rng.uniform(*_SEMI_MAJOR_PX, n_cells)
    semi_minor = np.maximum(semi_major / rng.uniform(*_ASPECT, n_cells), _MIN_SEMI_MINOR_PX)
    reach = semi_major + _MARGIN_PX
    centres = reach[:, None] + rng.random((n_cells, 2)) * (_TERRITORY_PX - 2 * reach[:, None])
    denominator = rng.uniform(*_DENOMINATOR_LEVEL, n_cells)
    ratio = rng.uniform(*_RATIO_START, n_cells)
    return {
        "semi_major": semi_major,
        "semi_minor": semi_minor,
        "angle": rng.uniform(0.0, np.pi, n_cells),
        "centre_y": centres[:, 0],
        "centre_x": centres[:, 1],
        "ratio": ratio,
        "G": denominator * ratio,
        "R": rng.uniform(*_RED_LEVEL, n_cells),
        "C": denominator,
        "territory_px": _TERRITORY_PX,
    }


def camera_frames(shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The dark and flat frames of one camera field, per channel of :data:`CHANNELS`.

    Returns
    -------
    dark, flat : numpy.ndarray
        float32 (C, Y, X): the offset in counts, and the vignetting (mean 1).
    """
    shape = check_shape(shape, "shape", ndim=2)
    return _dark_frames(shape, np.random.default_rng([check_seed(seed), 3])), _flat_fields(shape)


#: Photons per pixel outside cells, per channel (before the flat field).
BACKGROUND_PHOTONS = dict(_BACKGROUND)
#: Standard deviation of the camera's read noise, in counts.
READ_NOISE_SD = _READ_NOISE_SD
