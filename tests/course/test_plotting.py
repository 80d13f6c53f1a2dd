"""Lesson figures: what each plot draws is checked against the data it was given.

Figures are drawn with the Agg backend; the checks read back lines, images and limits
from the matplotlib artists rather than comparing pictures.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from nima_lessons.course.plotting import (
    bench_rows,
    draw_tile_grid,
    label_colours,
    overlap_cost_factor,
    plot_bench_bars,
    plot_bench_lines,
    plot_bench_panels,
    plot_error_vs_depth,
    plot_nima_table,
    plot_overlap_cost,
    plot_schedulers,
    plot_strategies,
    show_differences,
    show_images,
    show_labels,
    show_tiled_difference,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _line_positions(ax, vertical: bool) -> list[float]:
    """x of vertical lines (axvline) or y of horizontal ones (axhline)."""
    positions = []
    for line in ax.get_lines():
        xs, ys = (np.asarray(v, dtype=float) for v in line.get_data())
        if vertical and xs.size == 2 and xs[0] == xs[1]:
            positions.append(float(xs[0]))
        if not vertical and ys.size == 2 and ys[0] == ys[1]:
            positions.append(float(ys[0]))
    return sorted(positions)


def test_tile_grid_lines_lie_between_pixels_at_every_internal_border():
    _figure, ax = plt.subplots()
    ax.imshow(np.zeros((100, 70)))
    draw_tile_grid(ax, (30, 25), (100, 70))
    # borders after rows 30, 60, 90 and columns 25, 50; imshow pixel i spans i +- 0.5
    assert _line_positions(ax, vertical=False) == [29.5, 59.5, 89.5]
    assert _line_positions(ax, vertical=True) == [24.5, 49.5]


def test_tile_grid_on_a_crop_draws_only_borders_inside_it():
    _figure, ax = plt.subplots()
    ax.imshow(np.zeros((100, 50)))  # the crop [120:220, 80:130] of a 300 x 300 image
    draw_tile_grid(ax, 100, (300, 300), origin=(120, 80))
    assert _line_positions(ax, vertical=False) == [79.5]  # row 200
    assert _line_positions(ax, vertical=True) == [19.5]  # column 100


def test_tile_grid_rejects_a_non_2d_shape():
    _figure, ax = plt.subplots()
    with pytest.raises(ValueError, match="shape"):
        draw_tile_grid(ax, 10, (10, 10, 10))


def test_tiled_difference_shows_both_results_and_their_difference():
    rng = np.random.default_rng(0)
    whole = rng.random((40, 40))
    tiled = whole.copy()
    tiled[:, 20] += 0.5
    figure = show_tiled_difference(whole, tiled, chunks=20)
    images = [ax.get_images()[0] for ax in figure.axes if ax.get_images()]
    assert len(images) == 3
    np.testing.assert_array_equal(images[0].get_array(), whole)
    np.testing.assert_array_equal(images[1].get_array(), tiled)
    np.testing.assert_allclose(images[2].get_array(), tiled - whole)
    # the difference is on a symmetric scale, so that white means zero
    low, high = images[2].get_clim()
    assert low == -high == pytest.approx(-0.5)
    # one border at 20 in each direction, on the tiled and the difference panels
    assert _line_positions(figure.axes[1], vertical=True) == [19.5]


def test_tiled_difference_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        show_tiled_difference(np.zeros((4, 4)), np.zeros((4, 5)), 2)


def test_differences_share_one_colour_scale():
    small = np.full((10, 10), 0.1)
    large = np.full((10, 10), -2.0)
    figure = show_differences({"a": small, "b": large}, chunks=5)
    limits = {ax.get_images()[0].get_clim() for ax in figure.axes if ax.get_images()}
    assert limits == {(-2.0, 2.0)}


def test_differences_need_an_image():
    with pytest.raises(ValueError, match="at least one"):
        show_differences({}, 5)


def test_images_are_shown_each_with_the_grid():
    figure = show_images({"a": np.zeros((20, 40)), "b": np.ones((20, 40))}, chunks=10)
    shown = [ax for ax in figure.axes if ax.get_images()]
    assert [ax.get_title() for ax in shown] == ["a", "b"]
    assert _line_positions(shown[1], vertical=True) == [9.5, 19.5, 29.5]


def test_cost_factor_matches_the_course_figures():
    # a 32 x 32 tile with a 10 px margin reads 52 x 52 pixels, with 20 px 72 x 72
    assert overlap_cost_factor(32, 10) == pytest.approx(52 * 52 / (32 * 32))
    assert overlap_cost_factor(32, 20) == pytest.approx(72 * 72 / (32 * 32))
    assert overlap_cost_factor(32, 0) == 1.0
    assert overlap_cost_factor(10, 1, ndim=3) == pytest.approx(12**3 / 10**3)
    np.testing.assert_allclose(
        overlap_cost_factor(np.array([10, 20]), 5), [(20 / 10) ** 2, (30 / 20) ** 2]
    )


@pytest.mark.parametrize("tile, depth", [(0, 1), (-4, 1), (8, -1)])
def test_cost_factor_rejects_impossible_tiles(tile, depth):
    with pytest.raises(ValueError):
        overlap_cost_factor(tile, depth)


def test_overlap_cost_plot_draws_one_curve_per_margin():
    figure = plot_overlap_cost([16, 32, 64], [10, 20])
    curves = [line for line in figure.axes[0].get_lines() if len(line.get_xdata()) == 3]
    assert len(curves) == 2
    expected = [(56 / 16) ** 2, (72 / 32) ** 2, (104 / 64) ** 2]
    np.testing.assert_allclose(curves[1].get_ydata(), expected)


def _sweep() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chunk_size": [64] * 3,
            "depth": [10, 0, 20],
            "max_abs_error": [1.0, 5.0, 0.0],
            "rms_error": [0.1, 0.5, 0.0],
            "signed_sum": [-3.0, 0.0, 0.0],
        }
    )


def test_error_plot_sorts_by_depth_and_shows_the_absolute_sum():
    figure = plot_error_vs_depth(_sweep(), theory_depth_px=20)
    ax = figure.axes[0]
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) == 3]
    assert len(curves) == 3
    for curve in curves:
        assert list(curve.get_xdata()) == [0, 10, 20]
    assert list(curves[0].get_ydata()) == [5.0, 1.0, 0.0]
    assert list(curves[2].get_ydata()) == [0.0, 3.0, 0.0]
    assert _line_positions(ax, vertical=True) == [20.0]
    assert ax.get_yscale() == "symlog"


def test_error_plot_rejects_incomplete_or_mixed_tables():
    with pytest.raises(ValueError, match="columns"):
        plot_error_vs_depth(_sweep().drop(columns="rms_error"))
    mixed = _sweep()
    mixed.loc[0, "chunk_size"] = 32
    with pytest.raises(ValueError, match="several tile sizes"):
        plot_error_vs_depth(mixed)


def test_strategy_plot_draws_each_strategy_against_tile_size():
    table = pd.DataFrame(
        {
            "strategy": ["naive", "global", "naive", "global"],
            "chunk_size": [200, 200, 100, 100],
            "error": [117.0, 0.0, 300.0, 0.0],
        }
    )
    figure = plot_strategies(table)
    ax = figure.axes[0]
    lines = ax.get_lines()
    curves = {line.get_label(): line for line in lines if not line.get_label().startswith("_")}
    assert set(curves) == {"naive", "global"}
    assert list(curves["naive"].get_xdata()) == [100, 200]
    assert list(curves["naive"].get_ydata()) == [300.0, 117.0]
    with pytest.raises(ValueError, match="columns"):
        plot_strategies(table, y="error_vs_truth")


def test_label_colours_keep_the_background_black():
    colours = label_colours(5, seed=0)
    assert colours.N == 6
    assert tuple(colours(0)[:3]) == (0.0, 0.0, 0.0)
    assert all(max(colours(i)[:3]) > 0.5 for i in range(1, 6))
    assert label_colours(0).N == 1
    with pytest.raises(ValueError):
        label_colours(-1)


def test_labels_are_drawn_on_their_own_scale():
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[2:5, 2:5], labels[10:15, 12:18] = 1, 7
    figure = show_labels({"labels": labels}, chunks=10)
    image = figure.axes[0].get_images()[0]
    np.testing.assert_array_equal(image.get_array(), labels)
    assert image.get_clim() == (0, 7)
    assert _line_positions(figure.axes[0], vertical=True) == [9.5]


def _case(rows: list[dict], **extra) -> dict:
    return {"params": {}, "rows": rows, **extra}


def _row(operation, implementation, role, params, median=None, peak=None, work=None, **metrics):
    return {
        "operation": operation,
        "implementation": implementation,
        "role": role,
        "params": params,
        "seconds": None
        if median is None
        else {"median": median, "min": median, "max": median, "n": 1, "values": [median]},
        "peak_rss_bytes": peak,
        "baseline_rss_bytes": None,
        "work_rss_bytes": work,
        "metrics": metrics,
    }


def test_bench_rows_flatten_parameters_seconds_memory_and_metrics():
    case = _case(
        [
            _row("copy", "numpy", "reference", {"n_t": 2}, median=0.5, throughput_MBps=10.0),
            _row("save", "streaming", "ours", {"n_t": 4}, peak=3_000_000, work=1_500_000),
        ]
    )
    rows = bench_rows(case)
    assert list(rows["operation"]) == ["copy", "save"]
    assert list(rows["n_t"]) == [2, 4]
    assert rows.loc[0, "seconds"] == 0.5 and np.isnan(rows.loc[1, "seconds"])
    assert np.isnan(rows.loc[0, "peak_MB"]) and rows.loc[1, "peak_MB"] == 3.0
    assert rows.loc[1, "work_MB"] == 1.5
    assert rows.loc[0, "throughput_MBps"] == 10.0
    with pytest.raises(ValueError, match="rows"):
        bench_rows({"params": {}})


def test_nima_table_plot_scales_the_source_figure_to_the_stack():
    params = {"n_t": 2, "n_c": 3, "shape": [1024, 512]}
    case = _case(
        [
            _row("shading", "xarray", "anchor", params, median=0.02),
            _row("shading", "nima_lessons", "ours", params, median=0.01),
            _row("median", "xarray + dask-image", "anchor", params, median=0.05),
            _row("median", "nima_lessons", "ours", params, median=0.03),
        ],
        source={"shading seconds per time point": 0.06, "median seconds per time point": 0.13},
    )
    case["params"] = params
    figure = plot_nima_table(case)
    shading, median = figure.axes
    assert [bar.get_height() for bar in shading.patches] == [0.02, 0.01]
    assert [bar.get_height() for bar in median.patches] == [0.05, 0.03]
    # 3 x 1024 x 512 pixels per time point is 1/8 of the source's 3 x 2048 x 2048
    assert _line_positions(shading, vertical=False) == [pytest.approx(0.06 / 8)]
    assert _line_positions(median, vertical=False) == [pytest.approx(0.13 / 8)]


def _streaming_case() -> dict:
    return _case(
        [
            _row("run", "load-all", "anchor", {"n_t": 4}, median=2.0, work=40_000_000),
            _row("run", "streaming", "ours", {"n_t": 4}, median=1.5, work=10_000_000),
            _row("run", "load-all", "anchor", {"n_t": 2}, median=1.0, work=20_000_000),
            _row("run", "streaming", "ours", {"n_t": 2}, median=1.0, work=10_000_000),
        ]
    )


def test_bench_lines_draw_one_sorted_line_per_group():
    figure = plot_bench_lines(_streaming_case(), x="n_t", y="work_MB")
    curves = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(curves["load-all"].get_xdata()) == [2, 4]
    assert list(curves["load-all"].get_ydata()) == [20.0, 40.0]
    assert list(curves["streaming"].get_ydata()) == [10.0, 10.0]
    assert figure.axes[0].get_ylim()[0] == 0
    with pytest.raises(ValueError, match="lack the columns"):
        plot_bench_lines(_streaming_case(), x="tile_px")


def test_bench_panels_draw_one_panel_per_measurement():
    figure = plot_bench_panels(_streaming_case(), x="n_t", ys=["seconds", "work_MB"])
    assert [ax.get_ylabel() for ax in figure.axes] == ["seconds", "work MB"]
    with pytest.raises(ValueError, match="at least one"):
        plot_bench_panels(_streaming_case(), x="n_t", ys=[])


def test_scheduler_plot_has_a_bar_per_scheduler_and_implementation():
    case = _case(
        [
            _row("label", "ours", "ours", {"scheduler": "synchronous"}, median=0.3),
            _row("label", "ours", "ours", {"scheduler": "threads"}, median=0.2),
            _row("label", "theirs", "anchor", {"scheduler": "synchronous"}, median=0.6),
            _row("label", "theirs", "anchor", {"scheduler": "threads"}, median=0.4),
            _row("start", "LocalCluster", "reference", {"scheduler": "distributed"}, median=2.0),
        ]
    )
    figure = plot_schedulers(case)
    (ax,) = figure.axes
    assert ax.get_title() == "label"
    heights = sorted(bar.get_height() for bar in ax.patches)
    assert heights == [0.2, 0.3, 0.4, 0.6]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["synchronous", "threads"]


def test_bench_bars_draw_one_bar_per_timed_row_with_min_max_whiskers():
    case = _case(
        [
            _row("op", "them", "anchor", {}, median=2.0),
            _row("op", "us", "ours", {}, median=0.5),
            _row("peak", "us", "ours", {}, peak=1_000_000),
        ]
    )
    case["rows"][0]["seconds"].update(min=1.0, max=4.0)
    figure = plot_bench_bars(case)
    (ax,) = figure.axes
    assert [bar.get_height() for bar in ax.patches] == [2.0, 0.5]
    (whiskers,) = ax.collections[0].get_segments()[:1]
    assert list(whiskers[:, 1]) == [1.0, 4.0]


def test_bench_lines_draw_rows_without_x_as_a_horizontal_reference():
    case = _case(
        [
            _row("label", "scipy", "reference", {"chunk_px": None}, median=0.3),
            _row("label", "ours", "ours", {"chunk_px": 32}, median=0.5),
            _row("label", "ours", "ours", {"chunk_px": 64}, median=0.4),
        ]
    )
    ax = plot_bench_lines(case, x="chunk_px").axes[0]
    assert _line_positions(ax, vertical=False) == [0.3]
    curve = {line.get_label(): line for line in ax.get_lines()}["ours"]
    assert list(curve.get_xdata()) == [32, 64] and list(curve.get_ydata()) == [0.5, 0.4]


def test_nima_table_plot_shows_each_kernel_over_its_plane_copy():
    case = _case(
        [
            _row(
                "median kernel", "memory copy (numpy)", "reference", {"dtype": "uint8"}, median=0.5
            ),
            _row(
                "median kernel",
                "nima_lessons",
                "ours",
                {"dtype": "uint8", "footprint": "disk"},
                median=2.0,
            ),
            _row(
                "median kernel",
                "memory copy (numpy)",
                "reference",
                {"dtype": "float64"},
                median=1.0,
            ),
            _row(
                "median kernel",
                "nima_lessons",
                "ours",
                {"dtype": "float64", "footprint": "disk"},
                median=3.0,
            ),
        ]
    )
    case["params"] = {"n_t": 2, "n_c": 3, "shape": [64, 64]}
    (kernels,) = plot_nima_table(case).axes
    assert [bar.get_height() for bar in kernels.patches] == [4.0, 3.0]
    assert [tick.get_text() for tick in kernels.get_xticklabels()] == ["uint8", "float64"]
