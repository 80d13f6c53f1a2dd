"""The lesson datasets on disk: where each lives and how to make sure it is there.

Notebooks ask for a dataset by name; it is generated with the sizes of the current preset the
first time, and reused afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import tifffile
import zarr

from nima_lessons.config import data_dir, progress_enabled, size_name, size_preset
from nima_lessons.course.nima_sample import ensure_nima_sample
from nima_lessons.course.synthetic._validate import check_seed
from nima_lessons.course.synthetic.nuclei import LAYOUT
from nima_lessons.course.synthetic.nuclei_zarr import open_nuclei_zarr, write_nuclei_zarr
from nima_lessons.course.synthetic.ratiometric import open_ratiometric, write_ratiometric
from nima_lessons.course.synthetic.timelapse import FILE_PATTERN, write_tiff_timelapse

__all__ = [
    "DATASETS",
    "DatasetName",
    "dataset_parameters",
    "dataset_path",
    "ensure_dataset",
    "is_dataset_complete",
]

#: The lesson datasets by name.
DatasetName = Literal["nuclei", "timelapse", "ratiometric"]
#: Dataset name -> file or folder name under the data folder.
DATASETS = {"nuclei": "nuclei.zarr", "timelapse": "timelapse", "ratiometric": "ratiometric"}


def dataset_path(
    name: DatasetName,
    root: str | os.PathLike | None = None,
    size: str | None = None,
    seed: int = 0,
) -> Path:
    """Return where dataset ``name`` lives (whether or not it exists yet).

    Each size preset has its own sub-folder and a non-zero seed its own name, so
    switching presets or seeds never replaces data made with other settings.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    root : path-like, optional
        Data folder; default :func:`nima_lessons.config.data_dir`.
    size : str, optional
        Size preset; default ``$NIMA_LESSONS_SIZE`` or ``"workshop"``.
    seed : int
        Random seed.

    Returns
    -------
    pathlib.Path
        ``root/<size>/<dataset>``, e.g. ``data/workshop/nuclei.zarr``.

    Raises
    ------
    ValueError
        If ``name`` or ``size`` is unknown, or ``seed`` is negative.

    Examples
    --------
    >>> dataset_path("nuclei", root="/tmp/data", size="small").as_posix()
    '/tmp/data/small/nuclei.zarr'
    >>> dataset_path("timelapse", root="/tmp/data", size="small", seed=3).as_posix()
    '/tmp/data/small/timelapse-seed3'
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset name {name!r}: expected one of {sorted(DATASETS)}")
    folder = Path(root) if root is not None else data_dir(create=False)
    filename = DATASETS[name]
    seed = check_seed(seed)
    if seed:
        stem, dot, suffix = filename.partition(".")
        filename = f"{stem}-seed{seed}{dot}{suffix}"
    return folder / size_name(size) / filename


def dataset_parameters(name: DatasetName, size: str | None = None, seed: int = 0) -> dict:
    """Return the generator arguments of dataset ``name`` for a size preset.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    size : str, optional
        Size preset; default ``$NIMA_LESSONS_SIZE`` or ``"workshop"``.
    seed : int
        Random seed.

    Returns
    -------
    dict
        Keyword arguments of the dataset's writer (without path and flags).

    Examples
    --------
    >>> dataset_parameters("nuclei", size="workshop")
    {'shape': (2000, 5000), 'chunks': (100, 100), 'seed': 0}
    """
    dataset_path(name, root=".", size=size, seed=seed)  # validates the arguments
    preset = size_preset(size)
    seed = check_seed(seed)
    if name == "nuclei":
        return {
            "shape": tuple(preset["nuclei_shape"]),
            "chunks": tuple(preset["nuclei_chunks"]),
            "seed": seed,
        }
    sizes = dict(preset[name])
    sizes["shape"] = tuple(sizes["shape"])
    return {**sizes, "seed": seed}


