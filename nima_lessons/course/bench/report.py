"""Writing benchmark results: one JSON file, one markdown table and one plot per case.

The JSON is the source of truth (the benchmark notebook reads it); the
markdown and the plots are views of it for the README and for a quick look.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np

from nima_lessons._atomic import atomic_path, check_writable

JSON_NAME = "results.json"
MARKDOWN_NAME = "results.md"

# Short headings of the cases, in report order.
_CASE_HEADINGS = {
    "nima_table": "1. The nima table",
    "lazy_stack": "2. Lazy stack construction",
    "tiled_labels": "3. Tiled labelling",
    "streaming": "4. Streaming against load-all",
    "overlap_cost": "5. Overlap cost",
    "schedulers": "6. Schedulers",
}


def check_output(out: str | Path, overwrite: bool) -> Path:
    """Refuse to run when ``out`` already holds results, unless asked to replace them.

    Parameters
    ----------
    out : path-like
        The output folder.
    overwrite : bool
        Whether earlier results there may be replaced.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileExistsError
        If ``out/results.json`` or ``out/results.md`` exists and ``overwrite``
        is false.
    ValueError
        If ``out`` exists and is not a folder.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out={str(folder)!r} exists and is not a folder")
    for name in (JSON_NAME, MARKDOWN_NAME):
        check_writable(folder / name, overwrite)
    return folder


def _json_default(value):
    """Make numpy scalars, arrays and paths JSON-compatible."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in the benchmark JSON")


def write_report(results: dict, out: str | Path, overwrite: bool = False) -> dict:
    """Write ``results.json``, ``results.md`` and one PNG per case into ``out``.

    Parameters
    ----------
    results : dict
        As built by :func:`nima_lessons.course.bench.run_benchmarks`.
    out : path-like
        Output folder, created if needed.
    overwrite : bool
        Replace the files of an earlier run.

    Returns
    -------
    dict
        ``{"json": str, "markdown": str, "plots": {case: str}}``.

    Raises
    ------
    FileExistsError
        If a result file exists and ``overwrite`` is false.
    """
    folder = check_output(out, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    plots = {}
    for name, case in results["cases"].items():
        if case.get("rows"):
            plots[name] = str(write_plot(name, case, folder / f"{name}.png", overwrite=True))
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


def rows_frame(results: dict):
    """Flatten every row of every case into a pandas DataFrame (see ``results_frame``)."""
    import pandas as pd

    records = []
    for case_name, case in results["cases"].items():
        for row in case.get("rows", []):
            record = {
                "case": case_name,
                "operation": row["operation"],
                "implementation": row["implementation"],
                "role": row["role"],
            }
            record.update({f"param_{key}": _scalar(value) for key, value in row["params"].items()})
            seconds = row["seconds"] or {}
            record.update(
                seconds_median=seconds.get("median"),
                seconds_min=seconds.get("min"),
                seconds_max=seconds.get("max"),
                peak_rss_bytes=row["peak_rss_bytes"],
                work_rss_bytes=row["work_rss_bytes"],
            )
            record.update({key: _scalar(value) for key, value in row["metrics"].items()})
            records.append(record)
    return pd.DataFrame.from_records(records)


def _scalar(value):
    """Lists (shapes, chunks) become readable strings in tables."""
    if isinstance(value, (list, tuple)):
        return "x".join(str(item) for item in value)
    return value


# ---------------------------------------------------------------- markdown


def _number(value, digits: int = 3) -> str:
    """Format a figure with ``digits`` significant digits, '-' when missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        decimals = max(digits - 1 - magnitude, 0)
        return f"{value:,.{decimals}f}"
    return str(value)


def _megabytes(value) -> str:
    return "-" if value is None else _number(value / 1e6)


def _params_text(params: dict) -> str:
    return ", ".join(f"{key}={_scalar(value)}" for key, value in params.items())


def _metrics_text(metrics: dict) -> str:
    return ", ".join(f"{key}={_number(value)}" for key, value in metrics.items())


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    text = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    text += ["| " + " | ".join(cell.replace("|", "/") for cell in line) + " |" for line in lines]
    return text


def machine_lines(machine: dict) -> list[str]:
    """Describe the machine in a few markdown lines."""
    copy = machine["copy_bandwidth"]
    packages = ", ".join(
        f"{name} {version}" for name, version in machine["packages"].items() if version
    )
    load = machine.get("load_average")
    load_text = "unknown" if not load else " / ".join(f"{value:.2f}" for value in load)
    return [
        f"- platform: {machine['platform']} (Python {machine['python']}, {machine['processor']})",
        f"- cores: {machine['cores_usable']} usable, {machine['cores_physical']} physical, "
        f"{machine['cores_logical']} logical; memory {machine['memory_total_bytes'] / 1e9:.1f} GB "
        f"({machine['memory_available_bytes'] / 1e9:.1f} GB available); load average {load_text}",
        f"- memory-copy bandwidth (numpy copy of {copy['n_bytes'] / 1e6:.0f} MB): "
        f"{_number(copy['MBps']['median'])} MB/s (min {_number(copy['MBps']['min'])}, "
        f"max {_number(copy['MBps']['max'])})",
        f"- packages: {packages}",
    ]


