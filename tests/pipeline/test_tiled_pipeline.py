"""The pipeline on planes split into tiles gives the whole-plane pipeline's results.

The reference is the pipeline on numpy-backed whole planes, each step done by
numpy, scipy and scikit-image on the whole plane.
"""

import dask
import numpy as np
import pandas as pd
import pytest
from dask.callbacks import Callback

from nima_lessons.course.synthetic import ratiometric_timelapse
from nima_lessons.pipeline import PipelineConfig, background, measure, run_pipeline
from nima_lessons.pipeline._background import background_level
from nima_lessons.pipeline._tiled_segment import check_tiled_options

SHAPE = (200, 250)

CHUNKINGS = {
    "even": {"Y": 64, "X": 100},
    "uneven, thin": {"Y": (1, 99, 100), "X": (120, 129, 1)},
    "X only": {"Y": -1, "X": (30, 220)},
    "smaller than one tile": {"Y": 512, "X": 512},
}


@pytest.fixture(scope="module")
def data():
    return ratiometric_timelapse(n_t=2, shape=SHAPE, n_cells=20, seed=5)


@pytest.fixture(scope="module")
def reference(data):
    """Whole-plane results, keyed by the config's methods."""
    cache = {}

    def run(config):
        key = (config.background_method, config.segment_method)
        if key not in cache:
            result = run_pipeline(data.image, data.dark, data.flat, config).compute()
            cache[key] = (result, measure(result.image, result.labels))
        return cache[key]

    return run


def tiled(data, chunks):
    return data.image.chunk({"T": 1, "C": 1, "Z": 1, **chunks})


