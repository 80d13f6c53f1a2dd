"""The benchmark protocol, harness and report at tiny sizes: structure and arithmetic, not speed."""

import importlib.util
import json
import statistics

import dask.array as da
import matplotlib.image
import numpy as np
import pytest
import scipy.ndimage as ndi

from nima_lessons import cli
from nima_lessons.course import bench
from nima_lessons.course.bench import harness, report
from nima_lessons.course.bench.case import ROLES, Case, Trial, claim, run_case


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One run of every case at the tiny preset, written to a folder."""
    out = tmp_path_factory.mktemp("bench") / "results"
    return bench.run_benchmarks(preset="tiny", out=out, progress=False), out


def _only(case, **wanted):
    found = [
        row
        for row in case["rows"]
        if all(row["params"].get(k, row.get(k)) == v for k, v in wanted.items())
    ]
    assert len(found) == 1, f"{len(found)} rows match {wanted}"
    return found[0]


# ---------------------------------------------------------------- harness


def test_summarize_matches_statistics():
    values = [0.3, 0.1, 0.7, 0.2]
    summary = harness.summarize(values)
    assert summary["median"] == statistics.median(values)
    assert (summary["min"], summary["max"], summary["n"]) == (0.1, 0.7, 4)
    assert summary["values"] == values
    with pytest.raises(ValueError, match="at least one"):
        harness.summarize([])


@pytest.mark.parametrize("repeats", [0, -1, 1.5, True, "3"])
def test_bad_repeats_are_rejected(repeats):
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        harness.time_repeats(lambda: None, repeats)


def test_time_repeats_records_the_last_result_only():
    results, kept = iter(range(10)), []
    assert (
        harness.time_repeats(
            lambda: next(results), 3, warmup=lambda: next(results), record=kept.append
        )["n"]
        == 3
    )
    assert kept == [3]  # warm-up 0, repeats 1, 2, 3


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
        harness.run_in_subprocess(
            "nima_lessons.course.bench.harness:allocation_job", {"n_bytes": -5}
        )
    with pytest.raises(ValueError, match="module:function"):
        harness.run_in_subprocess("nima_lessons.course.bench.harness.allocation_job", {})


def test_machine_info_describes_the_machine():
    info = harness.machine_info(copy_bytes=4_000_000, copy_repeats=2)
    assert info["cores_usable"] >= 1 and info["memory_total_bytes"] > 0
    assert info["packages"]["numpy"] == np.__version__
    assert info["copy_bandwidth"]["MBps"]["median"] > 0


# ---------------------------------------------------------------- protocol


def test_comparison_is_anchor_over_ours():
    def row(name, seconds, peak):
        return {"operation": "op", "implementation": name, "params": {}, "metrics": {},
                "seconds": harness.summarize(seconds), "peak_rss_bytes": peak}  # fmt: skip

    from nima_lessons.course.bench.case import comparison

    assert (
        comparison(row("them", [3.0, 9.0, 6.0], 200), row("us", [2.0, 1.0, 4.0], 50))["ratio"]
        == 6.0 / 2.0
    )
    assert (
        comparison(row("them", [1.0], 200), row("us", [1.0], 50), "peak_rss_bytes")["ratio"] == 4.0
    )


def test_trial_rejects_unknown_role_and_two_measures():
    with pytest.raises(ValueError, match="role must be one of"):
        Trial("op", "them", "baseline", {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most one"):
        Trial("op", "us", "ours", {}, run=lambda: None, seconds=[1.0])


def _toy_case(trials, claims=None):
    return Case("toy", "a toy case", {"tiny": {"n": 3}}, {"tiny": 2}, trials, claims=claims)


def test_runner_sends_rows_back_compares_shared_params_and_skips_missing_modules():
    seen = []

    def trials(context):
        whole = yield Trial(
            "op", "whole", "reference", {"n": context.params["n"], "tile": None}, seconds=[4.0]
        )
        seen.append(whole["seconds"]["median"])
        yield Trial(
            "op",
            "missing",
            "anchor",
            {"n": 3, "tile": None},
            run=lambda: None,
            requires=("no_such_module_x",),
        )
        for tile in (1, 2):
            row = yield Trial(
                "op",
                "tiled",
                "ours",
                {"n": 3, "tile": tile},
                seconds=[float(tile)],
                n_bytes=2_000_000,
            )
            seen.append(row["metrics"]["throughput_MBps"])

    result = run_case(
        _toy_case(trials, lambda rows, params, comparisons: [claim("two rows", len(rows), 3)]),
        "tiny",
        copy_MBps=4.0,
    )
    assert result["error"] is None
    assert seen == [4.0, 2.0, 1.0]  # MB per second of 2 MB in 1 s and 2 s
    assert [row["implementation"] for row in result["rows"]] == ["whole", "tiled", "tiled"]
    assert [item["ratio"] for item in result["comparisons"]] == [4.0, 2.0]  # whole / each tiled
    assert result["rows"][1]["metrics"]["copy_fraction"] == 0.5
    assert result["notes"] == [
        "missing skipped: no_such_module_x not installed "
        "(optional: pip install 'nima-lessons[bench]')"
    ]
    assert result["claims"][0]["holds"] is True


def test_runner_records_a_failure_with_the_rows_before_it():
    def trials(context):
        yield Trial("op", "us", "ours", {}, seconds=[1.0])
        raise RuntimeError("the input is broken")

    result = run_case(_toy_case(trials), "tiny")
    assert result["error"] == "RuntimeError: the input is broken"
    assert len(result["rows"]) == 1


def test_unknown_case_names_and_presets_are_rejected(capsys):
    with pytest.raises(ValueError, match=r"unknown benchmark case 'nope'.*nima_table"):
        bench.run_benchmarks(cases=["nima_table", "nope"], preset="tiny", out=None, progress=False)
    with pytest.raises(ValueError, match="preset must be one of"):
        bench.run_benchmarks(preset="huge", out=None, progress=False)  # type: ignore[arg-type]
    with pytest.raises(SystemExit) as stop:
        cli.main(["bench", "--case", "nope"])
    assert stop.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_cases_run_in_report_order_and_planned_ones_appear_with_their_module():
    assert bench.validate_cases(["schedulers", "nima_table", "schedulers"]) == [
        "nima_table",
        "schedulers",
    ]
    for name in bench.PLANNED_CASES:
        present = importlib.util.find_spec(f"nima_lessons.course.bench.{name}") is not None
        assert (name in bench.CASES) == present


# ---------------------------------------------------------------- every case, tiny


def test_results_json_has_the_documented_structure(tiny_run):
    _, out = tiny_run
    stored = json.loads((out / "results.json").read_text())
    assert stored["schema_version"] == bench.SCHEMA_VERSION and stored["preset"] == "tiny"
    assert set(stored["cases"]) == set(bench.CASES)
    assert {"platform", "cores_usable", "memory_total_bytes", "packages", "copy_bandwidth"} <= set(
        stored["machine"]
    )
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
            assert row["role"] in ROLES
            if row["seconds"] is not None:
                seconds = row["seconds"]
                assert seconds["min"] <= seconds["median"] <= seconds["max"]
                assert seconds["n"] == len(seconds["values"])


@pytest.mark.parametrize("name", bench.CASES)
def test_every_case_reports_anchor_and_ours_and_their_ratios(tiny_run, name):
    case = tiny_run[0]["cases"][name]
    if "anchor" not in {row["role"] for row in case["rows"]}:  # its data or tool is missing
        skipped = [note for note in case["notes"] if "skipped" in note]
        assert skipped, f"{name} has no anchor row and no note saying why"
        pytest.skip(skipped[0])
    assert {"anchor", "ours"} <= {row["role"] for row in case["rows"]}
    assert case["comparisons"], f"{name} compares nothing"
    for item in case["comparisons"]:
        (ours,) = [
            r
            for r in case["rows"]
            if (r["operation"], r["implementation"], r["params"])
            == (item["operation"], item["ours"], item["params"])
        ]
        value = (
            ours["seconds"]["median"]
            if item["metric"] == "seconds"
            else ours.get(item["metric"], ours["metrics"].get(item["metric"]))
        )
        assert item["ours_value"] == value
        assert item["ratio"] == pytest.approx(item["anchor_value"] / item["ours_value"])


def test_nima_table_agrees_with_the_anchor_and_times_the_kernel_per_dtype(tiny_run):
    case = tiny_run[0]["cases"]["nima_table"]
    copy_MBps = tiny_run[0]["machine"]["copy_bandwidth"]["MBps"]["median"]
    for row in case["rows"]:
        if row["operation"] in ("shading", "median", "median (whole stack)"):
            assert row["metrics"]["matches_anchor"] is True
        if "throughput_MBps" in row["metrics"]:
            assert row["metrics"]["copy_fraction"] == pytest.approx(
                row["metrics"]["throughput_MBps"] / copy_MBps
            )
    for dtype in ("uint8", "uint16", "float32", "float64"):
        copy = _only(
            case, operation="median kernel", implementation="memory copy (numpy)", dtype=dtype
        )
        for footprint in ("disk", "square"):
            ours = _only(
                case,
                operation="median kernel",
                implementation="nima_lessons",
                dtype=dtype,
                footprint=footprint,
            )
            assert ours["metrics"]["times_copy"] == pytest.approx(
                ours["seconds"]["median"] / copy["seconds"]["median"]
            )
    opencv = [row for row in case["rows"] if row["implementation"] == "cv2.medianBlur"]
    assert len(opencv) == (3 if importlib.util.find_spec("cv2") else 0)
    assert all(row["metrics"]["matches_ours"] for row in opencv)


def test_tiled_labels_count_what_scipy_counts(tiny_run):
    from nima_lessons.course.bench.tiled_labels import blob_mask

    case = tiny_run[0]["cases"]["tiled_labels"]
    params = case["params"]
    _, expected = ndi.label(blob_mask(params["sizes_px"][0], params["blob_px"], params["fill"]))
    assert {row["metrics"]["n_labels"] for row in case["rows"]} == {expected}
    assert all(row["peak_rss_bytes"] > 0 for row in case["rows"])
    for module, name in (("cc3d", "cc3d"), ("cv2", "cv2")):
        present = importlib.util.find_spec(module) is not None
        assert any(row["implementation"] == name for row in case["rows"]) == present
        assert any(note.startswith(f"{name} skipped") for note in case["notes"]) != present


def test_overlap_cost_extra_pixels_match_what_dask_reads(tiny_run):
    case = tiny_run[0]["cases"]["overlap_cost"]
    size = case["params"]["size_px"]
    for row in case["rows"]:
        if row["role"] == "ours":
            tiles = da.zeros((size, size), chunks=row["params"]["tile_px"])
            read = da.overlap.overlap(tiles, depth=row["params"]["depth_px"], boundary="none").size
            assert row["metrics"]["extra_pixels_fraction"] == pytest.approx(read / size**2 - 1)


@pytest.mark.parametrize(
    ("streaming_mb", "load_all_mb", "expected"),
    [
        ((400, 420), (420, 900), [True, True]),  # flat streaming, growing load-all
        ((400, 560), (420, 900), [False, True]),  # streaming grows by 40 %
        ((400, 410), (420, 421), [True, False]),  # load-all grows no more than streaming
    ],
)
def test_streaming_claims_follow_the_peaks(streaming_mb, load_all_mb, expected):
    from nima_lessons.course.bench.streaming import streaming_claims

    rows = [
        {"implementation": mode, "params": {"n_t": n_t}, "peak_rss_bytes": peak * 10**6}
        for mode, peaks in (("streaming", streaming_mb), ("load-all", load_all_mb))
        for n_t, peak in zip((5, 40), peaks, strict=True)
    ]
    claims = streaming_claims(rows, {"n_t": [40, 5]})
    assert [item["holds"] for item in claims] == expected
    assert claims[0]["value"] == pytest.approx(streaming_mb[1] / streaming_mb[0])
    assert streaming_claims(rows, {"n_t": [5]}) == []


def test_markdown_has_one_section_table_and_figure_per_case(tiny_run):
    results, out = tiny_run
    text = (out / "results.md").read_text()
    assert text.startswith("# nima-lessons benchmark results")
    measured = [name for name, case in results["cases"].items() if case["rows"]]
    for name in bench.CASES:
        assert f"(`{name}`)" in text and (f"![{name}]({name}.png)" in text) == (name in measured)
    assert text.count("| operation | implementation | role |") == len(measured)
    assert "memory-copy bandwidth" in text
    assert set(results["files"]["plots"]) == set(measured)
    for path in results["files"]["plots"].values():
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_results_load_back_and_flatten(tiny_run):
    results, out = tiny_run
    loaded = bench.load_results(out)
    assert loaded["cases"].keys() == results["cases"].keys()
    frame = bench.results_frame(loaded)
    assert len(frame) == sum(len(case["rows"]) for case in loaded["cases"].values())
    assert {"case", "role", "seconds", "seconds_min", "peak_MB"} <= set(frame.columns)


def test_earlier_results_are_kept_unless_overwrite(tiny_run, tmp_path):
    _, out = tiny_run
    with pytest.raises(FileExistsError, match="overwrite"):
        bench.run_benchmarks(cases=["overlap_cost"], preset="tiny", out=out, progress=False)
    with pytest.raises(FileNotFoundError, match="nima-lessons bench"):
        bench.load_results(tmp_path)


def test_cli_runs_one_case(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "bench",
        "--preset",
        "tiny",
        "--case",
        "overlap_cost",
        "--repeats",
        "2",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    assert "results.md" in capsys.readouterr().out
    stored = report.load_json(out)
    assert list(stored["cases"]) == ["overlap_cost"]
    assert stored["cases"]["overlap_cost"]["repeats"] == 2


@pytest.mark.slow
def test_quick_preset_runs_every_case_without_error(tmp_path):
    results = bench.run_benchmarks(quick=True, out=tmp_path / "quick", progress=False)
    assert {name: case["error"] for name, case in results["cases"].items()} == dict.fromkeys(
        bench.CASES
    )


def test_profile_prepared_measures_a_plain_callable(monkeypatch):
    calls = []
    monkeypatch.setattr(harness, "_import", lambda target: lambda: lambda: calls.append(1))
    profiled = harness.profile_prepared("any.module:factory", {}, repeats=3)
    assert profiled["seconds"]["n"] == 3 and len(calls) == 3