def case_lines(name: str, case: dict) -> list[str]:
    """Render one case as markdown: claim, measurements, ratios, claims, notes."""
    lines = [f"## {_CASE_HEADINGS.get(name, name)} (`{name}`)", "", case["claim"], ""]
    lines.append(
        f"Parameters: {_params_text(case['params'])}; {case['repeats']} repeats; "
        f"{case.get('elapsed_seconds', 0):.1f} s in all."
    )
    lines.append("")
    if case.get("error"):
        lines += [f"**This case failed:** `{case['error']}`", ""]
    if case.get("source"):
        lines += ["Figures quoted from the source:", ""]
        lines += [f"- {key}: {value}" for key, value in case["source"].items()]
        lines.append("")
    if case.get("rows"):
        header = [
            "operation",
            "implementation",
            "role",
            "parameters",
            "median s",
            "min s",
            "max s",
            "peak RSS MB",
            "work MB",
            "other figures",
        ]
        body = []
        for row in case["rows"]:
            seconds = row["seconds"] or {}
            body.append(
                [
                    row["operation"],
                    row["implementation"],
                    row["role"],
                    _params_text(row["params"]),
                    _number(seconds.get("median")),
                    _number(seconds.get("min")),
                    _number(seconds.get("max")),
                    _megabytes(row["peak_rss_bytes"]),
                    _megabytes(row["work_rss_bytes"]),
                    _metrics_text(row["metrics"]),
                ]
            )
        lines += _table(header, body) + [""]
    if case.get("comparisons"):
        header = [
            "operation",
            "parameters",
            "figure",
            "ratio of",
            "anchor value",
            "ours value",
            "ratio",
        ]
        body = [
            [
                c["operation"],
                _params_text(c["params"]),
                c["metric"],
                c.get("what") or f"{c['anchor']} / {c['ours']}",
                _number(c["anchor_value"]),
                _number(c["ours_value"]),
                _number(c["ratio"]),
            ]
            for c in case["comparisons"]
        ]
        lines += [
            "Each ratio is the first value over the second: above 1, the second is faster "
            "(or needs less memory).",
            "",
        ]
        lines += _table(header, body) + [""]
    for claim in case.get("claims", []):
        verdict = "holds" if claim["holds"] else "does NOT hold"
        lines.append(
            f"- Claim: {claim['claim']}: measured {_number(claim['value'])} "
            f"against {_number(claim['threshold'])}: **{verdict}**."
        )
    for note in case.get("notes", []):
        lines.append(f"- {note}")
    if case.get("claims") or case.get("notes"):
        lines.append("")
    plot = case.get("_plot_file") or ""
    if plot:
        lines += [f"![{name}]({plot})", ""]
    return lines


def markdown(results: dict) -> str:
    """Return the whole report as markdown text."""
    lines = [
        "# nima-lessons benchmark results",
        "",
        f"Preset `{results['preset']}`, run {results['created']}, "
        f"{results.get('total_seconds', 0):.0f} s in all.",
        "",
    ]
    lines += machine_lines(results["machine"]) + [""]
    plots = results.get("files", {}).get("plots", {})
    for name, case in results["cases"].items():
        shown = dict(case, _plot_file=Path(plots[name]).name if name in plots else "")
        lines += case_lines(name, shown)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- plots


