"""nima's sample time-lapse of real cells, with nima's own results, as a lesson dataset.

The files come from nima's source distribution on PyPI (fetched with pip, checked against
a recorded sha256); nothing of it is part of this repository.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import xarray as xr

from nima_lessons._atomic import atomic_path
from nima_lessons.config import data_dir
from nima_lessons.io import read_image

__all__ = [
    "CHANNELS",
    "NIMA_VERSION",
    "SDIST_NAME",
    "SDIST_SHA256",
    "NimaSample",
    "NimaSampleUnavailable",
    "ensure_nima_sample",
    "nima_sample_path",
    "open_nima_sample",
    "read_nima_tables",
]

NIMA_VERSION = "0.11.9"
SDIST_NAME = f"nima-{NIMA_VERSION}.tar.gz"
#: sha256 of nima 0.11.9's source distribution as published on PyPI.
SDIST_SHA256 = "38903bfbd1259c2e9f142c696168939ab43708a23fc50d4fba0f285643319d0c"
SDIST_URL = f"https://pypi.org/project/nima/{NIMA_VERSION}/#files"
#: The sample's channels in the order of its C axis (nima's command line: ``G R C``).
CHANNELS = ("G", "R", "C")
IMAGE_NAME = "1b_c16_15.tif"
#: Member of the archive (below its top folder) -> file of the dataset folder.
MEMBERS = {
    f"tests/data/{IMAGE_NAME}": IMAGE_NAME,
    **{f"tests/data/test_flat{i}.tif": f"flat/test_flat{i}.tif" for i in range(3)},
    **{
        f"tests/data/output/1b_c16_15/{name}": f"nima-results/{name}"
        for name in ("bg.csv", "label1.csv", "label2.csv", "label3.csv")
    },
    "LICENSE.txt": "LICENSE.txt",
}
_RECORD = "nima-sample.json"  # written last: marks a complete dataset
_FOLDER = "nima-sample"
# pip's words for an index it cannot reach (or that lists no such version offline).
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Network is unreachable|ProxyError|Max retries exceeded|Could not fetch URL|"
    r"ConnectTimeout|timed out|from versions: none|No matching distribution found",
    re.IGNORECASE,
)


class NimaSampleUnavailable(OSError):
    """nima's source distribution could not be obtained (no network, or no package index)."""


@dataclasses.dataclass(frozen=True)
class NimaSample:
    """nima's sample image and nima's results for it.

    Attributes
    ----------
    folder : pathlib.Path
        The dataset folder.
    image : xarray.DataArray
        The time-lapse, lazy, (T, C, Z, Y, X) = (4, 3, 1, 512, 512) uint16,
        channels G, R, C.
    background : pandas.DataFrame
        nima's background level per time point (index T) and channel
        (columns G, R, C), from ``nima-results/bg.csv``.
    cells : pandas.DataFrame
        nima's per-cell table, one row per cell (``label``) and time point
        (``T``): mean intensities G, R, C, area, eccentricity,
        equivalent_diameter, r_cl (C/R of the means), r_pH (G/C), and the
        medians of the ratio images r_cl_median, r_pH_median.
    flat : numpy.ndarray
        The three small flat-field test frames of nima's test suite,
        (3, 4, 5) uint16 (nima's ``bima`` flat tests; they do not fit the image).
    """

    folder: Path
    image: xr.DataArray
    background: pd.DataFrame
    cells: pd.DataFrame
    flat: np.ndarray


def nima_sample_path(root: str | os.PathLike | None = None) -> Path:
    """Where the dataset lives: ``<data>/nima-sample`` (the same for every size preset).

    Examples
    --------
    >>> nima_sample_path("/tmp/data").as_posix()
    '/tmp/data/nima-sample'
    """
    return (Path(root) if root is not None else data_dir(create=False)) / _FOLDER


def _cached_archive(root: Path) -> Path:
    return root / "downloads" / SDIST_NAME


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _how_to_fetch(root: Path) -> str:
    return (
        f"download {SDIST_NAME} (sha256 {SDIST_SHA256}) from {SDIST_URL}, or run "
        f"`python -m pip download --no-deps --no-binary :all: nima=={NIMA_VERSION} -d "
        f"{_cached_archive(root).parent}` on a machine with network access, and put it at "
        f"{_cached_archive(root)}"
    )


