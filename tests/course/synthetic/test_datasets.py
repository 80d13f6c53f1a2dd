"""Tests of ensure_dataset: generated once with the preset's sizes, reused, repaired."""

import numpy as np
import pytest
import tifffile

from nima_lessons.config import size_preset
from nima_lessons.course.synthetic import (
    dataset_parameters,
    dataset_path,
    ensure_dataset,
    is_dataset_complete,
    nuclei_count,
    open_nuclei_zarr,
    open_ratiometric,
)


@pytest.fixture()
def tiny_sizes(monkeypatch):
    """Shrink the small preset so that generating every dataset takes a moment."""
    from nima_lessons import config

    small = dict(config.SIZES["small"])
    small.update(
        nuclei_shape=(200, 300),
        nuclei_chunks=(100, 100),
        timelapse={"n_t": 2, "n_c": 2, "n_z": 2, "shape": (64, 64)},
        ratiometric={"n_t": 2, "n_z": 1, "shape": (96, 96), "n_cells": 3},
    )
    monkeypatch.setitem(config.SIZES, "small", small)
    return "small"


@pytest.mark.parametrize("name", ["nuclei", "timelapse", "ratiometric"])
def test_generates_once_then_reuses(tmp_path, tiny_sizes, name):
    path = ensure_dataset(name, size=tiny_sizes, root=tmp_path, progress=False)
    assert path == dataset_path(name, tmp_path, size=tiny_sizes)
    assert path.parent == tmp_path / "small"
    assert is_dataset_complete(name, path, dataset_parameters(name, tiny_sizes))
    stamp = path.stat().st_mtime_ns
    assert ensure_dataset(name, size=tiny_sizes, root=tmp_path, progress=False) == path
    assert path.stat().st_mtime_ns == stamp


def test_contents_follow_the_preset(tmp_path, tiny_sizes):
    image, _, count = open_nuclei_zarr(ensure_dataset("nuclei", tiny_sizes, tmp_path))
    assert image.shape == (200, 300) and count == nuclei_count((200, 300), seed=0)
    folder = ensure_dataset("timelapse", tiny_sizes, tmp_path, progress=False)
    assert len(list(folder.glob("*.tif"))) == 4
    assert tifffile.imread(folder / "t0001_c1.tif").shape == (2, 64, 64)
    data = open_ratiometric(ensure_dataset("ratiometric", tiny_sizes, tmp_path, progress=False))
    assert data.image.shape == (2, 3, 1, 96, 96) and data.labels.values.max() == 3


def test_damaged_dataset_is_kept_unless_asked(tmp_path, tiny_sizes):
    folder = ensure_dataset("timelapse", tiny_sizes, tmp_path, progress=False)
    (folder / "t0001_c1.tif").unlink()
    assert not is_dataset_complete("timelapse", folder, dataset_parameters("timelapse", tiny_sizes))
    with pytest.raises(FileExistsError, match=r"timelapse.*not a complete.*overwrite"):
        ensure_dataset("timelapse", tiny_sizes, tmp_path, progress=False)
    assert not (folder / "t0001_c1.tif").exists()
    ensure_dataset("timelapse", tiny_sizes, tmp_path, progress=False, overwrite=True)
    assert (folder / "t0001_c1.tif").exists()


def test_other_seeds_and_presets_live_beside(tmp_path, tiny_sizes):
    store = ensure_dataset("nuclei", tiny_sizes, tmp_path, progress=False)
    first = open_nuclei_zarr(store)[0].compute()
    other = ensure_dataset("nuclei", tiny_sizes, tmp_path, seed=1, progress=False)
    assert other != store and other.parent == store.parent
    assert np.array_equal(open_nuclei_zarr(store)[0].compute(), first)
    assert not np.array_equal(open_nuclei_zarr(other)[0].compute(), first)


def test_default_parameters_follow_the_course():
    assert dataset_parameters("nuclei", "workshop")["shape"] == (2000, 5000)
    assert dataset_parameters("nuclei", "workshop")["chunks"] == (100, 100)
    assert size_preset("workshop")["mandelbrot_frames"] == 200_000


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda root: ensure_dataset("galaxies", root=root), "dataset name"),
        (lambda root: ensure_dataset("nuclei", size="huge", root=root), "huge"),
        (lambda root: ensure_dataset("nuclei", size="small", root=root, seed=-1), "seed"),
    ],
)
def test_bad_arguments_raise(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path)
    assert list(tmp_path.iterdir()) == []
