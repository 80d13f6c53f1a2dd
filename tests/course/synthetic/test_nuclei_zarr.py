"""Tests of the nuclei OME-Zarr store: content, metadata, laziness and safety."""

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from scipy import ndimage

from nima_lessons.course.synthetic import (
    NUCLEI_THRESHOLD,
    nuclei_dask,
    nuclei_image,
    open_nuclei_zarr,
    write_nuclei_zarr,
)
from nima_lessons.course.synthetic import nuclei_zarr as store_module

SHAPE, CHUNKS = (300, 1100), (100, 128)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("nz") / "nuclei.zarr"
    return write_nuclei_zarr(path, SHAPE, CHUNKS, seed=4, progress=False)


def test_store_holds_the_in_memory_image_and_truth(store):
    image, labels, count = open_nuclei_zarr(store)
    expected = nuclei_image(SHAPE, seed=4)
    assert image.chunksize == CHUNKS and labels.chunksize == CHUNKS
    assert image.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(image.compute(), expected.image)
    np.testing.assert_array_equal(labels.compute(), expected.labels)
    assert count == expected.count
    assert ndimage.label(image.compute() > NUCLEI_THRESHOLD)[1] == count


def test_recorded_threshold_and_count_segment_the_stored_image(store):
    # What a user of the store relies on, read with zarr and scipy alone: the recorded
    # threshold segments the stored image into the recorded number of nuclei, one per label.
    root = zarr.open_group(str(store), mode="r")
    record = root.attrs["nima_lessons"]
    image, labels = root["0"][:], root["labels/nuclei/0"][:]
    assert image.shape == tuple(record["shape"]) and root["0"].chunks == tuple(record["chunks"])
    found, n_found = ndimage.label(image > record["threshold"])
    assert n_found == record["true_count"] == len(np.unique(labels)) - 1
    # One segmented object per stored label, and the other way round.
    both = (found > 0) & (labels > 0)
    pairs = np.unique(np.stack([found[both], labels[both]]), axis=1)
    assert pairs.shape[1] == len(set(pairs[0])) == len(set(pairs[1])) == n_found


def test_metadata_is_ome_ngff(store):
    root = zarr.open_group(str(store), mode="r")
    record = root.attrs["nima_lessons"]
    assert record["seed"] == 4 and record["shape"] == list(SHAPE)
    assert record["layout"] == "random sequential placement"
    multiscales = root.attrs["multiscales"][0]
    assert multiscales["version"] == "0.4"
    assert [axis["name"] for axis in multiscales["axes"]] == ["y", "x"]
    assert multiscales["datasets"][0]["path"] == "0"
    assert list(root["labels"].attrs["labels"]) == ["nuclei"]
    assert "image-label" in root["labels/nuclei"].attrs


def test_ome_zarr_reader_finds_image_and_labels(store):
    nodes = list(Reader(parse_url(str(store)))())
    image_node = nodes[0]
    assert image_node.data[0].shape == SHAPE
    np.testing.assert_array_equal(np.asarray(image_node.data[0]), nuclei_image(SHAPE, seed=4).image)
    assert any("image-label" in node.metadata or node.specs for node in nodes[1:])


def test_pyramid_levels_are_nearest_subsamples(store):
    root = zarr.open_group(str(store), mode="r")
    full = nuclei_image(SHAPE, seed=4)
    paths = [d["path"] for d in root.attrs["multiscales"][0]["datasets"]]
    assert paths[0] == "0" and len(paths) >= 2
    for level, path in enumerate(paths):
        factor = 2**level
        np.testing.assert_array_equal(root[path][:], full.image[::factor, ::factor])
        np.testing.assert_array_equal(
            root[f"labels/nuclei/{path}"][:], full.labels[::factor, ::factor]
        )


def test_lazy_arrays_render_only_requested_chunks(monkeypatch):
    calls = []
    original = store_module.render_nuclei

    def counting(layout, rows, cols):
        calls.append((rows, cols))
        return original(layout, rows, cols)

    monkeypatch.setattr(store_module, "render_nuclei", counting)
    image, labels, count = nuclei_dask((1000, 1200), (100, 100), seed=6)
    assert calls == []
    tile = image[250:260, 1010:1020].compute(scheduler="synchronous")
    assert len(calls) == 1
    whole = nuclei_image((1000, 1200), seed=6)
    np.testing.assert_array_equal(tile, whole.image[250:260, 1010:1020])
    np.testing.assert_array_equal(labels[390:720].compute(), whole.labels[390:720])
    assert count == whole.count


def test_refuses_to_overwrite_and_leaves_no_partial_store(store, tmp_path):
    with pytest.raises(FileExistsError, match=r"nuclei\.zarr"):
        write_nuclei_zarr(store, SHAPE, CHUNKS, seed=4, progress=False)
    target = tmp_path / "broken.zarr"

    def failing(*args, **kwargs):
        raise RuntimeError("disk full")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module.da, "store", failing)
        with pytest.raises(RuntimeError, match="disk full"):
            write_nuclei_zarr(target, (200, 200), (100, 100), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces(tmp_path):
    path = tmp_path / "n.zarr"
    write_nuclei_zarr(path, (200, 200), (100, 100), seed=1, progress=False)
    write_nuclei_zarr(path, (200, 300), (100, 100), seed=2, overwrite=True, progress=False)
    image, _, count = open_nuclei_zarr(path)
    assert image.shape == (200, 300) and count == nuclei_image((200, 300), seed=2).count


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (0, 100)}, r"shape\[0\]"),
        ({"shape": (100, 100), "chunks": (200, 50)}, r"chunks\[0\]=200 is larger"),
        ({"shape": (100, 100), "chunks": (50, 0)}, r"chunks\[1\]"),
        ({"shape": (100, 100), "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_before_writing(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_nuclei_zarr(tmp_path / "x.zarr", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_open_missing_or_incomplete_store(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.zarr"):
        open_nuclei_zarr(tmp_path / "missing.zarr")
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w", zarr_format=2)
    with pytest.raises(ValueError, match="not a complete nuclei store"):
        open_nuclei_zarr(tmp_path / "empty.zarr")


def test_a_store_of_the_older_lattice_generator_is_not_reused(tmp_path):
    from nima_lessons.course.synthetic import is_dataset_complete as is_complete

    path = tmp_path / "nuclei.zarr"
    write_nuclei_zarr(path, (200, 300), (100, 100), seed=0, progress=False)
    parameters = {"shape": (200, 300), "chunks": (100, 100), "seed": 0}
    assert is_complete("nuclei", path, parameters)
    root = zarr.open_group(str(path), mode="r+")
    record = dict(root.attrs["nima_lessons"])
    del record["layout"]  # as the lattice generator wrote it
    root.attrs["nima_lessons"] = record
    assert not is_complete("nuclei", path, parameters)
