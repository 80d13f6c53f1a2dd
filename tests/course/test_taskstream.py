"""Task-stream tables and figures: checked against records written out by hand, and against
the futures of a real cluster's computation.

Figures are drawn with the Agg backend; the checks read the bars back from the matplotlib
artists.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from nima_lessons.course.taskstream import (
    ACTION_COLOURS,
    OTHER_COLOUR,
    OTHER_PREFIX,
    plot_task_stream,
    plot_worker_load,
    prefix_colours,
    task_table,
)

A, B = "tcp://127.0.0.1:40001", "tcp://127.0.0.1:40002"
TOKEN = "0123456789abcdef0123456789abcdef"


def record(key, worker, *steps, thread=7):
    return {
        "key": key,
        "worker": worker,
        "thread": thread,
        "status": "OK",
        "startstops": [{"action": a, "start": s, "stop": e} for a, s, e in steps],
    }


# Worker A reads twice and fetches one block from B for its sum; B reads once.
RECORDS = [
    record((f"read-{TOKEN}", 0), A, ("compute", 100.0, 101.0)),
    record((f"read-{TOKEN}", 1), B, ("compute", 100.5, 102.5)),
    record((f"read-{TOKEN}", 2), A, ("compute", 101.0, 101.5)),
    record(f"sum-{TOKEN}", A, ("transfer", 102.5, 102.75), ("compute", 102.75, 103.0)),
]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_table_has_one_row_per_step_in_seconds_from_the_first_start():
    table = task_table(RECORDS)
    assert list(table["prefix"]) == ["read", "read", "read", "sum", "sum"]
    assert list(table["action"]) == ["compute", "compute", "compute", "transfer", "compute"]
    assert list(table["worker"]) == ["worker 0", "worker 1", "worker 0", "worker 0", "worker 0"]
    np.testing.assert_allclose(table["start"], [0.0, 0.5, 1.0, 2.5, 2.75])
    np.testing.assert_allclose(table["seconds"], [1.0, 2.0, 0.5, 0.25, 0.25])
    assert table["key"].iloc[0] == str((f"read-{TOKEN}", 0))


def test_table_uses_the_names_given_for_workers():
    table = task_table(RECORDS, worker_names={A: "left", B: "right"})
    assert set(table["worker"]) == {"left", "right"}


def test_a_record_without_its_steps_is_refused_by_index_and_field():
    broken = [RECORDS[0], {"key": "x", "worker": A, "thread": 1}]
    with pytest.raises(ValueError, match=r"record 1 lacks startstops"):
        task_table(broken)


def test_prefixes_are_coloured_by_compute_time_and_the_rest_grey():
    table = task_table(RECORDS)
    assert list(prefix_colours(table)) == ["read", "sum"]  # 3.5 s against 0.25 s
    only_one = prefix_colours(table, max_prefixes=1)
    assert only_one["sum"] == OTHER_COLOUR and only_one["read"] != OTHER_COLOUR
    assert ACTION_COLOURS["transfer"] not in prefix_colours(table).values()
    with pytest.raises(ValueError, match="max_prefixes"):
        prefix_colours(table, max_prefixes=0)


def bars(ax):
    """(row, start, seconds, full height?) of every bar drawn on ``ax``."""
    found = []
    for collection in ax.collections:
        for path in collection.get_paths():
            (x0, y0), (x1, y1) = path.get_extents().get_points()
            found.append((round((y0 + y1) / 2), x0, x1 - x0, y1 - y0 > 0.5))
    return sorted(found)


def test_task_stream_draws_each_step_on_its_worker_row():
    figure = plot_task_stream(task_table(RECORDS))
    ax = figure.axes[0]
    drawn = bars(ax)
    expected = [  # row 0 = worker 0 (A), row 1 = worker 1 (B); transfers are thin
        (0, 0.0, 1.0, True),
        (0, 1.0, 0.5, True),
        (0, 2.5, 0.25, False),
        (0, 2.75, 0.25, True),
        (1, 0.5, 2.0, True),
    ]
    assert len(drawn) == len(expected)
    for got, want in zip(drawn, expected, strict=True):
        assert got[0] == want[0] and got[3] == want[3]
        np.testing.assert_allclose(got[1:3], want[1:3], atol=1e-9)
    assert [label.get_text() for label in ax.get_yticklabels()] == ["worker 0", "worker 1"]
    # prefixes by compute time, then what was not computing
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["read", "sum", "transfer"]


def test_an_action_without_a_colour_of_its_own_is_drawn_grey_and_named():
    records = [*RECORDS, record(f"sum-{TOKEN}", B, ("deserialize", 103.0, 103.5))]
    ax = plot_task_stream(task_table(records)).axes[0]
    legend = ax.get_legend()
    names = [text.get_text() for text in legend.get_texts()]
    assert names == ["read", "sum", "transfer", "deserialize"]
    assert matplotlib.colors.to_hex(legend.legend_handles[-1].get_facecolor()) == OTHER_COLOUR


def test_rows_name_threads_when_a_worker_has_several():
    records = [*RECORDS, record(f"read-{TOKEN}", B, ("compute", 100.0, 100.2), thread=8)]
    ax = plot_task_stream(task_table(records)).axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == [
        "worker 0, thread 7",
        "worker 1, thread 7",
        "worker 1, thread 8",
    ]


def test_worker_load_counts_and_sums_the_computing_of_each_worker():
    figure = plot_worker_load(task_table(RECORDS), max_prefixes=1)
    counts, seconds = figure.axes[:2]
    # Stacked bars per worker: for each prefix (read, then other = sum), one bar per worker.
    widths = [[patch.get_width() for patch in container] for container in counts.containers]
    assert widths == [[2, 1], [1, 0]]
    widths = [[patch.get_width() for patch in container] for container in seconds.containers]
    np.testing.assert_allclose(widths, [[1.5, 2.0], [0.25, 0.0]])
    legend = [text.get_text() for text in seconds.get_legend().get_texts()]
    assert legend == ["read", OTHER_PREFIX]


@pytest.mark.distributed
def test_records_of_a_real_cluster_give_one_compute_row_per_future():
    from distributed import Client, LocalCluster, get_task_stream

    def add_one(x):
        return x + 1

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        with get_task_stream(client) as stream:
            futures = client.map(add_one, range(6))
            assert client.gather(futures) == list(range(1, 7))
        table = task_table(stream.data)
        workers = set(client.scheduler_info()["workers"])
    computed = table[table["action"] == "compute"]
    assert sorted(computed["key"]) == sorted(str(future.key) for future in futures)
    assert set(computed["prefix"]) == {"add_one"}
    assert set(computed["worker"]) <= {f"worker {i}" for i in range(len(workers))}
    assert (computed["seconds"] >= 0).all() and computed["start"].min() == 0