def _pip_download(folder: Path, timeout_s: float) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        f"nima=={NIMA_VERSION}", "-d", str(folder), "--disable-pip-version-check",
        "--no-input",
    ]  # fmt: skip
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as error:
        return subprocess.CompletedProcess(command, 1, "", f"pip download timed out: {error}")


def _download(root: Path, timeout_s: float) -> Path:
    """Fetch nima's sdist with pip into ``root/downloads``; return its path."""
    target = _cached_archive(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pip-") as tmp:
        done = _pip_download(Path(tmp), timeout_s)
        fetched = Path(tmp) / SDIST_NAME
        if done.returncode != 0 or not fetched.exists():
            output = f"{done.stdout}\n{done.stderr}"
            last = next(
                (line.strip() for line in reversed(output.splitlines()) if line.strip()), ""
            )
            if _UNREACHABLE.search(output):
                raise NimaSampleUnavailable(
                    f"cannot reach the package index to fetch nima {NIMA_VERSION} "
                    f"({last}); {_how_to_fetch(root)}"
                )
            raise RuntimeError(f"pip could not download nima {NIMA_VERSION}: {last}")
        with atomic_path(target, overwrite=True) as partial:
            shutil.move(fetched, partial)
    return target


def _checked_archive(archive: Path) -> Path:
    found = _sha256(archive)
    if found != SDIST_SHA256:
        raise ValueError(
            f"{archive} has sha256 {found}, not {SDIST_SHA256} (nima {NIMA_VERSION}'s source "
            "distribution on PyPI): delete it and fetch it again"
        )
    return archive


def _extract(archive: Path, folder: Path) -> None:
    """Copy the sample's members of the sdist into ``folder``."""
    with tarfile.open(archive, "r:gz") as tar:
        names = {name.split("/", 1)[-1]: name for name in tar.getnames() if "/" in name}
        missing = [member for member in MEMBERS if member not in names]
        if missing:
            raise ValueError(f"{archive} lacks {missing}: not nima's source distribution")
        for member, destination in MEMBERS.items():
            source = tar.extractfile(names[member])
            if source is None:
                raise ValueError(f"{archive}: {member} is not a file")
            path = folder / destination
            path.parent.mkdir(parents=True, exist_ok=True)
            with source, open(path, "wb") as out:
                shutil.copyfileobj(source, out)


def _write_provenance(folder: Path, archive: Path) -> None:
    (folder / "SOURCE.md").write_text(
        f"# nima's sample data\n\n"
        f"These files come unchanged from the source distribution of nima {NIMA_VERSION}\n"
        f"(https://github.com/darosio/nima, {SDIST_URL}), file {SDIST_NAME},\n"
        f"sha256 {SDIST_SHA256}.\n\n"
        "Copyright (c) 2018, daniele Arosio. Distributed under the BSD 3-Clause licence\n"
        "of nima, whose text is in LICENSE.txt beside this file.\n\n"
        f"- `{IMAGE_NAME}`: OME-TIFF time-lapse of cells, (T, C, Y, X) = (4, 3, 512, 512)\n"
        "  uint16, channels G, R, C (nima's tests/data).\n"
        "- `flat/`: nima's flat-field test frames (tests/data/test_flat*.tif).\n"
        "- `nima-results/`: nima's results for the image (tests/data/output/1b_c16_15):\n"
        "  `bg.csv` and `label1.csv` ... `label3.csv`, as produced by\n"
        f"  `nima {IMAGE_NAME} G R C`.\n"
    )
    record = {
        "nima_version": NIMA_VERSION,
        "sdist": SDIST_NAME,
        "sha256": SDIST_SHA256,
        "files": sorted(MEMBERS.values()),
    }
    (folder / _RECORD).write_text(json.dumps(record, indent=2))


def _is_complete(folder: Path) -> bool:
    try:
        record = json.loads((folder / _RECORD).read_text())
    except (OSError, ValueError):
        return False
    return record.get("sha256") == SDIST_SHA256 and all(
        (folder / name).is_file() for name in record.get("files", ())
    )


def ensure_nima_sample(
    root: str | os.PathLike | None = None,
    *,
    archive: str | os.PathLike | None = None,
    overwrite: bool = False,
    timeout_s: float = 600.0,
) -> Path:
    """Return the folder of nima's sample, fetching nima's sdist with pip the first time.

    The source distribution of nima 0.11.9 (BSD 3-Clause) is downloaded with
    ``python -m pip download --no-deps --no-binary :all: nima==0.11.9`` into
    ``<root>/downloads`` (kept, so later calls need no network), checked
    against :data:`SDIST_SHA256`, and the image, the flat-field frames, nima's
    results, its licence and a note of where they come from are written to
    ``<root>/nima-sample``, atomically.

    Parameters
    ----------
    root : path-like, optional
        Data folder; default :func:`nima_lessons.config.data_dir`.
    archive : path-like, optional
        A copy of ``nima-0.11.9.tar.gz`` to use instead of downloading.
    overwrite : bool
        Extract again even when the dataset is there.
    timeout_s : float
        Longest wait for pip, in seconds.

    Returns
    -------
    pathlib.Path
        ``<root>/nima-sample``.

    Raises
    ------
    NimaSampleUnavailable
        Offline (pip cannot reach the package index): the message says what
        to download and where to put it.
    ValueError
        If the archive's sha256 differs from the recorded one.
    FileExistsError
        If something else is at the dataset's path and ``overwrite`` is false.
    """
    root = Path(root) if root is not None else data_dir()
    folder = nima_sample_path(root)
    if not overwrite and _is_complete(folder):
        return folder
    if folder.exists() and not overwrite:
        raise FileExistsError(
            f"{folder} exists but is not a complete copy of nima's sample; delete it or pass "
            "overwrite=True"
        )
    if archive is not None:
        source = Path(archive)
        if not source.is_file():
            raise FileNotFoundError(f"no such archive: {source}; {_how_to_fetch(root)}")
    elif _cached_archive(root).is_file():
        source = _cached_archive(root)
    else:
        source = _download(root, timeout_s)
    _checked_archive(source)
    with atomic_path(folder, overwrite=True) as partial:
        partial.mkdir(parents=True)
        _extract(source, partial)
        _write_provenance(partial, source)
    return folder


def open_nima_sample(folder: str | os.PathLike | None = None) -> NimaSample:
    """Open nima's sample (see :func:`ensure_nima_sample`); the image stays lazy.

    Parameters
    ----------
    folder : path-like, optional
        The dataset folder; default ``<data>/nima-sample``.

    Returns
    -------
    NimaSample

    Raises
    ------
    FileNotFoundError
        If the folder is not a complete copy (it names how to get one).
    """
    folder = Path(folder) if folder is not None else nima_sample_path()
    if not _is_complete(folder):
        raise FileNotFoundError(
            f"{folder} holds no complete copy of nima's sample; run "
            "ensure_dataset('nima-sample') to fetch it"
        )
    image = read_image(folder / IMAGE_NAME, channels=dict(zip("012", CHANNELS, strict=True)))
    background, cells = read_nima_tables(folder / "nima-results")
    flat = np.stack([tifffile.imread(p) for p in sorted((folder / "flat").glob("*.tif"))])
    return NimaSample(folder, image, background, cells, flat)


def read_nima_tables(folder: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the tables nima's command line writes for one image: ``bg.csv``, ``label<N>.csv``.

    Returns
    -------
    tuple of pandas.DataFrame
        The background levels (index T, columns G, R, C) and the per-cell
        table (``label``, ``T``, then nima's columns), as in :class:`NimaSample`.

    Raises
    ------
    FileNotFoundError
        If ``folder`` holds no ``bg.csv`` or no ``label<N>.csv``.
    """
    folder = Path(folder)
    labels = sorted(folder.glob("label*.csv"))
    if not (folder / "bg.csv").is_file() or not labels:
        raise FileNotFoundError(f"{folder} holds no bg.csv and label<N>.csv written by nima")
    background = pd.read_csv(folder / "bg.csv", index_col=0).rename_axis("T")[list(CHANNELS)]
    tables = []
    for path in labels:
        table = pd.read_csv(path, index_col=0).rename_axis("T").reset_index()
        tables.append(table.assign(label=int(path.stem.removeprefix("label"))))
    cells = pd.concat(tables, ignore_index=True)
    cells = cells[["label", "T", *[c for c in cells.columns if c not in ("label", "T")]]]
    return background, cells
