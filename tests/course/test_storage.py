"""Byte ranges of a contiguous file and chunk files of a zarr store, against numpy and zarr."""

import itertools

import numpy as np
import pytest
import zarr

from nima_lessons.course.storage import RecordingStore, contiguous_byte_ranges


def read_ranges(path, ranges) -> bytes:
    with open(path, "rb") as handle:
        parts = []
        for start, stop in ranges:
            handle.seek(start)
            parts.append(handle.read(stop - start))
    return b"".join(parts)


@pytest.fixture(scope="module")
def npy_file(tmp_path_factory):
    array = np.random.default_rng(3).integers(0, 60_000, (5, 37, 41), dtype=np.uint16)
    path = tmp_path_factory.mktemp("raw") / "array.npy"
    np.save(path, array)  # numpy writes the file; we only read it back by byte positions
    return path, array


SELECTIONS = [
    (slice(1, 3), slice(4, 20), slice(7, 30)),
    (2, slice(0, 37), slice(5, 6)),
    (slice(None), slice(10, 11)),  # whole trailing axis: rows merge
    (slice(0, 5),),  # the whole array
    (slice(4, 5), slice(-3, None), slice(-41, -1)),
]


@pytest.mark.parametrize("selection", SELECTIONS)
def test_byte_ranges_give_back_numpys_selection(npy_file, selection):
    path, array = npy_file
    offset = np.load(path, mmap_mode="r").offset
    ranges = contiguous_byte_ranges(array.shape, array.dtype, selection, offset=offset)
    expected = np.ascontiguousarray(array[selection])
    assert read_ranges(path, ranges) == expected.tobytes()
    assert all(a < b for a, b in ranges)
    assert all(stop < start for (_, stop), (start, _) in itertools.pairwise(ranges))  # merged


def test_whole_rows_and_whole_array_are_single_runs():
    assert contiguous_byte_ranges((4, 6), "float64", slice(1, 3)) == [(48, 144)]
    assert contiguous_byte_ranges((2, 3, 4), "uint8", ()) == [(0, 24)]
    assert contiguous_byte_ranges((4, 6), "uint8", (slice(2, 2),)) == []


def test_a_tile_needs_one_run_per_row():
    ranges = contiguous_byte_ranges((1000, 1000), "uint16", (slice(100, 300), slice(0, 50)))
    assert len(ranges) == 200 and {b - a for a, b in ranges} == {100}
    assert ranges[1][0] - ranges[0][0] == 2000  # one image row further on


@pytest.mark.parametrize(
    ("selection", "error"),
    [
        ((slice(0, 4, 2),), ValueError),
        ((0, 0, 0), ValueError),
        ((7,), ValueError),
        (("a",), TypeError),
    ],
)
def test_bad_selections_are_named(selection, error):
    with pytest.raises(error, match=r"step|entries|out of bounds|integer or a slice"):
        contiguous_byte_ranges((4, 6), "uint8", selection)


def chunks_overlapping(selection, shape, chunks):
    """Brute force: every chunk grid cell holding at least one selected pixel."""
    mask = np.zeros(shape, bool)
    mask[selection] = True
    keys = set()
    for index in zip(*np.nonzero(mask), strict=True):
        keys.add("c/" + "/".join(str(i // c) for i, c in zip(index, chunks, strict=True)))
    return sorted(keys)


@pytest.mark.parametrize(
    "selection",
    [(slice(0, 50), slice(0, 50)), (slice(40, 60), slice(45, 130)), (slice(None), 99)],
)
def test_recording_store_sees_the_chunks_a_read_needs(tmp_path, selection):
    shape, chunks = (120, 150), (50, 50)
    image = np.arange(np.prod(shape), dtype=np.uint32).reshape(shape)
    array = zarr.create_array(tmp_path / "a.zarr", shape=shape, chunks=chunks, dtype=image.dtype)
    array[:] = image
    store = RecordingStore(zarr.storage.LocalStore(tmp_path / "a.zarr", read_only=True))
    reopened = zarr.open_array(store, mode="r")
    store.clear_reads()
    np.testing.assert_array_equal(reopened[selection], image[selection])
    assert store.chunk_keys() == chunks_overlapping(selection, shape, chunks)
    on_disk = sum((tmp_path / "a.zarr" / key).stat().st_size for key in store.chunk_keys())
    assert store.chunk_bytes() == on_disk