def write_plot(name: str, case: dict, path: str | Path, overwrite: bool = False) -> Path:
    """Draw the figure of one case into a PNG file (matplotlib, Agg backend).

    Parameters
    ----------
    name : str
        The case name; selects the kind of plot.
    case : dict
        The case result.
    path : path-like
        The PNG file to write.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    _PLOTTERS.get(name, _plot_bars)(figure, case)
    figure.suptitle(case["title"])
    target = Path(path)
    with atomic_path(target, overwrite) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return target


def _label(row: dict, keys: tuple[str, ...] = ()) -> str:
    extra = ", ".join(
        f"{key}={_scalar(row['params'][key])}" for key in keys if key in row["params"]
    )
    text = f"{row['operation']}\n{row['implementation']}"
    return f"{text}\n{extra}" if extra else text


def _median(row: dict) -> float:
    return row["seconds"]["median"] if row["seconds"] else float("nan")


def _plot_bars(figure, case: dict, keys: tuple[str, ...] = ()) -> None:
    """Median seconds per row, with min-max whiskers."""
    rows = [row for row in case["rows"] if row["seconds"]]
    axes = figure.subplots()
    positions = np.arange(len(rows))
    medians = np.array([_median(row) for row in rows])
    low = medians - np.array([row["seconds"]["min"] for row in rows])
    high = np.array([row["seconds"]["max"] for row in rows]) - medians
    colours = [_ROLE_COLOURS[row["role"]] for row in rows]
    axes.bar(positions, medians, yerr=[low, high], color=colours, capsize=3)
    axes.set_xticks(positions, [_label(row, keys) for row in rows], fontsize=7)
    axes.set_ylabel("seconds (median, min-max)")
    _role_legend(axes)


_ROLE_COLOURS = {"ours": "tab:blue", "anchor": "tab:orange", "reference": "tab:gray"}


def _role_legend(axes, source_line: bool = False) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=colour, label=role) for role, colour in _ROLE_COLOURS.items()]
    if source_line:
        handles.append(Line2D([], [], color="black", linestyle="--", label="nima documentation"))
    axes.legend(handles=handles, fontsize=8, loc="best")


def _plot_nima_table(figure, case: dict) -> None:
    """Seconds per time point, and throughput as a fraction of copy bandwidth.

    The source's per-time-point figures are drawn as dashes where the sizes
    are the source's.
    """
    rows = [row for row in case["rows"] if row["seconds"]]
    time_axes, fraction_axes = figure.subplots(1, 2)
    labels = [
        row["operation"] + "\n" + row["implementation"].replace(" + ", " +\n") for row in rows
    ]
    positions = np.arange(len(rows))
    colours = [_ROLE_COLOURS[row["role"]] for row in rows]
    time_axes.bar(positions, [_median(row) for row in rows], color=colours)
    time_axes.set_ylabel("seconds per time point")
    source = case.get("source") or {}
    drawn = False
    if case["params"].get("shape") == [2048, 2048] and case["params"].get("n_c") == 3:
        for position, row in zip(positions, rows):
            quoted = source.get(f"{row['operation']} seconds per time point")
            if quoted is not None and row["role"] == "anchor":
                time_axes.hlines(
                    quoted, position - 0.4, position + 1.4, colors="black", linestyles="--"
                )
                drawn = True
    fractions = [row["metrics"].get("copy_fraction", float("nan")) for row in rows]
    fraction_axes.bar(positions, fractions, color=colours)
    fraction_axes.set_yscale("log")
    fraction_axes.set_ylabel("throughput / copy bandwidth")
    for axes in (time_axes, fraction_axes):
        axes.set_xticks(positions, labels, fontsize=7, rotation=30, ha="right")
    _role_legend(time_axes, source_line=drawn)


def _series(rows: list[dict], key: str) -> dict[tuple, list[dict]]:
    """Group rows by implementation and operation, sorted along params[key]."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if key in row["params"]:
            groups.setdefault((row["implementation"], row["operation"]), []).append(row)
    return {
        name: sorted(group, key=lambda row: row["params"][key]) for name, group in groups.items()
    }


def _plot_lazy_stack(figure, case: dict) -> None:
    """Build and one-frame compute time against the number of frames (log-log)."""
    build_axes, frame_axes = figure.subplots(1, 2)
    for axes, operation in ((build_axes, "build"), (frame_axes, "compute one frame")):
        rows = [row for row in case["rows"] if row["operation"] == operation and row["seconds"]]
        for (implementation, _), group in _series(rows, "n_frames").items():
            axes.plot(
                [row["params"]["n_frames"] for row in group],
                [_median(row) for row in group],
                marker="o",
                label=implementation,
                color=_ROLE_COLOURS[group[0]["role"]],
            )
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("frames")
        axes.set_ylabel(f"{operation}: seconds")
        axes.legend(fontsize=8)


