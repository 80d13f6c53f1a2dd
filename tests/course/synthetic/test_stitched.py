"""The stitched plane: written tile by tile, the same whatever the tiles, readable lazily."""

import numpy as np
import pytest
import zarr

from nima_lessons.course.synthetic.ratiometric import camera_frames
from nima_lessons.course.synthetic.stitched import (
    STITCHED_CHANNELS,
    ensure_stitched,
    open_stitched,
    render_tile,
    stitched_cells,
    write_stitched,
)

SHAPE, CHUNKS, FIELD = (200, 260), (64, 100), 96


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_stitched(
        tmp_path_factory.mktemp("stitched") / "plane.zarr", SHAPE, CHUNKS, FIELD, seed=2,
        progress=False,
    )  # fmt: skip


def test_cells_drawn_in_tiles_are_the_cells_of_the_whole_plane():
    cells = stitched_cells(SHAPE, fill=0.8, seed=1)
    whole = render_tile(cells, slice(0, SHAPE[0]), slice(0, SHAPE[1]))
    pieces = np.block(
        [
            [render_tile(cells, slice(y, min(y + 37, SHAPE[0])), slice(x, min(x + 53, SHAPE[1])))
             for x in range(0, SHAPE[1], 53)]
            for y in range(0, SHAPE[0], 37)
        ]
    )  # fmt: skip
    np.testing.assert_array_equal(pieces, whole)
    present = np.unique(whole[whole > 0])
    assert present.size == cells["present"].sum() > 10
    # One cell per territory, never crossing it.
    size = cells["territory_px"]
    for label in present[:10]:
        rows, cols = np.nonzero(whole == label)
        assert np.unique(rows // size).size == 1 and np.unique(cols // size).size == 1


def test_store_layout_and_lazy_opening(store):
    plane = open_stitched(store)
    assert plane.image.dims == ("T", "C", "Z", "Y", "X")
    assert plane.image.shape == (1, 2, 1, *SHAPE) and plane.image.dtype == np.uint16
    assert plane.image.chunks[-2:] == ((64, 64, 64, 8), (100, 100, 60))
    assert plane.image.C.values.tolist() == list(STITCHED_CHANNELS)
    root = zarr.open_group(str(store), mode="r")
    assert root.attrs["omero"]["channels"][1]["label"] == "C"
    # The frames are one camera field's, repeated over the mosaic.
    dark, flat = camera_frames((FIELD, FIELD), seed=2)
    chosen = [0, 2]  # G and C among the time-lapse's G, R, C
    np.testing.assert_array_equal(plane.dark.values[:, FIELD : 2 * FIELD, :FIELD], dark[chosen])
    np.testing.assert_array_equal(plane.flat.values[:, :FIELD, FIELD : 2 * FIELD], flat[chosen])
    np.testing.assert_array_equal(
        plane.flat.values[:, :FIELD, 2 * FIELD :], flat[chosen][:, :, :68]
    )
    assert plane.dark.chunks[-2:] == plane.image.chunks[-2:]


def test_cells_are_bright_and_the_background_is_the_camera_s(store):
    plane = open_stitched(store)
    cells = stitched_cells(SHAPE, seed=2)
    inside = render_tile(cells, slice(0, SHAPE[0]), slice(0, SHAPE[1])) > 0
    assert plane.n_cells == int(cells["present"].sum())
    image = plane.image.values[0, :, 0].astype(float)
    corrected = (image - plane.dark.values) / plane.flat.values
    for channel, background in zip(STITCHED_CHANNELS, (60.0, 80.0), strict=True):
        values = corrected[STITCHED_CHANNELS.index(channel)]
        assert np.median(values[~inside]) == pytest.approx(background, abs=3)
        assert np.median(values[inside]) > 10 * background


def test_writing_again_gives_the_same_plane_and_never_replaces_silently(store, tmp_path):
    again = write_stitched(tmp_path / "again.zarr", SHAPE, CHUNKS, FIELD, seed=2, progress=False)
    np.testing.assert_array_equal(
        open_stitched(again).image.values, open_stitched(store).image.values
    )
    with pytest.raises(FileExistsError):
        write_stitched(again, SHAPE, CHUNKS, FIELD, seed=2, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"shape": (0, 10)}, "shape"), ({"fill": 1.5}, "fill"), ({"chunks": (10,)}, "chunks")],
)
def test_bad_sizes_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_stitched(tmp_path / "bad.zarr", **{"shape": (64, 64), **kwargs}, progress=False)


def test_opening_something_else_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_stitched(tmp_path / "missing.zarr")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(FileNotFoundError, match="not a complete stitched plane"):
        open_stitched(tmp_path / "other.zarr")


def test_ensure_stitched_writes_once_and_checks_what_it_finds(tmp_path, monkeypatch):
    import nima_lessons.config as config

    monkeypatch.setitem(config.SIZES["small"], "stitched", {"shape": (96, 128), "chunks": (48, 64)})
    path = ensure_stitched("small", root=tmp_path, progress=False)
    assert path == tmp_path / "small" / "stitched.zarr"
    written = path.stat().st_mtime_ns
    assert ensure_stitched("small", root=tmp_path, progress=False) == path
    assert path.stat().st_mtime_ns == written  # reused, not written again
    monkeypatch.setitem(config.SIZES["small"], "stitched", {"shape": (96, 96), "chunks": (48, 48)})
    with pytest.raises(FileExistsError, match="another stitched plane"):
        ensure_stitched("small", root=tmp_path, progress=False)
