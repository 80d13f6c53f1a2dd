"""The tiled_pipeline benchmark case: its claims, and a tiny run in fresh processes."""

import pytest

from nima_lessons.course.bench import tiled_pipeline


def row(mode, size_px, seconds, peak_gb, **metrics):
    figures = {"n_cells": 10, "cell_area_px": 1000, "ratio_sum": 12.5, **metrics}
    return {
        "implementation": mode,
        "params": {"size_px": size_px, "tile_px": 1024},
        "seconds": {"median": seconds},
        "peak_rss_bytes": peak_gb * 1e9,
        "metrics": figures,
    }


def test_claims_hold_and_fail_on_their_figures():
    params = tiled_pipeline.PRESETS["full"]
    rows = [
        row("tiles", 8192, 50.0, 0.9),
        row("whole planes", 8192, 60.0, 7.0),
        row("tiles", 16384, 200.0, 1.2),
    ]
    claims = tiled_pipeline.tiled_pipeline_claims(rows, params)
    assert [claim["holds"] for claim in claims] == [True, True, True]
    slower_and_fat = [
        row("tiles", 8192, 70.0, 0.9),
        row("whole planes", 8192, 60.0, 7.0, n_cells=11),
        row("tiles", 16384, 200.0, 1.6),
    ]
    claims = tiled_pipeline.tiled_pipeline_claims(slower_and_fat, params)
    assert [claim["holds"] for claim in claims] == [False, False, False]


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="preset must be one of"):
        tiled_pipeline.run("huge")


@pytest.mark.slow
def test_tiny_run_agrees_between_tiles_and_whole_planes():
    result = tiled_pipeline.run("tiny", log=lambda line: None)
    modes = sorted(row["implementation"] for row in result["rows"])
    assert modes == ["tiles", "whole planes"]
    assert all(row["peak_rss_bytes"] > 0 for row in result["rows"])
    (agreement,) = result["claims"]
    assert agreement["holds"]
