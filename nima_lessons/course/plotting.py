"""Figures for the tiling, counting and benchmark lessons: tiles over images, errors and costs.

Every function draws with matplotlib and returns the figure, so a lesson cell stays one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

# The lesson on overlap draws the cost rule of the core, so it is offered here too.
from nima_lessons.tiling import overlap_cost_factor

#: What :func:`plot_strategies` draws: the count error against the whole image, relative, or
#: against the true count.
StrategyError = Literal["error", "relative_error", "error_vs_truth"]
#: Colour of the tile borders drawn over images.
GRID_COLOUR = "#ffd166"
#: Grey levels and difference levels of the colour maps. Fewer colours than
#: 256 keep the stored notebook figures small and make the zero band of a
#: difference image (white) easy to read.
GREY_LEVELS = 64
DIFFERENCE_LEVELS = 17


def _grey(levels: int | None = None):
    import matplotlib.pyplot as plt

    return plt.get_cmap("gray", GREY_LEVELS if levels is None else levels)


def _difference_colours():
    import matplotlib.pyplot as plt

    return plt.get_cmap("RdBu_r", DIFFERENCE_LEVELS)


def _new_axes(n_panels: int = 1, panel_inches: float = 3.2, height_inches: float | None = None):
    import matplotlib.pyplot as plt

    height = panel_inches if height_inches is None else height_inches
    figure, axes = plt.subplots(
        1,
        n_panels,
        figsize=(panel_inches * n_panels, height),
        squeeze=False,
        layout="constrained",
    )
    return figure, list(axes[0])


def _figure_for(ax, panel_inches: float = 5.5, height_inches: float = 3.4):
    """Return the figure and axes to draw on: ``ax`` and its figure, or a new one-panel figure."""
    if ax is None:
        figure, (ax,) = _new_axes(1, panel_inches=panel_inches, height_inches=height_inches)
        return figure, ax
    return ax.figure, ax


def _finish_panel(ax, title: str, chunks=None, shape=None, origin: tuple[int, int] = (0, 0)):
    """Title an image panel, hide its axes and draw the tile borders when ``chunks`` is given."""
    if chunks is not None:
        draw_tile_grid(ax, chunks, shape, origin=origin)
    ax.set_title(title)
    ax.set_axis_off()


def _label_ticks(ax, values) -> None:
    """Put the x ticks at ``values`` exactly, labelled plainly, with no minor ticks."""
    ax.set_xticks(values, [f"{value:g}" for value in values])
    ax.minorticks_off()


def _role_colours(roles) -> list[str]:
    """Bar colour of each benchmark row role (:data:`ROLE_COLOURS`, grey when unknown)."""
    return [ROLE_COLOURS.get(role, "grey") for role in roles]


def _tile_edges(chunks, shape: tuple[int, int]) -> tuple[list[int], list[int]]:
    """Internal tile borders along Y and X, from a tile size or dask chunks."""
    import dask.array as da

    normalised = da.core.normalize_chunks(chunks, shape)
    edges = [np.cumsum(sizes)[:-1].tolist() for sizes in normalised]
    return edges[0], edges[1]


def draw_tile_grid(
    ax, chunks, shape: tuple[int, int], colour: str = GRID_COLOUR, origin: tuple[int, int] = (0, 0)
) -> None:
    """Draw the borders between tiles on an image axis.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes showing an image with ``imshow`` (pixel centres at integers).
    chunks : int, tuple or dask chunks
        Tile size, in any form ``dask.array.core.normalize_chunks`` accepts.
    shape : tuple of int
        Shape (Y, X) of the tiled image.
    colour : str
        Line colour.
    origin : tuple of int
        Position (Y, X) in the tiled image of the shown image's first pixel,
        when the axes show a crop: only borders inside the crop are drawn.

    Raises
    ------
    ValueError
        If ``shape`` is not two-dimensional.
    """
    if len(shape) != 2:
        raise ValueError(f"shape must be (Y, X), got {shape!r}")
    y_edges, x_edges = _tile_edges(chunks, tuple(shape))
    y_limits = sorted(ax.get_ylim())
    x_limits = sorted(ax.get_xlim())
    for y in y_edges:
        position = y - origin[0] - 0.5
        if y_limits[0] < position < y_limits[1]:
            ax.axhline(position, color=colour, linewidth=0.8)
    for x in x_edges:
        position = x - origin[1] - 0.5
        if x_limits[0] < position < x_limits[1]:
            ax.axvline(position, color=colour, linewidth=0.8)


def _planes(panels: Mapping, kind: str, argument: str = "panels", dtype=None) -> dict:
    """Return the panels as 2-D numpy arrays, or raise naming the offending one."""
    if not panels:
        raise ValueError(f"{argument} must hold at least one {kind}")
    images = {title: np.asarray(panel, dtype=dtype) for title, panel in panels.items()}
    for title, image in images.items():
        if image.ndim != 2:
            raise ValueError(f"{kind} {title!r} must be 2-D, got shape {image.shape}")
    return images


def show_images(panels: Mapping[str, np.ndarray], chunks=None, grey_levels: int = 16):
    """Show grey-level images side by side, optionally with the tile borders.

    Parameters
    ----------
    panels : mapping of str to array_like
        Panel title -> 2-D image, each on its own grey scale.
    chunks : int, tuple or dask chunks, optional
        Tiles drawn over every panel.
    grey_levels : int
        Number of grey levels shown. Few levels hide the camera-like noise of
        raw images, which keeps stored figures small; use 256 for full detail.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``panels`` is empty or an image is not 2-D.
    """
    images = _planes(panels, "image")
    # Panels as wide as the widest image's aspect ratio asks, within reason.
    aspect = max(image.shape[1] / max(image.shape[0], 1) for image in images.values())
    figure, axes = _new_axes(
        len(images), panel_inches=3.2 * min(max(aspect, 0.5), 3.0), height_inches=3.2
    )
    for ax, (title, image) in zip(axes, images.items(), strict=True):
        ax.imshow(image, cmap=_grey(grey_levels), interpolation="nearest")
        _finish_panel(ax, title, chunks, image.shape)
    return figure


def show_tiled_difference(whole, tiled, chunks, titles: Sequence[str] | None = None):
    """Show the whole-image result, the tiled result and their difference.

    Parameters
    ----------
    whole, tiled : array_like
        Two 2-D results of the same shape.
    chunks : int, tuple or dask chunks
        The tiles used, drawn over the tiled result and the difference.
    titles : sequence of 3 str, optional
        Panel titles.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the shapes differ or are not 2-D.
    """
    whole, tiled = np.asarray(whole, dtype=np.float64), np.asarray(tiled, dtype=np.float64)
    if whole.shape != tiled.shape or whole.ndim != 2:
        raise ValueError(
            f"whole {whole.shape} and tiled {tiled.shape} must be 2-D images of the same shape"
        )
    titles = titles or ("whole image", "in tiles", "tiled - whole")
    if len(titles) != 3:
        raise ValueError(f"titles must hold 3 strings, got {len(titles)}")
    figure, axes = _new_axes(3)
    low, high = whole.min(), whole.max()
    axes[0].imshow(whole, cmap=_grey(), vmin=low, vmax=high, interpolation="nearest")
    axes[1].imshow(tiled, cmap=_grey(), vmin=low, vmax=high, interpolation="nearest")
    _show_difference(axes[2], tiled - whole, figure)
    for index, (ax, title) in enumerate(zip(axes, titles, strict=True)):
        # the whole image has no tiles
        _finish_panel(ax, title, chunks if index else None, whole.shape)
    return figure


def _show_difference(ax, difference: np.ndarray, figure, limit: float | None = None):
    """A symmetric blue-white-red map, so that the sign of an error shows."""
    if limit is None:
        limit = float(np.abs(difference).max())
    limit = limit or 1.0
    shown = ax.imshow(
        difference, cmap=_difference_colours(), vmin=-limit, vmax=limit, interpolation="nearest"
    )
    figure.colorbar(shown, ax=ax, shrink=0.8)
    return shown


def show_differences(differences: Mapping[str, np.ndarray], chunks):
    """Show several difference images side by side, on one shared colour scale.

    Parameters
    ----------
    differences : mapping of str to array_like
        Panel title -> 2-D difference image (tiled minus whole).
    chunks : int, tuple or dask chunks
        The tiles, drawn over every panel.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``differences`` is empty or an image is not 2-D.
    """
    images = _planes(differences, "difference", argument="differences", dtype=np.float64)
    limit = max(float(np.abs(image).max()) for image in images.values()) or 1.0
    figure, axes = _new_axes(len(images))
    for ax, (title, image) in zip(axes, images.items(), strict=True):
        shown = ax.imshow(
            image, cmap=_difference_colours(), vmin=-limit, vmax=limit, interpolation="nearest"
        )
        _finish_panel(ax, title, chunks, image.shape)
    figure.colorbar(shown, ax=axes, shrink=0.8, label="tiled - whole")
    return figure


def plot_error_vs_depth(sweep, theory_depth_px: int | None = None, ax=None):
    """Plot how the tiling error falls as the overlap grows.

    Parameters
    ----------
    sweep : pandas.DataFrame
        A table of :func:`nima_lessons.tiling.overlap_sweep` for one tile size
        (columns ``depth``, ``max_abs_error``, ``rms_error``, ``signed_sum``).
    theory_depth_px : int, optional
        The overlap theory predicts (:func:`nima_lessons.tiling.overlap_for`),
        drawn as a vertical line.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If a column is missing or the table holds several tile sizes.

    Notes
    -----
    The y axis is logarithmic down to 1e-12 and linear below it
    (``symlog``), so that an exact zero error still shows as a point on the
    axis instead of vanishing.
    """
    needed = {"depth", "max_abs_error", "rms_error", "signed_sum"}
    missing = needed - set(sweep.columns)
    if missing:
        raise ValueError(f"sweep lacks the columns {sorted(missing)}")
    if "chunk_size" in sweep.columns and sweep["chunk_size"].astype(str).nunique() > 1:
        raise ValueError(
            "sweep holds several tile sizes: select one (sweep[sweep.chunk_size == ...])"
        )
    figure, ax = _figure_for(ax)
    table = sweep.sort_values("depth")
    ax.plot(table["depth"], table["max_abs_error"], "o-", label="max |tiled - whole|")
    ax.plot(table["depth"], table["rms_error"], "s-", label="RMS error")
    ax.plot(table["depth"], table["signed_sum"].abs(), "^--", label="|sum of differences|")
    ax.set_yscale("symlog", linthresh=1e-12)
    largest = float(np.nanmax(table[["max_abs_error", "rms_error"]].to_numpy()))
    largest = max(largest, float(table["signed_sum"].abs().max()), 1.0)
    top = int(np.ceil(np.log10(largest)))
    ax.set_yticks([0.0] + [10.0**e for e in range(-12, top + 1, 3)])
    ax.minorticks_off()
    if theory_depth_px is not None:
        ax.axvline(
            theory_depth_px,
            color="grey",
            linestyle=":",
            label=f"truncate x sigma = {theory_depth_px} px",
        )
    ax.set_xlabel("overlap (px on each side)")
    ax.set_ylabel("error (0 at the bottom)")
    ax.legend(fontsize="small")
    return figure


def plot_overlap_cost(tile_sizes_px: Sequence[int], depths_px: Sequence[int], ax=None):
    """Plot the work factor of overlapping 2-D tiles against the tile size.

    Parameters
    ----------
    tile_sizes_px : sequence of int
        Tile edge lengths for the x axis.
    depths_px : sequence of int
        Margins, one curve each.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, ax = _figure_for(ax)
    tiles = np.asarray(tile_sizes_px, dtype=np.float64)
    for depth in depths_px:
        ax.plot(tiles, overlap_cost_factor(tiles, depth), "o-", label=f"margin {depth} px")
    ax.axhline(1, color="grey", linewidth=0.8)
    ax.set_xscale("log", base=2)
    _label_ticks(ax, tiles)
    ax.set_yscale("log")
    ax.set_xlabel("tile size (px)")
    ax.set_ylabel("pixels read / pixels delivered")
    ax.legend(fontsize="small")
    return figure


