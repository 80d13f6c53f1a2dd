"""Where the lessons keep their data and how big it is.

Two environment variables steer every generator and notebook:
``NIMA_LESSONS_DATA`` (the data folder) and ``NIMA_LESSONS_SIZE`` (a size preset).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "NIMA_LESSONS_DATA"
SIZE_ENV = "NIMA_LESSONS_SIZE"
DEFAULT_SIZE = "workshop"

#: Dataset sizes per preset. ``workshop`` follows the course material;
#: ``small`` keeps CI and quick trials fast without changing what a lesson
#: shows; ``large`` is bigger than the memory of a laptop on purpose.
SIZES: dict[str, dict[str, object]] = {
    "small": {
        "mandelbrot_frames": 200_000,
        "mandelbrot_shape": (128, 128),
        "nuclei_shape": (1000, 2000),
        "nuclei_chunks": (100, 100),
        "timelapse": {"n_t": 6, "n_c": 2, "n_z": 4, "shape": (128, 128)},
        "ratiometric": {"n_t": 4, "n_z": 1, "shape": (256, 256), "n_cells": 12},
        "stitched": {"shape": (4096, 4096), "chunks": (1024, 1024)},
    },
    "workshop": {
        "mandelbrot_frames": 200_000,
        "mandelbrot_shape": (512, 512),
        "nuclei_shape": (2000, 5000),
        "nuclei_chunks": (100, 100),
        "timelapse": {"n_t": 20, "n_c": 2, "n_z": 16, "shape": (256, 256)},
        "ratiometric": {"n_t": 10, "n_z": 1, "shape": (512, 512), "n_cells": 30},
        "stitched": {"shape": (16384, 16384), "chunks": (1024, 1024)},
    },
    "large": {
        "mandelbrot_frames": 200_000,
        "mandelbrot_shape": (1024, 1024),
        "nuclei_shape": (50_000, 50_000),
        "nuclei_chunks": (1000, 1000),
        "timelapse": {"n_t": 200, "n_c": 2, "n_z": 64, "shape": (1024, 1024)},
        "ratiometric": {"n_t": 100, "n_z": 1, "shape": (2048, 2048), "n_cells": 200},
        "stitched": {"shape": (50_000, 50_000), "chunks": (1024, 1024)},
    },
}


def repository_root() -> Path:
    """Return the repository root when the package runs from a checkout.

    Returns
    -------
    pathlib.Path
        The folder holding ``pyproject.toml`` above the package, or the
        current working directory for an installed (non-editable) package.
    """
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def data_dir(create: bool = True) -> Path:
    """Return the folder where generated datasets live.

    Parameters
    ----------
    create : bool
        Create the folder when it does not exist yet.

    Returns
    -------
    pathlib.Path
        ``$NIMA_LESSONS_DATA`` when set, else ``data/`` at the repository root.

    Examples
    --------
    >>> data_dir(create=False).name in {"data", os.environ.get(DATA_ENV, "data")}
    True
    """
    configured = os.environ.get(DATA_ENV)
    folder = Path(configured).expanduser() if configured else repository_root() / "data"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def size_name(name: str | None = None) -> str:
    """Return the validated size preset name.

    Parameters
    ----------
    name : str, optional
        A preset name; when omitted, ``$NIMA_LESSONS_SIZE`` or ``"workshop"``.

    Returns
    -------
    str
        One of the keys of :data:`SIZES`.

    Raises
    ------
    ValueError
        If the name is not a known preset.
    """
    chosen = name if name is not None else os.environ.get(SIZE_ENV, DEFAULT_SIZE)
    chosen = chosen.strip().lower()
    if chosen not in SIZES:
        source = "size" if name is not None else f"${SIZE_ENV}"
        raise ValueError(f"unknown {source} {chosen!r}: expected one of {sorted(SIZES)}")
    return chosen


def size_preset(name: str | None = None) -> dict[str, object]:
    """Return the dataset sizes of a preset (see :data:`SIZES`).

    Parameters
    ----------
    name : str, optional
        A preset name; when omitted, ``$NIMA_LESSONS_SIZE`` or ``"workshop"``.

    Returns
    -------
    dict
        A copy of the preset, safe to modify.
    """
    import copy

    return copy.deepcopy(SIZES[size_name(name)])


PROGRESS_ENV = "NIMA_LESSONS_PROGRESS"


def progress_enabled(progress: bool | None = None) -> bool:
    """Decide whether long operations show a progress bar.

    Parameters
    ----------
    progress : bool, optional
        An explicit choice wins. When omitted, ``$NIMA_LESSONS_PROGRESS``
        decides (``0``, ``false``, ``no`` or ``off`` turn bars off; the test
        and notebook-execution targets do so, because a bar's timings differ on
        every run); bars are on otherwise.

    Returns
    -------
    bool
        Whether to show a progress bar.
    """
    if progress is not None:
        return bool(progress)
    value = os.environ.get(PROGRESS_ENV, "1").strip().lower()
    return value not in {"0", "false", "no", "off"}