def is_dataset_complete(name: DatasetName, path: str | os.PathLike, parameters: dict) -> bool:
    """Return whether ``path`` holds dataset ``name`` complete and made with ``parameters``.

    Not to be confused with :func:`nima_lessons.store.is_complete`, which tells a
    finished result store from an interrupted one.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    path : path-like
        The dataset file or folder.
    parameters : dict
        As returned by :func:`dataset_parameters`.

    Returns
    -------
    bool
    """
    path = Path(path)
    if not path.exists():
        return False
    try:
        if name == "nuclei":
            return _nuclei_matches(path, parameters)
        if name == "timelapse":
            return _timelapse_matches(path, parameters)
        return _ratiometric_matches(path, parameters)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_dataset(
    name: DatasetName,
    size: str | None = None,
    root: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Return the path of a lesson dataset, generating it first when needed.

    A dataset is generated when it is missing; a complete one made with the
    same preset and seed is returned untouched. Something else at that path
    (a dataset edited by hand, or made by another version) is never replaced
    silently: pass ``overwrite=True`` to regenerate it.

    Parameters
    ----------
    name : {"nuclei", "timelapse", "ratiometric", "nima-sample"}
        Which dataset. "nima-sample" is real data, the same for every size:
        nima's sample time-lapse and nima's results, fetched from PyPI the
        first time (see :func:`nima_lessons.course.nima_sample.ensure_nima_sample`).
    size : str, optional
        Size preset (``small``, ``workshop``, ``large``); default
        ``$NIMA_LESSONS_SIZE`` or ``"workshop"``.
    root : path-like, optional
        Data folder; default :func:`nima_lessons.config.data_dir`.
    seed : int
        Random seed.
    progress : bool, optional
        Show a progress bar while generating; default
        :func:`nima_lessons.config.progress_enabled`.
    overwrite : bool
        Regenerate the dataset even when one is there.

    Returns
    -------
    pathlib.Path
        ``root/<size>/nuclei.zarr``, ``.../timelapse`` or ``.../ratiometric``
        (see :func:`dataset_path`).

    Raises
    ------
    ValueError
        If ``name`` or ``size`` is unknown or ``seed`` negative.
    FileExistsError
        If something that does not match the request is at the dataset's
        path and ``overwrite`` is false.
    """
    if name == "nima-sample":
        if seed:
            raise ValueError(f"nima-sample is real data and has no seed, got seed={seed}")
        return ensure_nima_sample(root, overwrite=overwrite)
    path = dataset_path(name, root, size, seed)
    parameters = dataset_parameters(name, size, seed)
    if not overwrite and is_dataset_complete(name, path, parameters):
        return path
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} exists but is not a complete {name!r} dataset of preset "
            f"{size_name(size)!r} with seed {seed}; delete it or pass overwrite=True "
            "(nima-lessons data ... --overwrite) to regenerate it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = {
        "nuclei": write_nuclei_zarr,
        "timelapse": write_tiff_timelapse,
        "ratiometric": write_ratiometric,
    }[name]
    return writer(path, **parameters, overwrite=overwrite, progress=progress_enabled(progress))


def _nuclei_matches(path: Path, parameters: dict) -> bool:
    image, _, _ = open_nuclei_zarr(path)
    record = zarr.open_group(str(path), mode="r").attrs["nima_lessons"]
    return (
        tuple(record["shape"]) == parameters["shape"]
        and tuple(record["chunks"]) == parameters["chunks"]
        and record["seed"] == parameters["seed"]
        and record.get("layout") == LAYOUT  # not a store of an older generator
        and image.shape == parameters["shape"]
    )


def _timelapse_matches(path: Path, parameters: dict) -> bool:
    expected = {
        FILE_PATTERN.format(t=t, c=c)
        for t in range(parameters["n_t"])
        for c in range(parameters["n_c"])
    }
    present = {entry.name for entry in path.glob("*.tif")}
    if present != expected:
        return False
    with tifffile.TiffFile(path / FILE_PATTERN.format(t=0, c=0)) as tif:
        shape = tif.series[0].shape
    # a TIFF folder does not record its seed: the same sizes count as a match
    return shape == (parameters["n_z"], *parameters["shape"])


def _ratiometric_matches(path: Path, parameters: dict) -> bool:
    data = open_ratiometric(path)
    record = zarr.open_group(str(path / "image.zarr"), mode="r").attrs["nima_lessons"]
    expected_shape = (parameters["n_t"], 3, parameters["n_z"], *parameters["shape"])
    return (
        data.image.shape == expected_shape
        and record["seed"] == parameters["seed"]
        and record["n_cells"] == parameters["n_cells"]
    )