def plot_strategies(table, y: StrategyError = "error", ax=None):
    """Plot the counting error of each strategy against the tile size.

    Parameters
    ----------
    table : pandas.DataFrame
        A table of :func:`nima_lessons.counting.compare_strategies` (columns
        ``strategy``, ``chunk_size`` and ``y``), with integer tile sizes.
    y : str
        The column to plot: ``"error"`` (against the whole-image count),
        ``"relative_error"`` or ``"error_vs_truth"``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If a column is missing.
    """
    missing = {"strategy", "chunk_size", y} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks the columns {sorted(missing)}")
    figure, ax = _figure_for(ax)
    markers = iter("osD^vx*+")
    for strategy, rows in table.groupby("strategy", sort=False):
        rows = rows.sort_values("chunk_size")
        ax.plot(rows["chunk_size"], rows[y], marker=next(markers), label=strategy)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    sizes = sorted({float(size) for size in table["chunk_size"]})
    _label_ticks(ax, sizes)
    # Linear within +-1 count, logarithmic beyond: a large naive error and an
    # error of a few nuclei both stay readable, and an exact 0 sits on the axis.
    if y != "relative_error" and table[y].abs().max() > 10:
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("tile size (px)")
    ax.set_ylabel(_STRATEGY_LABELS.get(y, y.replace("_", " ")))
    ax.legend(fontsize="small")
    return figure


