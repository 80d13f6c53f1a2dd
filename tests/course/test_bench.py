"""The benchmark harness and report, at tiny sizes: structure and arithmetic, never speed."""

import json
import statistics

import matplotlib.image
import numpy as np
import pytest

from nima_lessons import cli
from nima_lessons.course import bench
from nima_lessons.course.bench import harness, report


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One run of every case at the quick preset (``nima-lessons bench --quick``), as CI smoke-tests it."""
    out = tmp_path_factory.mktemp("bench") / "results"
    results = bench.run_benchmarks(quick=True, out=out, progress=False)
    return results, out


def _rows(case, operation, implementation, params):
    return [
        row
        for row in case["rows"]
        if row["operation"] == operation
        and row["implementation"] == implementation
        and row["params"] == params
    ]


def test_summarize_matches_statistics():
    values = [0.3, 0.1, 0.7, 0.2]
    summary = harness.summarize(values)
    assert summary["median"] == statistics.median(values)
    assert (summary["min"], summary["max"], summary["n"]) == (0.1, 0.7, 4)
    assert summary["values"] == values


def test_summarize_rejects_nothing_measured():
    with pytest.raises(ValueError, match="at least one"):
        harness.summarize([])


@pytest.mark.parametrize("repeats", [0, -1, 1.5, True, "3"])
def test_bad_repeats_are_rejected(repeats):
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        harness.time_repeats(lambda: None, repeats)


def test_comparison_is_anchor_over_ours():
    anchor = harness.measurement(
        "op", "them", "anchor", {"n": 1}, harness.summarize([3.0, 9.0, 6.0])
    )
    ours = harness.measurement(
        "op",
        "us",
        "ours",
        {"n": 1},
        harness.summarize([2.0, 1.0, 4.0]),
        memory={"peak_rss_bytes": 50},
    )
    anchor["peak_rss_bytes"] = 200
    assert harness.comparison(anchor, ours)["ratio"] == pytest.approx(6.0 / 2.0)
    assert harness.comparison(anchor, ours, "peak_rss_bytes")["ratio"] == pytest.approx(4.0)


def test_measurement_rejects_unknown_role():
    with pytest.raises(ValueError, match="role must be one of"):
        harness.measurement("op", "them", "baseline", {}, None)


def test_subprocess_peak_memory_sees_an_allocation():
    # 200 MB filled in a fresh process must show in its peak above baseline.
    n_bytes = 200_000_000
    result = harness.run_in_subprocess(
        "nima_lessons.course.bench.harness:allocation_job", {"n_bytes": n_bytes}
    )
    assert 0.9 * n_bytes <= result["work_rss_bytes"] <= 1.5 * n_bytes
    assert result["peak_rss_bytes"] >= result["baseline_rss_bytes"] + result["work_rss_bytes"] - 1


def test_subprocess_failure_names_the_job():
    with pytest.raises(RuntimeError, match="allocation_job failed"):
        harness.run_in_subprocess("nima_lessons.course.bench.harness:allocation_job", {"n_bytes": -5})
    with pytest.raises(ValueError, match="module:function"):
        harness.run_in_subprocess("nima_lessons.course.bench.harness.allocation_job", {})


def test_machine_info_describes_the_machine():
    info = harness.machine_info(copy_bytes=4_000_000, copy_repeats=2)
    assert info["cores_usable"] >= 1
    assert info["memory_total_bytes"] > 0
    assert info["packages"]["numpy"] == np.__version__
    assert info["copy_bandwidth"]["MBps"]["median"] > 0


def test_unknown_case_names_are_rejected():
    with pytest.raises(ValueError, match=r"unknown benchmark case 'nope'.*nima_table"):
        bench.run_benchmarks(cases=["nima_table", "nope"], preset="tiny", out=None, progress=False)
    with pytest.raises(ValueError, match="preset must be one of"):
        bench.run_benchmarks(preset="huge", out=None, progress=False)


def test_cli_rejects_unknown_case(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["bench", "--case", "nope"])
    assert stop.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_cases_run_in_canonical_order():
    assert bench.validate_cases(["schedulers", "nima_table", "schedulers"]) == [
        "nima_table",
        "schedulers",
    ]
    assert bench.validate_cases(None) == list(bench.CASES)


def test_results_json_has_the_documented_structure(quick_run):
    results, out = quick_run
    stored = json.loads((out / "results.json").read_text())
    assert stored["schema_version"] == bench.SCHEMA_VERSION
    assert stored["preset"] == "quick"
    assert set(stored["cases"]) == set(bench.CASES)
    machine = stored["machine"]
    for key in ("platform", "cores_usable", "memory_total_bytes", "packages", "copy_bandwidth"):
        assert key in machine
    for name, case in stored["cases"].items():
        assert case["error"] is None, f"{name}: {case['error']}"
        assert {
            "title",
            "claim",
            "params",
            "repeats",
            "rows",
            "comparisons",
            "claims",
            "notes",
        } <= set(case)
        for row in case["rows"]:
            assert row["role"] in harness.ROLES
            if row["seconds"] is not None:
                seconds = row["seconds"]
                assert seconds["min"] <= seconds["median"] <= seconds["max"]
                assert seconds["n"] == len(seconds["values"])


@pytest.mark.parametrize("name", bench.CASES)
def test_every_case_reports_anchor_and_ours(quick_run, name):
    case = quick_run[0]["cases"][name]
    roles = {row["role"] for row in case["rows"]}
    assert {"anchor", "ours"} <= roles
    assert case["comparisons"], f"{name} compares nothing"


@pytest.mark.parametrize("name", bench.CASES)
def test_ratios_are_anchor_median_over_ours_median(quick_run, name):
    case = quick_run[0]["cases"][name]
    for item in case["comparisons"]:
        (ours,) = _rows(case, item["operation"], item["ours"], item["params"])
        anchors = [
            row
            for row in case["rows"]
            if row["implementation"] == item["anchor"] and row["operation"] == item["operation"]
        ]
        anchor_values = [harness.row_value(row, item["metric"]) for row in anchors]
        assert item["anchor_value"] in anchor_values
        expected_ours = (
            ours["seconds"]["median"]
            if item["metric"] == "seconds"
            else (
                ours[item["metric"]] if item["metric"] in ours else ours["metrics"][item["metric"]]
            )
        )
        assert item["ours_value"] == expected_ours
        assert item["ratio"] == pytest.approx(item["anchor_value"] / item["ours_value"])


def test_nima_table_agrees_with_the_anchor_and_quotes_the_source(quick_run):
    case = quick_run[0]["cases"]["nima_table"]
    measured = [row for row in case["rows"] if row["role"] != "reference"]
    assert all(row["metrics"]["matches_anchor"] for row in measured)
    copy_MBps = quick_run[0]["machine"]["copy_bandwidth"]["MBps"]["median"]
    for row in measured:
        assert row["metrics"]["copy_fraction"] == pytest.approx(
            row["metrics"]["throughput_MBps"] / copy_MBps
        )
    assert case["source"]["shading seconds per time point"] == 0.06
    assert case["source"]["median seconds per time point"] == 0.13


def test_tiled_labels_count_what_scipy_counts(quick_run):
    import scipy.ndimage as ndi

    from nima_lessons.course.bench.tiled_labels import blob_mask

    case = quick_run[0]["cases"]["tiled_labels"]
    params = case["params"]
    _, expected = ndi.label(blob_mask(params["sizes_px"][0], params["blob_px"], params["fill"]))
    assert {row["metrics"]["n_labels"] for row in case["rows"]} == {expected}
    assert all(row["peak_rss_bytes"] > 0 for row in case["rows"])


def test_overlap_cost_extra_pixels_match_a_direct_count():
    from nima_lessons.course.bench.overlap_cost import extra_pixels_fraction

    size, tile, depth = 100, 30, 7
    covered = np.zeros(size, int)
    for start in range(0, size, tile):
        covered[max(start - depth, 0) : min(start + tile + depth, size)] += 1
    assert extra_pixels_fraction(size, tile, depth) == pytest.approx(
        covered.sum() ** 2 / size**2 - 1
    )


@pytest.mark.parametrize(
    ("streaming_mb", "load_all_mb", "expected"),
    [
        ((400, 420), (420, 900), (True, True)),  # flat streaming, growing load-all
        ((400, 560), (420, 900), (False, True)),  # streaming grows by 40 %
        ((400, 410), (420, 421), (True, False)),
    ],  # load-all grows no more than streaming
)
def test_streaming_claims_follow_the_peaks(streaming_mb, load_all_mb, expected):
    from nima_lessons.course.bench.streaming import STREAMING_PEAK_LIMIT, streaming_claims

    rows = []
    for mode, peaks in (("streaming", streaming_mb), ("load-all", load_all_mb)):
        for n_t, peak in zip((5, 40), peaks):
            row = harness.measurement(
                "pipeline + save",
                mode,
                "ours" if mode == "streaming" else "anchor",
                {"n_t": n_t},
                harness.summarize([1.0]),
            )
            row["peak_rss_bytes"] = peak * 10**6
            rows.append(row)
    claims = streaming_claims(rows, [5, 40])
    assert [claim["holds"] for claim in claims] == list(expected)
    assert claims[0]["value"] == pytest.approx(streaming_mb[1] / streaming_mb[0])
    assert claims[0]["threshold"] == STREAMING_PEAK_LIMIT
    assert streaming_claims(rows, [5]) == []


def test_markdown_has_one_section_and_table_per_case(quick_run):
    results, out = quick_run
    text = (out / "results.md").read_text()
    assert text.startswith("# nima-lessons benchmark results")
    for name in bench.CASES:
        assert f"(`{name}`)" in text
        assert f"![{name}]({name}.png)" in text
    assert text.count("| operation | implementation | role |") == len(bench.CASES)
    assert "memory-copy bandwidth" in text


def test_plots_are_png_images(quick_run):
    results, out = quick_run
    assert set(results["files"]["plots"]) == set(bench.CASES)
    for path in results["files"]["plots"].values():
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_results_load_back_and_flatten(quick_run):
    results, out = quick_run
    loaded = bench.load_results(out)
    assert loaded["cases"].keys() == results["cases"].keys()
    frame = bench.results_frame(loaded)
    assert len(frame) == sum(len(case["rows"]) for case in loaded["cases"].values())
    assert {"case", "role", "seconds_median", "peak_rss_bytes"} <= set(frame.columns)


def test_earlier_results_are_kept_unless_overwrite(quick_run, tmp_path):
    _, out = quick_run
    with pytest.raises(FileExistsError, match="overwrite"):
        bench.run_benchmarks(cases=["overlap_cost"], preset="tiny", out=out, progress=False)
    with pytest.raises(FileNotFoundError, match="nima-lessons bench"):
        bench.load_results(tmp_path)


def test_cli_runs_one_case(tmp_path, capsys):
    out = tmp_path / "cli"
    # The CLI has no tiny preset; quick overlap_cost is a couple of seconds.
    assert (
        cli.main(
            ["bench", "--quick", "--case", "overlap_cost", "--repeats", "1", "--out", str(out)]
        )
        == 0
    )
    assert "results.md" in capsys.readouterr().out
    stored = report.load_json(out)
    assert list(stored["cases"]) == ["overlap_cost"]
    assert stored["cases"]["overlap_cost"]["repeats"] == 1
