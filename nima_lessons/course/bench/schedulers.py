"""Case ``schedulers``: the same graphs on synchronous, threads, processes and a LocalCluster.

The workloads are smaller versions of ``nima_table`` (shading then median of a whole stack)
and ``tiled_labels`` (labelling a chunked mask), anchor and ours on each scheduler.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Literal

import dask
import dask.array as da

from nima_lessons.course import plotting
from nima_lessons.course.bench import nima_table, tiled_labels
from nima_lessons.course.bench.case import Case, Context, Trial, Trials, claim, comparison, presets
from nima_lessons.course.bench.harness import usable_cores

__all__ = ["CASE"]

Scheduler = Literal["synchronous", "threads", "processes", "distributed"]
SCHEDULERS: tuple[Scheduler, ...] = ("synchronous", "threads", "processes", "distributed")
NIMA_WORKLOAD = "shading + median, whole stack"
LABEL_WORKLOAD = "label, whole mask"


def _sizes(n_t: int, n_c: int, side_px: int, mask_px: int, blob_px: int) -> tuple[dict, dict]:
    """A square stack as in ``nima_table`` and a mask in 2 x 2 chunks as in ``tiled_labels``."""
    stack = {"n_t": n_t, "n_c": n_c, "shape": [side_px, side_px]}
    return stack, {"size_px": mask_px, "chunk_px": mask_px // 2, "blob_px": blob_px}


def _workloads(params: Mapping[str, Any]) -> dict[str, dict[str, tuple[str, Callable[[], Any]]]]:
    """``{workload: {role: (implementation, compute)}}`` at the preset's sizes."""
    from dask_image.ndmeasure import label as dask_image_label

    from nima_lessons.labels import label as our_label

    stack = params["stack"]
    image, dark, flat = nima_table.make_stack(stack["n_t"], stack["n_c"], stack["shape"])
    sizes = params["mask"]
    mask = da.from_array(
        tiled_labels.blob_mask(sizes["size_px"], sizes["blob_px"]), chunks=sizes["chunk_px"]
    )

    def label_with(label: Callable[..., Any]) -> Callable[[], Any]:
        def compute() -> Any:
            labels, n = label(mask)
            return dask.compute(n, labels.max())

        return compute

    anchor_stack = nima_table.anchor_median(nima_table.anchor_shading(image, dark, flat))
    our_stack = nima_table.our_median(nima_table.our_shading(image, dark, flat))
    return {
        NIMA_WORKLOAD: {
            "anchor": ("xarray + dask-image", anchor_stack.compute),
            "ours": ("nima_lessons", our_stack.compute),
        },
        LABEL_WORKLOAD: {
            "anchor": ("dask_image", label_with(dask_image_label)),
            "ours": ("nima_lessons", label_with(our_label)),
        },
    }


@contextlib.contextmanager
def _scheduler(name: Scheduler, cores: int) -> Iterator[None]:
    """Use the named scheduler; the processes scheduler keeps one pool for all computations.

    dask's default starts a fresh pool of fresh interpreters for each computation under the
    processes scheduler; one pool kept open measures the scheduler, not interpreter start-up.
    """
    from nima_lessons.cluster import use_scheduler

    if name != "processes":
        with use_scheduler(name, n_workers=cores):
            yield
        return
    context = multiprocessing.get_context(dask.config.get("multiprocessing.context", "spawn"))
    with (
        ProcessPoolExecutor(cores, mp_context=context) as pool,
        dask.config.set(scheduler="processes", pool=pool),
    ):
        yield


def _trials(context: Context) -> Trials:
    params = context.params
    unknown = [name for name in params["schedulers"] if name not in SCHEDULERS]
    if unknown:
        raise ValueError(f"unknown schedulers {unknown}: expected some of {SCHEDULERS}")
    jobs, cores = _workloads(params), usable_cores()
    for scheduler in params["schedulers"]:
        start = time.perf_counter()
        # A LocalCluster warns about the arrays embedded in the graph: that cost is shown here.
        with warnings.catch_warnings(), _scheduler(scheduler, cores):
            warnings.simplefilter("ignore", UserWarning)
            on = {"scheduler": scheduler, "workers": cores}
            if scheduler == "distributed":
                started = [time.perf_counter() - start]
                yield Trial("start", "LocalCluster", "reference", on, seconds=started)
            for workload, roles in jobs.items():
                sizes = params["stack"] if workload == NIMA_WORKLOAD else params["mask"]
                for role, (name, compute) in roles.items():
                    yield Trial(workload, name, role, {**on, **sizes}, run=compute, first_run=True)
    context.note(
        f"{cores} workers (threads, processes, or one-thread LocalCluster workers). "
        "first_run_seconds is the first computation (worker start-up, imports, compilation); "
        "the timed repeats follow it."
    )


def _speedups(rows: list[dict]) -> list[dict]:
    """Each scheduler against synchronous (one core), same workload and implementation."""
    serial = {
        (row["operation"], row["implementation"]): row
        for row in rows
        if row["params"]["scheduler"] == "synchronous"
    }
    what = "synchronous / {}: speed-up over one core"
    return [
        comparison(serial[key], row, what=what.format(row["params"]["scheduler"]))
        for row in rows
        if row["params"]["scheduler"] != "synchronous"
        and (key := (row["operation"], row["implementation"])) in serial
    ]


def _claims(rows: list[dict], params: Mapping[str, Any], comparisons: list[dict]) -> list[dict]:
    medians = {
        row["params"]["scheduler"]: row["seconds"]["median"]
        for row in rows
        if row["operation"] == NIMA_WORKLOAD and row["role"] == "ours"
    }
    return [
        claim(
            f"ours, {NIMA_WORKLOAD}: {other} time / threads time, at least 1",
            medians[other] / medians["threads"],
            1.0,
        )
        for other in ("synchronous", "processes")
        if other in medians and "threads" in medians
    ]


CASE = Case(
    title="Schedulers: synchronous, threads, processes and a LocalCluster",
    claim="Whole-plane numpy work releases the GIL, so threads beat one core without the cost of "
    "moving arrays between processes that the processes scheduler and a LocalCluster pay.",
    # Process pools and clusters take seconds to start: tiny keeps to in-process schedulers.
    presets=presets(
        "stack mask schedulers",
        tiny=(*_sizes(2, 2, 32, 64, 4), ["synchronous", "threads"]),
        quick=(*_sizes(2, 3, 256, 512, 8), list(SCHEDULERS)),
        full=(*_sizes(4, 3, 1024, 2048, 12), list(SCHEDULERS)),
    ),
    repeats={"tiny": 1, "quick": 1, "full": 2},
    trials=_trials,
    claims=_claims,
    notes=[
        "The processes scheduler runs on one process pool kept open for the whole case (dask's "
        "default starts a new pool of fresh interpreters for every computation: the first run "
        "shows that cost); it and a LocalCluster receive the in-memory input arrays with every "
        "graph."
    ],
    figure=plotting.plot_schedulers,
    comparisons=_speedups,
)