_STRATEGY_LABELS = {
    "error": "tiled count - whole-image count",
    "relative_error": "(tiled - whole) / whole",
    "error_vs_truth": "tiled count - true count",
}


def label_colours(n_labels: int, seed: int = 0):
    """A colour map for label images: black background, random bright colours.

    Parameters
    ----------
    n_labels : int
        Largest label value to colour (>= 0).
    seed : int
        Seed of the colour order, so neighbours get distinct colours reproducibly.

    Returns
    -------
    matplotlib.colors.ListedColormap
        ``n_labels + 1`` colours; colour 0 is black.
    """
    from matplotlib.colors import ListedColormap, hsv_to_rgb

    if n_labels < 0:
        raise ValueError(f"n_labels must be >= 0, got {n_labels}")
    rng = np.random.default_rng(seed)
    hsv = np.column_stack(
        [rng.random(n_labels), rng.uniform(0.5, 1.0, n_labels), rng.uniform(0.7, 1.0, n_labels)]
    )
    colours = np.vstack([[0.0, 0.0, 0.0], hsv_to_rgb(hsv) if n_labels else np.empty((0, 3))])
    return ListedColormap(colours)


def show_labels(
    panels: Mapping[str, np.ndarray], chunks=None, shape=None, origin: tuple[int, int] = (0, 0)
):
    """Show label images side by side, optionally with the tile borders.

    Parameters
    ----------
    panels : mapping of str to array_like
        Panel title -> 2-D integer label image (0 is background).
    chunks : int, tuple or dask chunks, optional
        Tiles of the full image, drawn over every panel.
    shape : tuple of int, optional
        Shape of the full tiled image (needed with ``chunks`` when the panels
        are crops); the panel shape by default.
    origin : tuple of int
        Position (Y, X) of the panels' first pixel in the full image.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``panels`` is empty or a panel is not 2-D.
    """
    images = _planes(panels, "label image")
    figure, axes = _new_axes(len(images), panel_inches=4.0)
    for ax, (title, image) in zip(axes, images.items(), strict=True):
        n_labels = int(image.max()) if image.size else 0
        ax.imshow(
            image,
            cmap=label_colours(n_labels),
            vmin=0,
            vmax=max(n_labels, 1),
            interpolation="nearest",
        )
        _finish_panel(ax, title, chunks, shape or image.shape, origin)
    return figure


