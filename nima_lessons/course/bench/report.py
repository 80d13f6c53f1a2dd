"""Writing benchmark results: one JSON file, one markdown report and one figure per case.

The JSON is the source of truth (the benchmark lesson reads it); the markdown and the
PNGs, drawn by each case's ``figure`` (:mod:`nima_lessons.course.plotting`), are views of it.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nima_lessons._atomic import atomic_path, check_writable

__all__ = ["JSON_NAME", "MARKDOWN_NAME", "check_output", "load_json", "markdown", "write_report"]

JSON_NAME = "results.json"
MARKDOWN_NAME = "results.md"


def check_output(out: str | Path, overwrite: bool) -> Path:
    """Refuse to run when ``out`` already holds results, unless asked to replace them.

    Raises
    ------
    FileExistsError
        If ``out/results.json`` or ``out/results.md`` exists and ``overwrite`` is false.
    ValueError
        If ``out`` exists and is not a folder.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out={str(folder)!r} exists and is not a folder")
    for name in (JSON_NAME, MARKDOWN_NAME):
        check_writable(folder / name, overwrite)
    return folder


def _json_default(value: object) -> object:
    """Make numpy scalars, arrays and paths JSON-compatible."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in the benchmark JSON")


def write_report(results: dict, out: str | Path, overwrite: bool = False) -> dict:
    """Write ``results.json``, ``results.md`` and ``<case>.png`` for each case into ``out``.

    Returns
    -------
    dict
        ``{"json": str, "markdown": str, "plots": {case: str}}``.

    Raises
    ------
    FileExistsError
        If a result file exists and ``overwrite`` is false.
    """
    import matplotlib.pyplot as plt

    from nima_lessons.course.plotting import plot_bench_bars

    folder = check_output(out, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    plots = {}
    for name, case in results["cases"].items():
        if case.get("rows"):
            draw = importlib.import_module(f"nima_lessons.course.bench.{name}").CASE.figure
            draw = draw or plot_bench_bars
            figure = draw(case)
            figure.set_figwidth(max(figure.get_figwidth(), 8.0))  # room for the title
            figure.suptitle(case["title"])
            with atomic_path(folder / f"{name}.png", overwrite=True) as tmp:
                figure.savefig(tmp, format="png", dpi=100)
            plt.close(figure)
            plots[name] = str(folder / f"{name}.png")
    files = {
        "json": str(folder / JSON_NAME),
        "markdown": str(folder / MARKDOWN_NAME),
        "plots": plots,
    }
    stored = dict(results, files=files)
    with atomic_path(folder / JSON_NAME, overwrite) as tmp:
        tmp.write_text(json.dumps(stored, indent=1, default=_json_default))
    with atomic_path(folder / MARKDOWN_NAME, overwrite) as tmp:
        tmp.write_text(markdown(stored))
    return files


def load_json(path: str | Path) -> dict:
    """Read ``results.json`` from a file or the folder holding it.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no benchmark results at {path}: run `nima-lessons bench` (or --quick) first"
        )
    return json.loads(path.read_text())


def _number(value: object, digits: int = 3) -> str:
    """Format a figure with ``digits`` significant digits, '-' when missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
        return f"{value:,.{decimals}f}"
    return str(value)


def _text(values: Mapping[str, Any], numbers: bool = False) -> str:
    def shown(value: object) -> str:
        if isinstance(value, (list, tuple)):
            return "x".join(map(str, value))
        return _number(value) if numbers else str(value)

    return ", ".join(f"{key}={shown(value)}" for key, value in values.items())


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    body = ["| " + " | ".join(cell.replace("|", "/") for cell in line) + " |" for line in lines]
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header), *body, ""]


def _machine_lines(machine: Mapping[str, Any]) -> list[str]:
    copy = machine["copy_bandwidth"]
    packages = ", ".join(
        f"{name} {version}" for name, version in machine["packages"].items() if version
    )
    load = machine.get("load_average")
    return [
        f"- platform: {machine['platform']} (Python {machine['python']}, {machine['processor']})",
        f"- cores: {machine['cores_usable']} usable, {machine['cores_physical']} physical, "
        f"{machine['cores_logical']} logical; memory {machine['memory_total_bytes'] / 1e9:.1f} GB "
        f"({machine['memory_available_bytes'] / 1e9:.1f} GB available); load average "
        + (" / ".join(f"{value:.2f}" for value in load) if load else "unknown"),
        f"- memory-copy bandwidth (numpy copy of {copy['n_bytes'] / 1e6:.0f} MB): "
        f"{_number(copy['MBps']['median'])} MB/s (min {_number(copy['MBps']['min'])}, "
        f"max {_number(copy['MBps']['max'])})",
        f"- packages: {packages}",
        "",
    ]


def _megabytes(value: int | None) -> str:
    return "-" if value is None else _number(value / 1e6)


def _case_lines(index: int, name: str, case: Mapping[str, Any], plot: str | None) -> list[str]:
    """Render one case: claim, measurements, ratios, claims, notes and figure."""
    lines = [f"## {index}. {case['title']} (`{name}`)", "", case["claim"], ""]
    lines += [
        f"Parameters: {_text(case['params'])}; {case['repeats']} repeats; "
        f"{case.get('elapsed_seconds', 0):.1f} s in all.",
        "",
    ]
    if case.get("error"):
        lines += [f"**This case failed:** `{case['error']}`", ""]
    if case.get("source"):
        lines += ["Figures quoted from the source:", ""]
        lines += [f"- {key}: {value}" for key, value in case["source"].items()] + [""]
    header = "operation|implementation|role|parameters|median s|min s|max s|peak RSS MB|work MB"
    body = []
    for row in case.get("rows", []):
        seconds = row["seconds"] or {}
        body.append(
            [row["operation"], row["implementation"], row["role"], _text(row["params"])]
            + [_number(seconds.get(key)) for key in ("median", "min", "max")]
            + [_megabytes(row["peak_rss_bytes"]), _megabytes(row["work_rss_bytes"])]
            + [_text(row["metrics"], numbers=True)]
        )
    if body:
        lines += _table([*header.split("|"), "other figures"], body)
    if case.get("comparisons"):
        lines += [
            "Each ratio is the first value over the second: above 1, the second is faster "
            "(or needs less memory).",
            "",
        ]
        lines += _table(
            "operation|parameters|figure|ratio of|anchor value|ours value|ratio".split("|"),
            [
                [item["operation"], _text(item["params"]), item["metric"], item["what"]]
                + [_number(item[key]) for key in ("anchor_value", "ours_value", "ratio")]
                for item in case["comparisons"]
            ],
        )
    for item in case.get("claims", []):
        verdict = "holds" if item["holds"] else "does NOT hold"
        lines.append(
            f"- Claim: {item['claim']}: measured {_number(item['value'])} "
            f"against {_number(item['threshold'])}: **{verdict}**."
        )
    lines += [f"- {note}" for note in case.get("notes", [])]
    lines += [""] + ([f"![{name}]({plot})", ""] if plot else [])
    return lines


def markdown(results: Mapping[str, Any]) -> str:
    """Return the whole report as markdown text."""
    lines = [
        "# nima-lessons benchmark results",
        "",
        f"Preset `{results['preset']}`, run {results['created']}, "
        f"{results.get('total_seconds', 0):.0f} s in all.",
        "",
    ]
    lines += _machine_lines(results["machine"])
    plots = results.get("files", {}).get("plots", {})
    for index, (name, case) in enumerate(results["cases"].items(), start=1):
        lines += _case_lines(index, name, case, Path(plots[name]).name if name in plots else None)
    return "\n".join(lines).rstrip() + "\n"
