"""The whole pipeline: ground truth of the synthetic data set, laziness, streaming, saving."""

import collections

import dask
import numpy as np
import pytest
import tifffile

from nima_lessons import io
from nima_lessons.course.synthetic import ratiometric_timelapse
from nima_lessons.pipeline import PRESETS, PipelineConfig, measure, run_pipeline
from nima_lessons.store import open_result, save

N_T, SHAPE, N_CELLS = 3, (144, 144), 9


@pytest.fixture(scope="module")
def data():
    return ratiometric_timelapse(n_t=N_T, shape=SHAPE, n_cells=N_CELLS, seed=3)


@pytest.fixture(scope="module")
def lazy_image(data):
    return data.image.chunk({"T": 1, "C": 1, "Z": 1})


@pytest.fixture(scope="module")
def computed(data, lazy_image):
    return run_pipeline(lazy_image, data.dark, data.flat).compute()


def refuse(*args, **kwargs):
    raise AssertionError("something was computed while the graph was built")


def match_cells(truth_labels, labels):
    """Map each true cell to the segmented label covering most of it (or 0)."""
    matches = {}
    for cell in np.unique(truth_labels[truth_labels > 0]):
        inside = truth_labels == cell
        found, counts = np.unique(labels[inside], return_counts=True)
        best = found[np.argmax(counts)]
        union = (inside | (labels == best)).sum()
        overlap = (inside & (labels == best)).sum()
        matches[int(cell)] = int(best) if best and overlap > 0.8 * union else 0
    return matches


def test_every_cell_is_found_and_ratios_are_within_two_percent(data, computed):
    table = measure(computed.image, computed.labels)
    truth = data.truth.set_index(["T", "label"])["ratio"]
    measured = table.set_index(["T", "label"])["ratio"]
    for t in range(N_T):
        matches = match_cells(data.labels.values[0], computed.labels.values[t, 0])
        assert all(matches.values()), f"cells not found at T={t}: {matches}"
        assert len(set(matches.values())) == N_CELLS  # one segmented cell per true cell
        for cell, label in matches.items():
            assert measured[(t, label)] == pytest.approx(truth[(t, cell)], rel=0.02)


def test_lazy_result_equals_the_eager_numpy_result(data, computed):
    eager = run_pipeline(data.image, data.dark, data.flat)
    assert all(isinstance(var.data, np.ndarray) for var in eager.data_vars.values())
    for name in ("image", "labels", "ratio", "background"):
        assert eager[name].dims == computed[name].dims
        for t in range(N_T):
            np.testing.assert_array_equal(eager[name].values[t], computed[name].values[t], name)


def test_result_layout(computed, lazy_image, data):
    result = run_pipeline(lazy_image, data.dark, data.flat)
    assert result["image"].dims == ("T", "C", "Z", "Y", "X")
    assert result["labels"].dims == ("T", "Z", "Y", "X") and result["labels"].dtype == np.int32
    assert result["ratio"].dims == ("T", "Z", "Y", "X")
    assert result["background"].dims == ("T", "C", "Z")
    for var in result.data_vars.values():
        assert var.chunks[0] == (1,) * N_T  # one time point per chunk: streams
    ratio = computed["ratio"].values
    assert np.isnan(ratio[computed["labels"].values == 0]).all()


def test_nothing_is_computed_while_building(data, lazy_image):
    with dask.config.set(scheduler=refuse):
        result = run_pipeline(lazy_image, data.dark, data.flat, PipelineConfig(watershed=True))
    assert all(var.chunks for var in result.data_vars.values())


def test_reading_and_streaming_one_time_point(data, tmp_path, monkeypatch):
    for t in range(N_T):
        for c in range(3):
            tifffile.imwrite(tmp_path / f"t{t:04d}_c{c}.tif", data.image.values[t, c])
    reads = collections.Counter()
    original = io._read_tiff_page

    def counting(source, key):
        path, _ = key  # a folder source reads (file, plane) pairs
        reads[str(path)] += 1
        return original(source, key)

    monkeypatch.setattr(io, "_read_tiff_page", counting)
    im = io.read_image(tmp_path, channels={"0": "G", "1": "R", "2": "C"})
    result = run_pipeline(im, data.dark, data.flat)
    assert not reads
    one = result.isel(T=1).compute()
    # Only the three channel files of T=1, each once, for every output variable.
    assert sorted(reads) == sorted(str(tmp_path / f"t0001_c{c}.tif") for c in range(3))
    assert set(reads.values()) == {1}
    assert int(one["labels"].max()) == N_CELLS


def test_tiled_planes_give_the_whole_plane_result(data, computed):
    tiled = data.image.chunk({"T": 1, "C": 1, "Z": 1, "Y": 48, "X": 72})
    result = run_pipeline(tiled, data.dark, data.flat)
    assert result["labels"].chunks[-2:] == ((48, 48, 48), (72, 72))
    for name in ("image", "labels", "ratio", "background"):
        np.testing.assert_array_equal(result[name].values, computed[name].values, name)


