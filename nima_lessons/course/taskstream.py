"""Static pictures of a distributed computation: its task stream and each worker's share.

The dashboard shows the task stream only while the cluster runs; ``distributed.get_task_stream``
keeps the records, and these functions turn them into a table and matplotlib figures that stay
in a notebook once the cluster is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd
from dask.utils import key_split

__all__ = [
    "ACTION_COLOURS",
    "OTHER_COLOUR",
    "OTHER_PREFIX",
    "PALETTE",
    "plot_task_stream",
    "plot_worker_load",
    "prefix_colours",
    "task_table",
]

#: Colours of what a worker does besides computing, as on the dashboard: transfers from other
#: workers in red; "disk-read" in orange, which distributed records whenever gathering a task's
#: inputs from its own worker took over 5 ms (inputs spilled to disk, or a busy moment).
ACTION_COLOURS = {"transfer": "#d62728", "disk-read": "#ff7f0e", "disk-write": "#ff7f0e"}
#: The colours of task prefixes: matplotlib's tab10 without its red and orange, which are
#: kept for transfers and disk access.
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: The legend entry and colour of the prefixes beyond the most time-consuming ones.
OTHER_PREFIX = "other"
OTHER_COLOUR = "#d9d9d9"
RECORD_FIELDS = ("key", "worker", "thread", "startstops")
STEP_FIELDS = ("action", "start", "stop")
COLUMNS = ["key", "prefix", "worker", "thread", "action", "start", "stop", "seconds"]


def task_table(
    records: Iterable[Mapping], worker_names: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Turn task-stream records into a table: one row per thing a task did.

    Parameters
    ----------
    records : iterable of dict
        As collected by ``distributed.get_task_stream`` (``stream.data``): each holds the
        task's ``key``, the ``worker`` address, the ``thread`` id and ``startstops``, a list
        of ``{"action": "compute" | "transfer" | ..., "start": s, "stop": s}``.
    worker_names : mapping, optional
        ``{address: name}`` to show instead of addresses; default ``"worker 0"``,
        ``"worker 1"``, ... in the order of the addresses.

    Returns
    -------
    pandas.DataFrame
        Columns ``key`` (as text), ``prefix`` (the kind of task, dask's
        ``key_split`` of the key), ``worker``, ``thread``, ``action``, ``start`` and ``stop``
        (seconds since the earliest start) and ``seconds``; sorted by start.

    Raises
    ------
    ValueError
        If a record lacks one of the fields above.

    Examples
    --------
    >>> record = {"key": ("inc-3f2a", 0), "worker": "tcp://127.0.0.1:4000", "thread": 1,
    ...           "startstops": [{"action": "compute", "start": 10.0, "stop": 10.5}]}
    >>> task_table([record])[["prefix", "worker", "start", "seconds"]].to_dict("records")
    [{'prefix': 'inc', 'worker': 'worker 0', 'start': 0.0, 'seconds': 0.5}]
    """
    rows = []
    for index, record in enumerate(records):
        missing = [field for field in RECORD_FIELDS if field not in record]
        if missing:
            raise ValueError(
                f"task-stream record {index} lacks {', '.join(missing)}: expected the records "
                "of distributed.get_task_stream (stream.data)"
            )
        task = {
            "key": str(record["key"]),
            "prefix": key_split(record["key"]),
            "worker": record["worker"],
            "thread": record["thread"],
        }
        rows += [
            {**task, **{field: step[field] for field in STEP_FIELDS}}
            for step in record["startstops"]
        ]
    table = pd.DataFrame(rows, columns=COLUMNS[:-1])
    if worker_names is None:
        worker_names = {
            address: f"worker {i}" for i, address in enumerate(sorted(set(table["worker"])))
        }
    table["worker"] = table["worker"].map(lambda address: worker_names.get(address, address))
    origin = table["start"].min() if len(table) else 0.0
    table[["start", "stop"]] -= origin
    table["seconds"] = table["stop"] - table["start"]
    return table.sort_values("start", kind="stable").reset_index(drop=True)


def prefix_colours(table: pd.DataFrame, max_prefixes: int = 8) -> dict[str, str]:
    """Colour the prefixes that took most compute time; the others are grey.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`task_table`.
    max_prefixes : int
        How many prefixes get a colour of their own (1 to 8); red and orange are kept for
        transfers and disk access.

    Returns
    -------
    dict
        ``{prefix: colour}`` for every prefix that computed, by decreasing compute time;
        the prefixes beyond ``max_prefixes`` get :data:`OTHER_COLOUR`.

    Raises
    ------
    ValueError
        If ``max_prefixes`` is out of range.
    """
    if not 1 <= max_prefixes <= len(PALETTE):
        raise ValueError(f"max_prefixes must be between 1 and {len(PALETTE)}, got {max_prefixes}")
    computed = table[table["action"] == "compute"]
    ranked = computed.groupby("prefix")["seconds"].sum().sort_values(ascending=False).index
    return {
        prefix: PALETTE[i] if i < max_prefixes else OTHER_COLOUR for i, prefix in enumerate(ranked)
    }


