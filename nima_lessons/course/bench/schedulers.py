"""Case 6: the same graphs on dask's schedulers, synchronous, threads, processes and a LocalCluster.

The workloads are smaller versions of case 1 (shading then median of a whole
stack) and case 3 (labelling a chunked mask), anchor and ours on each scheduler.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import dask
import dask.array as da

from nima_lessons.course.bench import nima_table, tiled_labels
from nima_lessons.course.bench.harness import (
    comparison,
    measurement,
    summarize,
    time_repeats,
    usable_cores,
)

TITLE = "Schedulers: synchronous, threads, processes and a LocalCluster"
CLAIM = (
    "Whole-plane numpy work releases the GIL, so threads beat one core without the cost of "
    "moving arrays between processes that the processes scheduler and a LocalCluster pay."
)

SCHEDULERS = ("synchronous", "threads", "processes", "distributed")

PRESETS = {
    "full": {
        "stack": {"n_t": 4, "n_c": 3, "shape": [1024, 1024]},
        "mask": {"size_px": 2048, "chunk_px": 1024, "blob_px": 12},
        "schedulers": list(SCHEDULERS),
        "anchors": True,
    },
    "quick": {
        "stack": {"n_t": 2, "n_c": 3, "shape": [256, 256]},
        "mask": {"size_px": 512, "chunk_px": 256, "blob_px": 8},
        "schedulers": list(SCHEDULERS),
        "anchors": True,
    },
    # Process pools and clusters take seconds to start: the tiny preset
    # (for tests) keeps to the in-process schedulers.
    "tiny": {
        "stack": {"n_t": 2, "n_c": 2, "shape": [32, 32]},
        "mask": {"size_px": 64, "chunk_px": 32, "blob_px": 4},
        "schedulers": ["synchronous", "threads"],
        "anchors": True,
    },
}
REPEATS = {"full": 2, "quick": 1, "tiny": 1}

NIMA_WORKLOAD = "shading + median, whole stack"
LABEL_WORKLOAD = "label, whole mask"


def workloads(params: dict) -> dict[str, dict[str, tuple[str, Callable[[], object]]]]:
    """Return ``{workload: {role: (implementation, compute)}}`` for the given sizes.

    Roles are ``"ours"`` and, when ``params["anchors"]`` is true, ``"anchor"``.
    """
    stack = params["stack"]
    image, dark, flat = nima_table.make_stack(stack["n_t"], stack["n_c"], stack["shape"])
    anchor_stack = nima_table.anchor_median(nima_table.anchor_shading(image, dark, flat))
    our_stack = nima_table.our_median(nima_table.our_shading(image, dark, flat))
    mask_params = params["mask"]
    mask = da.from_array(
        tiled_labels.blob_mask(mask_params["size_px"], mask_params["blob_px"]),
        chunks=mask_params["chunk_px"],
    )

    def label_with(label):
        def compute():
            labels, n = label(mask)
            return dask.compute(n, labels.max())

        return compute

    from dask_image.ndmeasure import label as dask_image_label

    from nima_lessons.labels import label as our_label

    jobs = {
        NIMA_WORKLOAD: {
            "anchor": ("xarray + dask-image", anchor_stack.compute),
            "ours": ("nima_lessons", our_stack.compute),
        },
        LABEL_WORKLOAD: {
            "anchor": ("dask_image", label_with(dask_image_label)),
            "ours": ("nima_lessons", label_with(our_label)),
        },
    }
    if not params["anchors"]:
        for roles in jobs.values():
            del roles["anchor"]
    return jobs


def run(params: dict, repeats: int, copy_MBps: float, log: Callable[[str], None]) -> dict:
    """Time every workload, anchor and ours, on every scheduler.

    Parameters
    ----------
    params : dict
        ``stack`` (``n_t``, ``n_c``, ``shape`` as in case 1), ``mask``
        (``size_px``, ``chunk_px``, ``blob_px`` as in case 3), ``schedulers``
        (a subset of :data:`SCHEDULERS`) and ``anchors`` (time the anchors
        too, not only ours).
    repeats : int
        Timed computations per figure, after one untimed warm-up.
    copy_MBps : float
        Unused (the memory-copy reference of other cases).
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        ``rows``, ``comparisons``, ``claims`` and ``notes``.
    """
    unknown = [name for name in params["schedulers"] if name not in SCHEDULERS]
    if unknown:
        raise ValueError(f"unknown schedulers {unknown}: expected some of {SCHEDULERS}")
    log("schedulers: making the stack and the mask")
    jobs = workloads(params)
    cores = usable_cores()
    rows, comparisons = [], []
    for scheduler in params["schedulers"]:
        scheduler_rows, scheduler_comparisons = _measure_on(
            scheduler, jobs, params, cores, repeats, log
        )
        rows += scheduler_rows
        comparisons += scheduler_comparisons
    comparisons += _speedups(rows)
    notes = [
        f"{cores} workers (threads, processes, or one-thread LocalCluster workers). "
        "first_run_seconds is the first computation (worker start-up, imports, compilation); "
        "the timed repeats follow it.",
        "The processes scheduler runs on one process pool kept open for the whole case "
        "(dask's default starts a new pool of fresh interpreters for every computation: the "
        "first run shows that cost); it and a LocalCluster receive the in-memory input arrays "
        "with every graph.",
    ]
    return {"rows": rows, "comparisons": comparisons, "claims": _claims(rows), "notes": notes}


def _measure_on(
    scheduler: str, jobs: dict, params: dict, cores: int, repeats: int, log
) -> tuple[list, list]:
    """Time every workload on one scheduler; return its rows and anchor / ours comparisons."""
    rows, comparisons = [], []
    start = time.perf_counter()
    with warnings.catch_warnings(), _scheduler(scheduler, cores):
        # A LocalCluster warns about the arrays embedded in the graph; that
        # shipping cost is what this case shows.
        warnings.simplefilter("ignore", UserWarning)
        if scheduler == "distributed":
            startup = summarize([time.perf_counter() - start])
            rows.append(
                measurement(
                    "start",
                    "LocalCluster",
                    "reference",
                    {"scheduler": scheduler, "workers": cores},
                    startup,
                )
            )
        for workload, roles in jobs.items():
            measured = {}
            for role, (implementation, compute) in roles.items():
                log(f"schedulers: {scheduler}, {workload}, {implementation}")
                first = time.perf_counter()
                compute()
                first_seconds = time.perf_counter() - first
                measured[role] = measurement(
                    workload,
                    implementation,
                    role,
                    _row_params(params, workload, scheduler, cores),
                    time_repeats(compute, repeats),
                    first_run_seconds=first_seconds,
                )
                rows.append(measured[role])
            if "anchor" in measured:
                comparisons.append(comparison(measured["anchor"], measured["ours"]))
    return rows, comparisons


@contextlib.contextmanager
def _scheduler(name: str, cores: int) -> Iterator[None]:
    """Use the named scheduler; the processes scheduler keeps one pool for all computations.

    By default dask starts a fresh pool of fresh interpreters for each
    computation under the processes scheduler; one pool kept open measures the
    scheduler rather than interpreter start-up, which shows in the first run.
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