def test_save_writes_the_computed_result(data, lazy_image, computed, tmp_path):
    result = run_pipeline(lazy_image, data.dark, data.flat)
    path = save(result, tmp_path / "result.zarr")
    stored = open_result(path)
    for name in ("image", "labels", "ratio", "background"):
        np.testing.assert_array_equal(stored[name].values, computed[name].values)
    assert stored["C"].values.tolist() == ["G", "R", "C"]


def test_options_without_shading_and_median(data):
    config = PipelineConfig(median_radius=None, background_method="percentile", numerator="R")
    result = run_pipeline(data.image.isel(T=[0]), config=config)
    expected_level = np.percentile(data.image.values[0, 1, 0], 10)
    assert result["background"].sel(C="R").item() == pytest.approx(expected_level)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"median_footprint": "ball"}, "median_footprint"),
        ({"background_method": "mode"}, "background_method"),
        ({"segment_method": "max"}, "segment_method"),
        ({"median_radius": -1}, "median_radius"),
        ({"min_size": -3}, "min_size"),
        ({"background_percentile": 120}, "background_percentile"),
        ({"background_method": "li_median"}, "background_method"),
        ({"background_block_size": 100}, "background_block_size"),
        ({"background_radius": 0}, "background_radius"),
        ({"background_range_percent": -1}, "background_range_percent"),
        ({"mask_cleanup": "erode"}, "mask_cleanup"),
        ({"ratio_median_sizes": (7, 4)}, "ratio_median_sizes"),
        ({"labels_through_time": True, "watershed": True}, "watershed"),
    ],
)
def test_bad_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PipelineConfig(**kwargs)


def test_bad_inputs(data):
    with pytest.raises(ValueError, match=r"\['Q'\]"):
        run_pipeline(data.image, config=PipelineConfig(numerator="Q"))
    with pytest.raises(ValueError, match="dims"):
        run_pipeline(data.image.isel(Z=0))
    with pytest.raises(TypeError, match="config"):
        run_pipeline(data.image, config={"median_radius": 1})
    with pytest.raises(TypeError, match="DataArray"):
        run_pipeline(data.image.values)


def test_nima_preset_is_nima_command_line_defaults():
    nima = PRESETS["nima"]
    assert nima.median_radius is None and nima.background_method == "li_adaptive"
    assert (nima.segment_method, nima.min_size, nima.mask_cleanup) == ("yen", 640, "closing")
    assert nima.labels_through_time and nima.ratio_median_sizes == (7, 3)
    assert nima.background_options() == {"block_size": None}
    assert PipelineConfig(ratio_median_sizes=[5]).ratio_median_sizes == (5,)


def test_cells_keep_their_label_through_time(data, lazy_image):
    config = PipelineConfig(labels_through_time=True)
    with dask.config.set(scheduler=refuse):
        result = run_pipeline(lazy_image, data.dark, data.flat, config)
    computed = result.compute()
    table = measure(computed.image, computed.labels, ratio_image=computed.ratio)
    truth = data.truth.set_index(["T", "label"])["ratio"]
    measured = table.set_index(["T", "label"])
    # the true cells do not move: each is found under one label at every time point
    labels_of_cells = [match_cells(data.labels.values[0], computed.labels.values[t, 0])
                       for t in range(N_T)]  # fmt: skip
    assert all(found == labels_of_cells[0] for found in labels_of_cells)
    assert sorted(labels_of_cells[0].values()) == list(range(1, N_CELLS + 1))
    for t in range(N_T):
        for cell, label in labels_of_cells[0].items():
            assert measured.loc[(t, label), "ratio"] == pytest.approx(truth[(t, cell)], rel=0.02)
            assert measured.loc[(t, label), "ratio_median"] == pytest.approx(
                truth[(t, cell)], rel=0.03
            )


def test_nima_options_flow_into_the_steps(data):
    image = data.image.isel(T=[0, 1])
    config = PipelineConfig(
        median_radius=None, background_method="li_adaptive", background_block_size=31,
        mask_cleanup="closing", ratio_median_sizes=(3,), min_size=50,
    )  # fmt: skip
    result = run_pipeline(image, config=config).compute()
    from nima_lessons.pipeline import background, ratio, segment

    subtracted, levels = background(image, "li_adaptive", block_size=31)
    np.testing.assert_array_equal(result.background.values, levels.values)
    labels = segment(subtracted, "li", min_size=50, cleanup="closing")
    np.testing.assert_array_equal(result.labels.values, labels.values)
    expected = ratio(subtracted, "G", "C", mask=labels, median_sizes=(3,))
    np.testing.assert_array_equal(result.ratio.values, expected.values)
