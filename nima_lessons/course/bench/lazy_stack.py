"""Case 2: building a lazy stack of many frames, classic delayed stack against one blockwise layer.

The classic recipe (``dask.delayed`` + ``from_delayed`` + ``stack``) makes a graph
layer per frame; the blockwise stack makes one layer whatever the length.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nima_lessons.course.bench.harness import comparison, measurement, time_repeats

TITLE = "Lazy stack construction: delayed + stack against blockwise"
CLAIM = (
    "A blockwise stack has one graph layer at any length and 200,000 frames are built in under "
    "0.1 s; one of its frames costs little more than rendering that frame, while the classic "
    "delayed stack adds graph layers, build time and per-frame overhead with every frame."
)

PRESETS = {
    "full": {
        "n_frames": [2_000, 20_000, 200_000],
        "shape": [256, 256],
        "classic_limit_seconds": 60.0,
    },
    "quick": {
        "n_frames": [2_000, 20_000, 200_000],
        "shape": [32, 32],
        "classic_limit_seconds": 3.0,
    },
    "tiny": {"n_frames": [20, 200], "shape": [16, 16], "classic_limit_seconds": 5.0},
}
REPEATS = {"full": 3, "quick": 1, "tiny": 1}

CLASSIC = "delayed + from_delayed + stack"
BLOCKWISE = "blockwise (mandelbrot_stack)"


def _builders():
    from nima_lessons.course.synthetic import mandelbrot_stack, mandelbrot_stack_delayed

    return {"anchor": (CLASSIC, mandelbrot_stack_delayed), "ours": (BLOCKWISE, mandelbrot_stack)}


#: The frame computed in long stacks. Its place in the stack does not change
#: what dask does to find it (the whole graph is culled either way), and deep
#: zoom levels are all alike: uniform, every pixel at the iteration limit.
FRAME_INDEX = 1_000


def frame_index(n_frames: int) -> int:
    """The frame computed: :data:`FRAME_INDEX`, or the middle one of a shorter stack."""
    return min(n_frames // 2, FRAME_INDEX)


def graph_figures(stack) -> dict:
    """Graph layers and chunks of a lazy stack, read without materialising the graph."""
    return {"graph_layers": len(stack.__dask_graph__().layers), "chunks": int(stack.numblocks[0])}


def measure_stack(build: Callable, n_frames: int, shape, repeats: int) -> tuple[dict, dict, dict]:
    """Time building a stack and computing one of its frames.

    Returns
    -------
    build_seconds, frame_seconds : dict
        :func:`~nima_lessons.course.bench.harness.summarize` of each.
    figures : dict
        :func:`graph_figures` of the stack.
    """
    stacks = []

    def build_once():
        stacks.append(build(n_frames, shape=tuple(shape)))
        # Keep only the newest, so that two graphs never coexist.
        del stacks[:-1]

    build_seconds = time_repeats(build_once, repeats)
    stack = stacks[-1]
    index = frame_index(n_frames)
    frame_seconds = time_repeats(lambda: stack[index].compute(scheduler="synchronous"), repeats)
    return build_seconds, frame_seconds, graph_figures(stack)


def run(params: dict, repeats: int, copy_MBps: float, log: Callable[[str], None]) -> dict:
    """Measure both stacks at every length, the classic one while it stays affordable.

    Parameters
    ----------
    params : dict
        ``n_frames`` (lengths), ``shape`` (frame shape) and
        ``classic_limit_seconds``: the classic stack is skipped at a length
        where its build and frame times, scaled linearly from the previous
        length, would exceed this per repeat.
    repeats : int
        Timed builds and frame computations per length.
    copy_MBps : float
        Unused (the memory-copy reference of other cases).
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        ``rows``, ``comparisons``, ``claims`` and ``notes``.
    """
    from nima_lessons.course.synthetic import mandelbrot_frame

    builders = _builders()
    shape = tuple(params["shape"])
    rows, comparisons, notes = [], [], []
    reference = {}
    for n_frames in sorted(params["n_frames"]):
        index = frame_index(n_frames)
        if index not in reference:
            render = lambda index=index: mandelbrot_frame(index, shape=shape)  # noqa: E731
            # The warm-up compiles the renderer, as computing the stacks does.
            reference[index] = time_repeats(render, repeats, warmup=render)
        row_params = {"n_frames": n_frames, "shape": list(shape), "frame": index}
        rows.append(
            measurement(
                "compute one frame",
                "mandelbrot_frame (numpy)",
                "reference",
                row_params,
                reference[index],
            )
        )
        measured = {}
        for role in ("anchor", "ours"):
            implementation, build = builders[role]
            if role == "anchor" and _too_slow(rows, n_frames, params["classic_limit_seconds"]):
                notes.append(
                    f"{implementation} skipped at {n_frames:,} frames: scaled from the shorter "
                    f"stack it would take over {params['classic_limit_seconds']:g} s per repeat."
                )
                log(f"lazy_stack: classic stack skipped at {n_frames} frames")
                continue
            log(f"lazy_stack: {implementation}, {n_frames} frames")
            start = time.perf_counter()
            build_seconds, frame_seconds, figures = measure_stack(build, n_frames, shape, repeats)
            log(f"lazy_stack: {time.perf_counter() - start:.1f} s")
            measured[role] = (
                measurement("build", implementation, role, row_params, build_seconds, **figures),
                measurement(
                    "compute one frame", implementation, role, row_params, frame_seconds, **figures
                ),
            )
            rows.extend(measured[role])
        if len(measured) == 2:
            for anchor_row, ours_row in zip(measured["anchor"], measured["ours"]):
                comparisons.append(comparison(anchor_row, ours_row))
            comparisons.append(
                comparison(measured["anchor"][0], measured["ours"][0], "graph_layers")
            )
    claims = _claims(rows)
    notes.append(
        "One frame is computed with the synchronous scheduler, so the figure is the graph "
        "overhead (optimisation, culling) plus the frame itself (the reference row)."
    )
    return {"rows": rows, "comparisons": comparisons, "claims": claims, "notes": notes}


def _too_slow(rows: list[dict], n_frames: int, limit_seconds: float) -> bool:
    """Predict the classic stack's time per repeat from its longest measured length."""
    classic = [row for row in rows if row["implementation"] == CLASSIC]
    if not classic:
        return False
    longest = max(row["params"]["n_frames"] for row in classic)
    per_repeat = sum(
        row["seconds"]["median"] for row in classic if row["params"]["n_frames"] == longest
    )
    return per_repeat * n_frames / longest > limit_seconds


#: Longest accepted build time of the longest blockwise stack, in seconds.
BLOCKWISE_BUILD_LIMIT_SECONDS = 0.1


def _claims(rows: list[dict]) -> list[dict]:
    ours = [row for row in rows if row["implementation"] == BLOCKWISE]
    builds = sorted(
        (row for row in ours if row["operation"] == "build"),
        key=lambda row: row["params"]["n_frames"],
    )
    longest = builds[-1]
    return [
        {
            "claim": "the blockwise stack has one graph layer at every length",
            "value": float(max(row["metrics"]["graph_layers"] for row in builds)),
            "threshold": 1.0,
            "holds": all(row["metrics"]["graph_layers"] == 1 for row in builds),
        },
        {
            "claim": f"the {longest['params']['n_frames']:,}-frame blockwise stack is built "
            f"in under "
            f"{BLOCKWISE_BUILD_LIMIT_SECONDS:g} s",
            "value": longest["seconds"]["median"],
            "threshold": BLOCKWISE_BUILD_LIMIT_SECONDS,
            "holds": bool(longest["seconds"]["median"] < BLOCKWISE_BUILD_LIMIT_SECONDS),
        },
    ]