def _row_params(params: dict, workload: str, scheduler: str, cores: int) -> dict:
    sizes = params["stack"] if workload == NIMA_WORKLOAD else params["mask"]
    return {"scheduler": scheduler, "workers": cores, **sizes}


def _speedups(rows: list[dict]) -> list[dict]:
    """Each scheduler against synchronous (one core), same workload and implementation."""
    found = []
    for row in rows:
        scheduler = row["params"].get("scheduler")
        if scheduler in (None, "synchronous") or row["operation"] not in (
            NIMA_WORKLOAD,
            LABEL_WORKLOAD,
        ):
            continue
        serial = [
            other
            for other in rows
            if other["operation"] == row["operation"]
            and other["implementation"] == row["implementation"]
            and other["params"]["scheduler"] == "synchronous"
        ]
        if serial:
            found.append(
                comparison(
                    serial[0], row, what=f"synchronous / {scheduler}: speed-up over one core"
                )
            )
    return found


def _claims(rows: list[dict]) -> list[dict]:
    def median(scheduler: str) -> float | None:
        found = [
            row["seconds"]["median"]
            for row in rows
            if row["params"]["scheduler"] == scheduler
            and row["operation"] == NIMA_WORKLOAD
            and row["role"] == "ours"
        ]
        return found[0] if found else None

    claims = []
    for other in ("synchronous", "processes"):
        threads, slower = median("threads"), median(other)
        if threads and slower:
            claims.append(
                {
                    "claim": f"ours, {NIMA_WORKLOAD}: {other} time / threads time, at least 1",
                    "value": slower / threads,
                    "threshold": 1.0,
                    "holds": bool(slower >= threads),
                }
            )
    return claims