# ---------------------------------------------------------------- benchmark results
# The one owner of benchmark tables and figures: the lesson on benchmarks draws them,
# and so does the report of ``nima-lessons bench`` (each case's ``figure``).


def bench_rows(case: Mapping):
    """Flatten the rows of one benchmark case into a table.

    Parameters
    ----------
    case : mapping
        One entry of ``results["cases"]`` (see :mod:`nima_lessons.course.bench`).

    Returns
    -------
    pandas.DataFrame
        One row per measurement: ``operation``, ``implementation``, ``role``,
        every parameter under its own name, ``seconds`` (the median, NaN when
        not timed), ``seconds_min`` and ``seconds_max``, ``peak_MB`` and
        ``work_MB`` (NaN when not measured) and every metric.

    Raises
    ------
    ValueError
        If ``case`` has no ``rows``.
    """
    import pandas as pd

    if "rows" not in case:
        raise ValueError("case must be a benchmark case result with 'rows'")
    records = []
    for row in case["rows"]:
        seconds = row.get("seconds") or {}
        record = {
            "operation": row["operation"],
            "implementation": row["implementation"],
            "role": row["role"],
            **row.get("params", {}),
            "seconds": seconds.get("median", np.nan),
            "seconds_min": seconds.get("min", np.nan),
            "seconds_max": seconds.get("max", np.nan),
            "peak_MB": _megabytes(row.get("peak_rss_bytes")),
            "work_MB": _megabytes(row.get("work_rss_bytes")),
            **row.get("metrics", {}),
        }
        records.append(record)
    return pd.DataFrame.from_records(records)