def _legend_kinds(table: pd.DataFrame, colours: Mapping[str, object]) -> pd.Series:
    """What every row is called in a legend: its prefix, ``other``, or its action."""
    own_colour = table["prefix"].map(
        lambda prefix: colours.get(prefix, OTHER_COLOUR) != OTHER_COLOUR
    )
    kinds = table["prefix"].where(own_colour, OTHER_PREFIX)
    return kinds.where(table["action"] == "compute", table["action"])


def _colour_map(table: pd.DataFrame, max_prefixes: int) -> dict:
    return {**prefix_colours(table, max_prefixes), OTHER_PREFIX: OTHER_COLOUR, **ACTION_COLOURS}


def plot_task_stream(table: pd.DataFrame, max_prefixes: int = 8, ax=None):
    """Draw a task stream: one row per worker thread, one bar per task, coloured by prefix.

    Computing is drawn full height; transfers (red) and disk reads or writes (orange) as thin
    bars at the bottom of the row of the thread that waited for them, as on the dashboard.
    Gaps in a row are times that thread had nothing to do.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`task_table`.
    max_prefixes : int
        Prefixes with a colour of their own (see :func:`prefix_colours`).
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = sorted(table.groupby(["worker", "thread"]).groups)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 1.2 + 0.6 * len(rows)), layout="constrained")
    colours = _colour_map(table, max_prefixes)
    kinds = _legend_kinds(table, colours)
    computing = table["action"] == "compute"
    for y, (worker, thread) in enumerate(rows):
        mine = (table["worker"] == worker) & (table["thread"] == thread)
        for part, bottom, height in (
            (mine & computing, y - 0.4, 0.8),
            (mine & ~computing, y + 0.3, 0.15),
        ):
            bars = table[part]
            ax.broken_barh(
                list(zip(bars["start"], bars["seconds"], strict=True)),
                (bottom, height),
                facecolors=[colours.get(kind, OTHER_COLOUR) for kind in kinds[part]],
                linewidth=0,
            )
    one_thread_each = len({worker for worker, _ in rows}) == len(rows)
    labels = [
        worker if one_thread_each else f"{worker}, thread {thread}" for worker, thread in rows
    ]
    ax.set_yticks(range(len(rows)), labels)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, max(table["stop"].max(), 1e-3) if len(table) else 1)
    ax.set_xlabel("seconds since the first task started")
    present = set(kinds)
    shown = [kind for kind in colours if kind in present]  # by compute time, then actions
    shown += sorted(present - set(shown))  # actions without a colour of their own
    handles = [Patch(color=colours.get(kind, OTHER_COLOUR)) for kind in shown]
    ax.legend(
        handles, shown, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False
    )
    return ax.figure


def plot_worker_load(table: pd.DataFrame, max_prefixes: int = 8):
    """Draw how many tasks each worker computed and for how long, stacked by prefix.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`task_table`.
    max_prefixes : int
        Prefixes with a colour of their own (see :func:`prefix_colours`).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels sharing the worker axis: tasks computed, and seconds spent computing.
    """
    import matplotlib.pyplot as plt

    colours = _colour_map(table, max_prefixes)
    computed = table[table["action"] == "compute"]
    computed = computed.assign(kind=_legend_kinds(computed, colours))
    order = [kind for kind in colours if kind in set(computed["kind"])]
    workers = sorted(set(computed["worker"]))
    figure, axes = plt.subplots(
        1, 2, figsize=(9, 1.4 + 0.5 * len(workers)), sharey=True, layout="constrained"
    )
    panels = (("key", "count", "tasks computed"), ("seconds", "sum", "seconds computing"))
    for ax, (column, how, title) in zip(axes, panels, strict=True):
        stacked = computed.pivot_table(
            index="worker", columns="kind", values=column, aggfunc=how, fill_value=0
        )
        stacked = stacked.reindex(index=workers, columns=order, fill_value=0)
        stacked.plot.barh(
            stacked=True, ax=ax, color=[colours[k] for k in order], width=0.6, legend=False
        )
        ax.set_xlabel(title)
        ax.set_ylabel("")
    axes[0].set_yticks(range(len(workers)), workers, minor=False)
    axes[0].set_yticks([], minor=True)
    axes[0].invert_yaxis()
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    return figure