def _plot_tiled_labels(figure, case: dict) -> None:
    """Time and working memory against chunk size.

    One colour per implementation, one line style per image size.
    """
    time_axes, memory_axes = figure.subplots(1, 2)
    colours = {"nima_lessons": "tab:blue", "dask_image": "tab:orange", "scipy": "tab:gray"}
    sizes = sorted({row["params"]["size_px"] for row in case["rows"]})
    for size, style in zip(sizes, itertools.cycle(("-", ":", "-.", "--"))):
        rows = [row for row in case["rows"] if row["params"]["size_px"] == size]
        for implementation in dict.fromkeys(row["implementation"] for row in rows):
            group = [row for row in rows if row["implementation"] == implementation]
            chunked = sorted(
                (row for row in group if row["params"].get("chunk_px")),
                key=lambda row: row["params"]["chunk_px"],
            )
            label = f"{implementation} {size} px"
            colour = colours.get(implementation)
            if chunked:
                x = [row["params"]["chunk_px"] for row in chunked]
                time_axes.plot(
                    x,
                    [_median(row) for row in chunked],
                    style,
                    marker="o",
                    color=colour,
                    label=label,
                )
                memory_axes.plot(
                    x,
                    [(row["work_rss_bytes"] or 0) / 1e6 for row in chunked],
                    style,
                    marker="o",
                    color=colour,
                    label=label,
                )
            else:
                # The whole-image reference has no chunks: a horizontal line.
                time_axes.axhline(
                    _median(group[0]), linestyle=style, color=colour, label=f"{label} (whole)"
                )
                memory_axes.axhline(
                    (group[0]["work_rss_bytes"] or 0) / 1e6,
                    linestyle=style,
                    color=colour,
                    label=f"{label} (whole)",
                )
    time_axes.set_yscale("log")
    memory_axes.set_ylim(bottom=0)
    for axes, ylabel in ((time_axes, "seconds"), (memory_axes, "peak memory above baseline (MB)")):
        axes.set_xscale("log", base=2)
        axes.set_xlabel("chunk side (px)")
        axes.set_ylabel(ylabel)
        axes.legend(fontsize=7)


def _plot_streaming(figure, case: dict) -> None:
    """Peak memory (whole process) and time against the number of time points."""
    memory_axes, time_axes = figure.subplots(1, 2)
    for (implementation, _), group in _series(case["rows"], "n_t").items():
        x = [row["params"]["n_t"] for row in group]
        colour = _ROLE_COLOURS[group[0]["role"]]
        memory_axes.plot(
            x,
            [(row["peak_rss_bytes"] or 0) / 1e6 for row in group],
            marker="o",
            label=implementation,
            color=colour,
        )
        time_axes.plot(
            x, [_median(row) for row in group], marker="o", label=implementation, color=colour
        )
    for axes, ylabel in ((memory_axes, "peak RSS of the process (MB)"), (time_axes, "seconds")):
        axes.set_xlabel("time points T")
        axes.set_ylabel(ylabel)
        axes.set_ylim(bottom=0)
        axes.legend(fontsize=8)


def _plot_overlap_cost(figure, case: dict) -> None:
    """Time relative to the whole image against tile size, one line per depth."""
    axes = figure.subplots()
    tiled = [row for row in case["rows"] if row["params"].get("tile_px")]
    for depth in sorted({row["params"]["depth_px"] for row in tiled}):
        group = sorted(
            (row for row in tiled if row["params"]["depth_px"] == depth),
            key=lambda row: row["params"]["tile_px"],
        )
        axes.plot(
            [row["params"]["tile_px"] for row in group],
            [row["metrics"]["relative_to_whole"] for row in group],
            marker="o",
            label=f"depth {depth} px",
        )
    axes.axhline(1.0, color="gray", linestyle="--", label="whole image")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("tile side (px)")
    axes.set_ylabel("time / whole-image time")
    axes.legend(fontsize=8)


def _plot_schedulers(figure, case: dict) -> None:
    """Seconds per scheduler, one panel per workload, anchor and ours side by side."""
    timed = [row for row in case["rows"] if row["seconds"] and row["operation"] != "start"]
    workloads = list(dict.fromkeys(row["operation"] for row in timed))
    panels = np.atleast_1d(figure.subplots(1, max(len(workloads), 1)))
    for axes, workload in zip(panels, workloads):
        rows = [row for row in timed if row["operation"] == workload]
        schedulers = list(dict.fromkeys(row["params"]["scheduler"] for row in rows))
        roles = [role for role in ("anchor", "ours") if any(row["role"] == role for row in rows)]
        width = 0.8 / len(roles)
        for offset, role in enumerate(roles):
            by_scheduler = {
                row["params"]["scheduler"]: _median(row) for row in rows if row["role"] == role
            }
            positions = np.arange(len(schedulers)) + (offset - (len(roles) - 1) / 2) * width
            implementation = next(row["implementation"] for row in rows if row["role"] == role)
            axes.bar(
                positions,
                [by_scheduler.get(name, np.nan) for name in schedulers],
                width,
                color=_ROLE_COLOURS[role],
                label=implementation,
            )
        axes.set_xticks(np.arange(len(schedulers)), schedulers, fontsize=8, rotation=20)
        axes.set_yscale("log")
        axes.set_title(workload, fontsize=9)
        axes.set_ylabel("seconds (log)")
        axes.legend(fontsize=7)


_PLOTTERS = {
    "nima_table": _plot_nima_table,
    "lazy_stack": _plot_lazy_stack,
    "tiled_labels": _plot_tiled_labels,
    "streaming": _plot_streaming,
    "overlap_cost": _plot_overlap_cost,
    "schedulers": _plot_schedulers,
}