def _megabytes(n_bytes) -> float:
    return np.nan if n_bytes is None else n_bytes / 1e6


#: Bar colours by role: the established way, ours, and a reference.
ROLE_COLOURS = {"anchor": "#8d99ae", "ours": "#2a9d8f", "reference": "#e9c46a"}

#: Pixels of one time point in the nima documentation's table: C=3 of 2048 x 2048.
SOURCE_PIXELS_PER_TIME_POINT = 3 * 2048 * 2048


def plot_nima_table(case: Mapping):
    """Seconds per time point of shading and median: anchor, ours and the source table.

    The source figures were measured on T=10, C=3, 2048 x 2048 float64; when
    the run used another plane size they are scaled by the number of pixels
    per time point (both operations do a fixed amount of work per pixel), and
    drawn as a dashed line. When the case timed the median kernel of one plane
    per dtype, a last panel shows each kernel's time over a copy of that plane.

    Parameters
    ----------
    case : mapping
        The ``nima_table`` case of a benchmark result.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = bench_rows(case)
    params = case["params"]
    pixels = params["n_c"] * int(np.prod(params["shape"]))
    scale = pixels / SOURCE_PIXELS_PER_TIME_POINT
    source = case.get("source", {})
    operations = [op for op in ("shading", "median") if op in set(rows["operation"])]
    kernels = rows[rows["operation"] == "median kernel"]
    figure, axes = _new_axes(
        len(operations) + (len(kernels) > 0), panel_inches=3.4, height_inches=3.2
    )
    if len(kernels):
        _plot_kernel_times(axes.pop(), kernels)
    for ax, operation in zip(axes, operations, strict=True):
        measured = rows[rows["operation"] == operation]
        ax.bar(
            measured["implementation"],
            measured["seconds"],
            color=_role_colours(measured["role"]),
        )
        quoted = source.get(f"{operation} seconds per time point")
        if quoted is not None:
            ax.axhline(
                quoted * scale,
                color="black",
                linestyle="--",
                label=f"source {quoted} s x {scale:.3g}",
            )
            ax.legend(fontsize="small")
        _headroom(ax)
        ax.set_title(operation)
        ax.set_ylabel("seconds per time point")
        ax.tick_params(axis="x", labelrotation=15, labelsize="small")
    return figure


def _plot_kernel_times(ax, kernels) -> None:
    """Median kernel time over plane copy time, one group of bars per dtype."""
    copies = kernels[kernels["role"] == "reference"].set_index("dtype")["seconds"]
    timed = kernels[kernels["role"] != "reference"]
    names = timed["implementation"] + " " + timed["footprint"].astype(str)
    table = (
        (timed["seconds"] / copies.reindex(timed["dtype"]).to_numpy())
        .groupby([timed["dtype"], names], sort=False)
        .first()
        .unstack()
    )
    table.plot.bar(ax=ax, rot=0)
    ax.axhline(1, color="grey", linewidth=0.8)
    ax.set_title("median kernel, one plane")
    ax.set_xlabel("")
    ax.set_ylabel("time / plane copy time")
    ax.legend(fontsize="x-small")


def plot_bench_bars(case: Mapping):
    """Median seconds of every timed row of a benchmark case, min to max as whiskers.

    The figure of a case that names no other; bars are coloured by role.

    Parameters
    ----------
    case : mapping
        One entry of ``results["cases"]``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = bench_rows(case).dropna(subset=["seconds"])
    figure, (ax,) = _new_axes(1, panel_inches=max(4.0, 0.9 * len(rows)), height_inches=3.6)
    positions = np.arange(len(rows))
    error = [rows["seconds"] - rows["seconds_min"], rows["seconds_max"] - rows["seconds"]]
    ax.bar(
        positions,
        rows["seconds"],
        yerr=error,
        capsize=3,
        color=_role_colours(rows["role"]),
    )
    labels = rows["operation"] + "\n" + rows["implementation"]
    ax.set_xticks(positions, labels, fontsize="x-small", rotation=30, ha="right")
    ax.set_ylabel("seconds (median, min-max)")
    return figure