def assert_same_results(result, expected, expected_table):
    # Labels: same partition and numbering; image and levels: the same numbers.
    np.testing.assert_array_equal(result["labels"].values, expected["labels"].values)
    np.testing.assert_array_equal(result["image"].values, expected["image"].values)
    np.testing.assert_allclose(
        result["background"].values, expected["background"].values, rtol=1e-12
    )
    np.testing.assert_allclose(
        result["ratio"].values, expected["ratio"].values, rtol=1e-12, equal_nan=True
    )
    table = measure(result.image, result.labels)
    pd.testing.assert_frame_equal(table, expected_table, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
def test_every_chunking_gives_the_whole_plane_results(data, reference, chunks):
    config = PipelineConfig()
    result = run_pipeline(tiled(data, chunks), data.dark, data.flat, config)
    expected, expected_table = reference(config)
    assert expected["labels"].values.max() >= 15
    assert result["labels"].chunks[-2:] == tiled(data, chunks).chunks[-2:]
    assert_same_results(result.compute(), expected, expected_table)


@pytest.mark.parametrize(
    ("background_method", "segment_method"),
    [
        ("percentile", "li"),
        pytest.param("sigma", "li", marks=pytest.mark.slow),  # 20 clipping rounds
        ("li", "otsu"),
        ("li", "yen"),
        pytest.param("inverse_yen", "li", marks=pytest.mark.slow),
        pytest.param("arcsinh", "li", marks=pytest.mark.slow),
        pytest.param("entropy", "li", marks=pytest.mark.slow),
    ],
)
def test_every_method_offered_on_tiles_gives_the_whole_plane_results(
    data, reference, background_method, segment_method
):
    config = PipelineConfig(background_method=background_method, segment_method=segment_method)
    result = run_pipeline(tiled(data, CHUNKINGS["even"]), data.dark, data.flat, config)
    expected, expected_table = reference(config)
    assert_same_results(result.compute(), expected, expected_table)


class LargestResult(Callback):
    """Records the largest task result (in bytes) while active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.largest = max(self.largest, getattr(result, "nbytes", 0))


def test_building_computes_only_summaries_of_tiles(data):
    image = tiled(data, {"Y": 50, "X": 50}).isel(T=[0])
    plane_bytes = SHAPE[0] * SHAPE[1] * 8
    with LargestResult() as watch:
        result = run_pipeline(image, data.dark, data.flat)
    # Levels and thresholds were computed, from tiles (grown by the median's and
    # the small-object removal's overlaps), never from a whole plane.
    assert 0 < watch.largest < plane_bytes / 4
    assert all(result[name].chunks for name in ("image", "labels", "ratio"))
    assert result["background"].chunks is None  # computed from summaries when building
    # Computing works tile by tile too (reduced here, so that no output is a plane).
    with LargestResult() as watch:
        dask.compute(result["labels"].max(), result["ratio"].sum(), result["image"].max())
    assert watch.largest < plane_bytes / 4


def refuse(*args, **kwargs):
    raise AssertionError("something was computed")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (PipelineConfig(watershed=True), "watershed splitting"),
    ],
)
def test_options_without_a_tiled_version_are_refused_before_any_work(data, config, message):
    with dask.config.set(scheduler=refuse), pytest.raises(ValueError, match=message) as error:
        run_pipeline(tiled(data, CHUNKINGS["even"]), data.dark, data.flat, config)
    assert "whole_planes" in str(error.value) and "Y: 4 chunks" in str(error.value)


@pytest.mark.slow
def test_a_large_plane_in_uneven_tiles_gives_the_whole_plane_results():
    large = ratiometric_timelapse(n_t=1, shape=(3000, 4000), n_cells=2000, seed=11)
    image = large.image.chunk({"T": 1, "C": 1, "Z": 1, "Y": (1000, 1100, 900), "X": 1024})
    result = run_pipeline(image, large.dark, large.flat).compute()
    expected = run_pipeline(large.image, large.dark, large.flat).compute()
    assert_same_results(result, expected, measure(expected.image, expected.labels))


@pytest.mark.parametrize(
    ("background_method", "message"),
    [
        ("li_adaptive", "about a third of the plane away"),
        ("adaptive", "about a third of the plane away"),
        ("a method of tomorrow", "no tiled version yet"),
    ],
)
def test_background_methods_without_a_tiled_version_are_named(data, background_method, message):
    image = tiled(data, CHUNKINGS["even"])
    with pytest.raises(ValueError, match=message) as error:
        check_tiled_options(image, background_method, "li", False)
    assert f"background method {background_method!r} cannot run" in str(error.value)
    check_tiled_options(data.image, background_method, "li", False)  # whole planes: fine


NIMA_METHODS = ["inverse_yen", "li_li", "arcsinh", "entropy"]
#: Options other than the defaults: an odd percentile filter, a small entropy disk.
NIMA_OPTIONS = [
    ("arcsinh", {"radius": 5, "filter_percentile": 50.0, "range_percent": 20.0}),
    ("entropy", {"radius": 3, "range_percent": 30.0}),
    ("arcsinh", {"radius": 4, "range_percent": 0.0}),  # nothing below the minimum: NaN
]


@pytest.fixture(scope="module")
def planes(data):
    """Cells on background: the raw uint16 channels, a float copy, with zeros and a flat plane."""
    raw = data.image.isel(T=0, Z=0).drop_vars(["T", "Z"], errors="ignore")
    raw = raw.copy(data=raw.values)
    raw.values[0, :5, :7] = 0  # pixels without an inverse
    raw.values[1, -4:, -3:] = 5000  # beyond 8 bits in one corner only: scaled to 8 bits
    raw.values[2] = 321  # a constant plane is all background
    return {"uint16": raw, "float64": raw * 1.37, "float32": (raw * 1.37).astype(np.float32)}


NIMA_CHUNKINGS = {
    name: CHUNKINGS[name] for name in ("even", "uneven, thin", "smaller than one tile")
}


@pytest.mark.parametrize("chunks", list(NIMA_CHUNKINGS.values()), ids=list(NIMA_CHUNKINGS))
@pytest.mark.parametrize("dtype", ["uint16", "float64", "float32"])
@pytest.mark.parametrize("method", NIMA_METHODS)
def test_nima_background_methods_on_tiles_give_the_whole_plane_levels(
    planes, method, dtype, chunks
):
    if (method, dtype) == ("li_li", "float32"):
        pytest.skip("refused, see test_li_li_on_tiles_refuses_float32_planes")
    plane = planes[dtype]
    expected = [float(background_level(p, method)) for p in plane.values]  # scikit-image
    expected_image = np.clip(
        plane.values.astype(np.result_type(plane.dtype, np.float32))
        - np.array(expected, dtype=np.result_type(plane.dtype, np.float32))[:, None, None],
        0,
        None,
    )
    subtracted, levels = background(plane.chunk(chunks), method)
    np.testing.assert_array_equal(levels.values, expected)
    np.testing.assert_array_equal(subtracted.values, expected_image)
    assert levels.values[2] == plane.values[2, 0, 0]  # the constant plane


def test_nima_background_methods_on_tiles_refuse_planes_that_are_not_finite(planes):
    plane = planes["float64"].copy()
    plane.values[1, 3, 4] = np.nan
    with pytest.raises(ValueError, match=r"plane \(1,\) has 1 NaN or infinite pixels"):
        background(plane.chunk(CHUNKINGS["even"]), NIMA_METHODS[0])


def test_li_li_on_tiles_refuses_float32_planes(planes):
    # Its Li means are float32 sums in the whole plane's pixel order.
    with dask.config.set(scheduler=refuse), pytest.raises(ValueError, match="float32 plane"):
        background(planes["float32"].chunk(CHUNKINGS["even"]), "li_li")


@pytest.mark.parametrize("chunks", [CHUNKINGS["uneven, thin"], {"Y": 37, "X": 41}], ids=str)
@pytest.mark.parametrize(("method", "options"), NIMA_OPTIONS)
def test_nima_background_options_on_tiles_give_the_whole_plane_levels(
    planes, method, options, chunks
):
    for plane in (planes["uint16"], planes["float32"]):
        expected = [float(background_level(p, method, **options)) for p in plane.values]
        _, levels = background(plane.chunk(chunks), method, **options)
        np.testing.assert_array_equal(levels.values, expected)


@pytest.mark.parametrize("method", NIMA_METHODS)
def test_nima_background_methods_on_tiles_compute_only_tiles(planes, method):
    plane = planes["uint16"].isel(C=[0])
    with LargestResult() as watch:
        _, levels = background(plane.chunk({"Y": 50, "X": 50}), method)
    # Filters, masks and summaries of tiles (grown by the filters' reach), never a plane.
    assert 0 < watch.largest < SHAPE[0] * SHAPE[1] * 8 / 4
    assert levels.values[0] == float(background_level(plane.values[0], method))
