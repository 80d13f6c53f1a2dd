"""Synthetic 3D time-lapse of drifting nuclei saved as a folder of TIFF files.

One (Z, Y, X) file per time point and channel, the shape microscopes often export and the
lazy-loading lesson reads back with dask.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from tqdm.auto import tqdm

from nima_lessons._atomic import atomic_path
from nima_lessons.config import progress_enabled
from nima_lessons.course.synthetic._validate import check_positive_int, check_seed, check_shape

__all__ = [
    "FILE_PATTERN",
    "TimelapseScene",
    "timelapse_array",
    "timelapse_scene",
    "write_tiff_folder",
    "write_tiff_timelapse",
]

#: File name of one time point and channel; natural and plain sorting agree.
FILE_PATTERN = "t{t:04d}_c{c}.tif"

_AREA_PER_NUCLEUS_PX = 48 * 48
_RADIUS_PX = (6.0, 12.0)  # in Y and X
_Z_RADIUS_FRACTION = (0.15, 0.3)  # of the stack depth
_SPEED_PX_PER_FRAME = (0.5, 2.0)
_BRIGHTNESS = (800.0, 2500.0)
_BACKGROUND = 100.0
_READ_NOISE_SD = 4.0


@dataclass(frozen=True)
class TimelapseScene:
    """Positions, sizes and brightness of the nuclei of a time-lapse."""

    n_t: int
    n_c: int
    n_z: int
    shape: tuple[int, int]
    seed: int
    start: np.ndarray  # (n, 3) z, y, x in pixels at t = 0
    velocity: np.ndarray  # (n, 2) y, x in pixels per frame
    radius: np.ndarray  # (n, 3) z, y, x in pixels
    brightness: np.ndarray  # (n_c, n) photons at the centre

    def centres(self, t: int) -> np.ndarray:
        """Return the nuclei centres (z, y, x) at time ``t``; they bounce off the borders."""
        low = self.radius[:, 1:]
        high = np.asarray(self.shape) - 1 - self.radius[:, 1:]
        span = high - low
        travelled = self.start[:, 1:] - low + self.velocity * t
        folded = np.abs((travelled + span) % (2 * span) - span)  # triangle wave in [0, span]
        return np.column_stack([self.start[:, 0], low + folded])

    def volume(self, t: int, c: int) -> np.ndarray:
        """Return the noisy (Z, Y, X) uint16 volume of time ``t`` and channel ``c``."""
        photons = np.full((self.n_z, *self.shape), _BACKGROUND)
        z = np.arange(self.n_z)[:, None, None]
        y = np.arange(self.shape[0])[None, :, None]
        x = np.arange(self.shape[1])[None, None, :]
        for centre, radius, bright in zip(
            self.centres(t), self.radius, self.brightness[c], strict=True
        ):
            top = max(int(centre[1] - 2 * radius[1]), 0)
            bottom = min(int(centre[1] + 2 * radius[1]) + 2, self.shape[0])
            left = max(int(centre[2] - 2 * radius[2]), 0)
            right = min(int(centre[2] + 2 * radius[2]) + 2, self.shape[1])
            distance2 = (
                ((z - centre[0]) / radius[0]) ** 2
                + ((y[:, top:bottom] - centre[1]) / radius[1]) ** 2
                + ((x[:, :, left:right] - centre[2]) / radius[2]) ** 2
            )
            # a soft-edged ball: flat top, smooth fall-off
            photons[:, top:bottom, left:right] += bright / (1.0 + np.exp((distance2 - 1.0) * 4.0))
        rng = np.random.default_rng([self.seed, 1, t, c])
        counts = rng.poisson(photons) + rng.normal(0.0, _READ_NOISE_SD, photons.shape)
        return np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def timelapse_scene(
    n_t: int = 20,
    n_c: int = 2,
    n_z: int = 16,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
) -> TimelapseScene:
    """Draw the nuclei of a time-lapse; parameters as in :func:`write_tiff_timelapse`.

    Returns
    -------
    TimelapseScene
    """
    n_t = check_positive_int(n_t, "n_t")
    n_c = check_positive_int(n_c, "n_c")
    n_z = check_positive_int(n_z, "n_z")
    shape = check_shape(shape, "shape", ndim=2)
    seed = check_seed(seed)
    if min(shape) < 4 * _RADIUS_PX[1]:
        smallest = 4 * _RADIUS_PX[1]
        raise ValueError(f"shape {shape} is too small: expected at least {smallest:.0f} px")
    rng = np.random.default_rng([seed, 0])
    n_nuclei = max(3, shape[0] * shape[1] // _AREA_PER_NUCLEUS_PX)
    radius_yx = rng.uniform(*_RADIUS_PX, (n_nuclei, 2))
    radius_z = rng.uniform(*_Z_RADIUS_FRACTION, n_nuclei) * n_z + 0.5
    start = np.column_stack(
        [
            rng.uniform(0.25, 0.75, n_nuclei) * (n_z - 1),
            rng.uniform(radius_yx[:, 0], shape[0] - 1 - radius_yx[:, 0]),
            rng.uniform(radius_yx[:, 1], shape[1] - 1 - radius_yx[:, 1]),
        ]
    )
    heading = rng.uniform(0.0, 2 * np.pi, n_nuclei)
    speed = rng.uniform(*_SPEED_PX_PER_FRAME, n_nuclei)
    return TimelapseScene(
        n_t=n_t,
        n_c=n_c,
        n_z=n_z,
        shape=shape,
        seed=seed,
        start=start,
        velocity=np.column_stack([speed * np.sin(heading), speed * np.cos(heading)]),
        radius=np.column_stack([radius_z, radius_yx]),
        brightness=rng.uniform(*_BRIGHTNESS, (n_c, n_nuclei)),
    )


def timelapse_array(
    n_t: int = 20,
    n_c: int = 2,
    n_z: int = 16,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
) -> np.ndarray:
    """Return the whole time-lapse in memory, shape (T, C, Z, Y, X), uint16.

    The same values :func:`write_tiff_timelapse` writes, for small shapes.

    Examples
    --------
    >>> timelapse_array(n_t=2, n_c=1, n_z=3, shape=(64, 64)).shape
    (2, 1, 3, 64, 64)
    """
    scene = timelapse_scene(n_t, n_c, n_z, shape, seed)
    return np.stack(
        [np.stack([scene.volume(t, c) for c in range(scene.n_c)]) for t in range(scene.n_t)]
    )


def write_tiff_timelapse(
    folder: str | os.PathLike,
    n_t: int = 20,
    n_c: int = 2,
    n_z: int = 16,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write a time-lapse of drifting nuclei as one 3D TIFF per time point and channel.

    Files are named ``t0000_c0.tif``, ``t0000_c1.tif``, ``t0001_c0.tif``...
    (:data:`FILE_PATTERN`), each a (Z, Y, X) uint16 ImageJ hyperstack with
    axes metadata. The folder is written under a temporary name and renamed
    when complete.

    Parameters
    ----------
    folder : path-like
        Output folder.
    n_t, n_c, n_z : int
        Number of time points, channels and Z planes.
    shape : tuple of int
        Plane shape (Y, X) in pixels.
    seed : int
        Random seed.
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
        If a size is not a positive integer.
    FileExistsError
        If ``folder`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> out = write_tiff_timelapse(tempfile.mkdtemp() + "/lapse", n_t=2, n_c=1, n_z=2,
    ...                            shape=(64, 64), progress=False)
    >>> sorted(p.name for p in out.iterdir())
    ['t0000_c0.tif', 't0001_c0.tif']
    """
    scene = timelapse_scene(n_t, n_c, n_z, shape, seed)
    return write_tiff_folder(folder, scene.volume, scene.n_t, scene.n_c, overwrite, progress)