def plot_bench_lines(
    case: Mapping,
    x: str,
    y: str = "seconds",
    by: str | Sequence[str] = "implementation",
    ax=None,
    logx: bool = False,
    logy: bool = False,
):
    """Plot one measurement of a benchmark case against a parameter, one line per group.

    Rows without a value of ``x`` (a whole-image reference has no tile size)
    are drawn as dashed horizontal lines, one per group.

    Parameters
    ----------
    case : mapping
        One entry of ``results["cases"]``.
    x : str
        The parameter on the x axis (``"n_t"``, ``"tile_px"``...).
    y : str
        The column on the y axis: ``"seconds"``, ``"peak_MB"``, ``"work_MB"``
        or a metric.
    by : str or sequence of str
        The column(s) whose values make separate lines.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.
    logx, logy : bool
        Logarithmic axes.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If a column is missing.
    """
    rows = bench_rows(case)
    keys = [by] if isinstance(by, str) else list(by)
    missing = {x, y, *keys} - set(rows.columns)
    if missing:
        raise ValueError(
            f"case rows lack the columns {sorted(missing)}: have {sorted(rows.columns)}"
        )
    rows = rows.dropna(subset=[y])
    figure, ax = _figure_for(ax, panel_inches=4.2, height_inches=3.2)
    markers = iter("osD^vx*+" * 4)
    for group, part in rows.groupby(keys, sort=False, dropna=False):
        label = ", ".join(
            f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)
            for value in group
        )
        if len(keys) == 1 and isinstance(group[0], (int, float, np.number)):
            label = f"{keys[0]} = {label}"
        placed = part.dropna(subset=[x]).sort_values(x)
        if len(placed):
            ax.plot(placed[x], placed[y], marker=next(markers), label=label)
        else:
            ax.axhline(part[y].iloc[0], linestyle="--", label=f"{label} (whole)")
    if logx:
        ax.set_xscale("log", base=2)
    values = sorted(set(rows[x].dropna()))
    _label_ticks(ax, values)
    if logy:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.legend(fontsize="x-small")
    return figure


def plot_bench_panels(
    case: Mapping,
    x: str,
    ys: Sequence[str],
    by: str | Sequence[str] = "implementation",
    logx: bool = False,
    logy: bool = False,
):
    """Plot several measurements of a benchmark case against a parameter, side by side.

    Parameters
    ----------
    case : mapping
        One entry of ``results["cases"]``.
    x : str
        The parameter on the x axis.
    ys : sequence of str
        One panel per column (see :func:`plot_bench_lines`).
    by : str or sequence of str
        The column(s) whose values make separate lines.
    logx, logy : bool
        Logarithmic axes.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``ys`` is empty or a column is missing.
    """
    if not ys:
        raise ValueError("ys must name at least one column")
    figure, axes = _new_axes(len(ys), panel_inches=4.2, height_inches=3.2)
    for ax, y in zip(axes, ys, strict=True):
        plot_bench_lines(case, x, y, by=by, ax=ax, logx=logx, logy=logy)
    return figure


def plot_schedulers(case: Mapping):
    """Seconds of each workload on each scheduler, one bar per implementation.

    Parameters
    ----------
    case : mapping
        The ``schedulers`` case of a benchmark result.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = bench_rows(case)
    rows = rows[rows["role"] != "reference"]
    workloads = list(dict.fromkeys(rows["operation"]))
    figure, axes = _new_axes(len(workloads), panel_inches=3.6, height_inches=3.2)
    for ax, workload in zip(axes, workloads, strict=True):
        table = rows[rows["operation"] == workload].pivot_table(
            index="scheduler", columns="implementation", values="seconds", sort=False
        )
        table.plot.bar(ax=ax, rot=20)
        ax.set_title(workload, fontsize="medium")
        ax.set_ylabel("seconds")
        ax.set_xlabel("")
        ax.legend(fontsize="small")
        _headroom(ax)
    return figure


def _headroom(ax, fraction: float = 0.3) -> None:
    """Raise the top of the y axis so that the legend does not hide the bars."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top + fraction * (top - bottom))


__all__ = [
    "GRID_COLOUR",
    "ROLE_COLOURS",
    "SOURCE_PIXELS_PER_TIME_POINT",
    "StrategyError",
    "bench_rows",
    "draw_tile_grid",
    "label_colours",
    "overlap_cost_factor",
    "plot_bench_bars",
    "plot_bench_lines",
    "plot_bench_panels",
    "plot_error_vs_depth",
    "plot_nima_table",
    "plot_overlap_cost",
    "plot_schedulers",
    "plot_strategies",
    "show_differences",
    "show_images",
    "show_labels",
    "show_tiled_difference",
]
