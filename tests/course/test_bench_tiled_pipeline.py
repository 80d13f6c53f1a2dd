"""The tiled_pipeline case: its claims, its large preset, a tiny run in fresh processes."""

import pytest

from nima_lessons import cli
from nima_lessons.course import bench
from nima_lessons.course.bench import case as protocol
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
    params = tiled_pipeline.CASE.presets["full"]
    rows = [
        row("tiles", 8192, 50.0, 0.9),
        row("whole planes", 8192, 60.0, 7.0),
        row("tiles", 16384, 200.0, 1.2),
    ]
    claims = tiled_pipeline.tiled_pipeline_claims(rows, params)
    assert [claim["holds"] for claim in claims] == [True, True, True]
    assert claims[2]["value"] == pytest.approx(60.0 / 50.0)
    slower_and_fat = [
        row("tiles", 8192, 70.0, 0.9),
        row("whole planes", 8192, 60.0, 7.0, n_cells=11),
        row("tiles", 16384, 200.0, 1.6),
    ]
    claims = tiled_pipeline.tiled_pipeline_claims(slower_and_fat, params)
    assert [claim["holds"] for claim in claims] == [False, False, False]


def test_large_preset_is_tiles_only_and_offered_by_this_case_alone(monkeypatch):
    large = tiled_pipeline.CASE.presets["large"]
    assert large["sizes_px"] == [50000] and large["whole_up_to_px"] == 0
    assert [n for n in bench.CASES if "large" in bench.load_case(n).presets] == ["tiled_pipeline"]
    with pytest.raises(ValueError, match="no 'large' preset; it is offered by: tiled_pipeline"):
        bench.run_benchmarks(cases=["nima_table"], preset="large", out=None, progress=False)
    # The command line reaches it: the documented command selects the case and the preset.
    calls = []
    done = {"cases": {}, "files": {"markdown": "results.md", "json": "results.json"}}
    monkeypatch.setattr(bench, "run_benchmarks", lambda **kwargs: calls.append(kwargs) or done)
    assert cli.main(["bench", "--case", "tiled_pipeline", "--preset", "large", "--out", "x"]) == 0
    assert calls[0]["cases"] == ["tiled_pipeline"] and calls[0]["preset"] == "large"


@pytest.mark.slow
def test_tiny_run_agrees_between_tiles_and_whole_planes():
    result = protocol.run_case(tiled_pipeline.CASE, "tiny", fresh_processes=True)
    assert result["error"] is None, result["error"]
    modes = sorted(row["implementation"] for row in result["rows"])
    assert modes == ["tiles", "whole planes"]
    assert all(row["peak_rss_bytes"] > 0 for row in result["rows"])
    (agreement,) = result["claims"]
    assert agreement["holds"]