def write_tiff_folder(
    folder: str | os.PathLike,
    image: np.ndarray | Callable[[int, int], np.ndarray],
    n_t: int | None = None,
    n_c: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write a time-lapse as a folder of TIFF files, one per time point and channel.

    The one TIFF-folder writer of the course: files are named by
    :data:`FILE_PATTERN` (``t0000_c0.tif``, ``t0000_c1.tif``, ...), each an
    ImageJ TIFF of one (Z, Y, X) volume or (Y, X) plane with its axes recorded.
    The folder is written under a temporary name and renamed when complete.

    Parameters
    ----------
    folder : path-like
        Output folder.
    image : numpy.ndarray or callable
        A (T, C, Z, Y, X) or (T, C, Y, X) array, or ``image(t, c)`` returning
        one volume or plane, so that the time-lapse never has to fit in memory.
    n_t, n_c : int, optional
        Time points and channels; needed only when ``image`` is a callable.
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
        If the array is not 4-D or 5-D, or ``n_t``/``n_c`` is missing for a callable.
    FileExistsError
        If ``folder`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> out = write_tiff_folder(tempfile.mkdtemp() + "/planes", np.zeros((2, 1, 8, 8), np.uint16))
    >>> sorted(p.name for p in out.iterdir()), tifffile.imread(out / "t0001_c0.tif").shape
    (['t0000_c0.tif', 't0001_c0.tif'], (8, 8))
    """
    if callable(image):
        if n_t is None or n_c is None:
            raise ValueError("n_t and n_c are needed when image is a function of (t, c)")
        volume = image
    else:
        array = np.asarray(image)
        if array.ndim not in (4, 5):
            raise ValueError(
                f"image must be (T, C, Z, Y, X) or (T, C, Y, X), got shape {array.shape}"
            )
        n_t, n_c = array.shape[:2]
        volume = lambda t, c: array[t, c]  # noqa: E731
    steps = [
        (t, c)
        for t in range(check_positive_int(n_t, "n_t"))
        for c in range(check_positive_int(n_c, "n_c"))
    ]
    with atomic_path(folder, overwrite=overwrite) as tmp:
        tmp.mkdir()
        for t, c in tqdm(
            steps, desc="tiff folder", unit="file", disable=not progress_enabled(progress)
        ):
            values = np.asarray(volume(t, c))
            axes = "ZYX"[-values.ndim :]
            tifffile.imwrite(
                tmp / FILE_PATTERN.format(t=t, c=c), values, imagej=True, metadata={"axes": axes}
            )
    return Path(folder)
