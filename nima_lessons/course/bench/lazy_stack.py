"""Case ``lazy_stack``: a stack of many frames, delayed + stack against one blockwise layer.

The classic recipe (``dask.delayed`` + ``from_delayed`` + ``stack``) makes a graph layer per
frame; the blockwise stack makes one layer whatever the length.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from nima_lessons.course import plotting
from nima_lessons.course.bench.case import Case, Context, Trial, Trials, claim, presets

__all__ = ["CASE"]

CLASSIC = "delayed + from_delayed + stack"
BLOCKWISE = "blockwise (mandelbrot_stack)"
#: Longest accepted build time of the longest blockwise stack, in seconds.
BLOCKWISE_BUILD_LIMIT_SECONDS = 0.1
#: The frame computed in long stacks. Its place does not change what dask does to find it
#: (the whole graph is culled either way), and deep zoom levels are all alike.
FRAME_INDEX = 1_000


def frame_index(n_frames: int) -> int:
    """The frame computed: :data:`FRAME_INDEX`, or the middle one of a shorter stack."""
    return min(n_frames // 2, FRAME_INDEX)


def _graph_figures(stack: Any) -> dict:
    """Graph layers and chunks of a lazy stack, read without materialising the graph."""
    return {"graph_layers": len(stack.__dask_graph__().layers), "chunks": int(stack.numblocks[0])}


def _compute_frame(kept: dict, index: int) -> Any:
    """Compute one frame of the stack built last, without threads: the graph's own overhead."""
    return kept["stack"][index].compute(scheduler="synchronous")


def _trials(context: Context) -> Trials:
    from nima_lessons.course.synthetic import (
        mandelbrot_frame,
        mandelbrot_stack,
        mandelbrot_stack_delayed,
    )

    shape, limit = tuple(context.params["shape"]), context.params["classic_limit_seconds"]
    classic_per_frame = 0.0  # seconds per frame of the classic stack, at the last length measured
    for n_frames in sorted(context.params["n_frames"]):
        index = frame_index(n_frames)
        params = {"n_frames": n_frames, "shape": list(shape), "frame": index}
        render = functools.partial(mandelbrot_frame, index, shape=shape)
        # The warm-up compiles the renderer, as computing the stacks does.
        reference = "mandelbrot_frame (numpy)"
        yield Trial("compute one frame", reference, "reference", params, run=render, warmup=render)
        for role, name, build in (
            ("anchor", CLASSIC, mandelbrot_stack_delayed),
            ("ours", BLOCKWISE, mandelbrot_stack),
        ):
            if role == "anchor" and classic_per_frame * n_frames > limit:
                context.note(
                    f"{name} skipped at {n_frames:,} frames: scaled from the shorter stack it "
                    f"would take over {limit:g} s per repeat."
                )
                continue
            kept: dict[str, Any] = {}

            def keep(stack: Any, kept: dict = kept) -> dict:
                kept["stack"] = stack  # the last one built, computed below
                return _graph_figures(stack)

            run = functools.partial(build, n_frames, shape=shape)
            compare = ("seconds", "graph_layers")
            built = yield Trial("build", name, role, params, run=run, record=keep, compare=compare)
            one_frame = functools.partial(_compute_frame, kept, index)
            computed = yield Trial(
                "compute one frame", name, role, params, run=one_frame, metrics=built["metrics"]
            )
            if role == "anchor":
                total = built["seconds"]["median"] + computed["seconds"]["median"]
                classic_per_frame = total / n_frames


def _claims(rows: list[dict], params: Mapping[str, Any], comparisons: list[dict]) -> list[dict]:
    builds = sorted(
        (row for row in rows if row["implementation"] == BLOCKWISE and row["operation"] == "build"),
        key=lambda row: row["params"]["n_frames"],
    )
    layers = max(row["metrics"]["graph_layers"] for row in builds)
    longest = builds[-1]
    return [
        claim(
            "the blockwise stack has one graph layer at every length",
            float(layers),
            1.0,
            at_least=False,
        ),
        claim(
            f"the {longest['params']['n_frames']:,}-frame blockwise stack is built in under "
            f"{BLOCKWISE_BUILD_LIMIT_SECONDS:g} s",
            longest["seconds"]["median"],
            BLOCKWISE_BUILD_LIMIT_SECONDS,
            at_least=False,
        ),
    ]


CASE = Case(
    title="Lazy stack construction: delayed + stack against blockwise",
    claim="A blockwise stack has one graph layer at any length and 200,000 frames are built in "
    "under 0.1 s; one of its frames costs little more than rendering that frame, while the "
    "classic delayed stack adds graph layers, build time and per-frame overhead with every frame.",
    presets=presets(
        "n_frames shape classic_limit_seconds",
        tiny=([20, 200], [16, 16], 5.0),
        quick=([2_000, 20_000, 200_000], [32, 32], 3.0),
        full=([2_000, 20_000, 200_000], [256, 256], 60.0),
    ),
    repeats={"tiny": 1, "quick": 1, "full": 3},
    trials=_trials,
    claims=_claims,
    notes=[
        "One frame is computed with the synchronous scheduler, so the figure is the graph "
        "overhead (optimisation, culling) plus the frame itself (the reference row)."
    ],
    figure=functools.partial(
        plotting.plot_bench_panels,
        x="n_frames",
        ys=["seconds"],
        by=["operation", "implementation"],
        logx=True,
        logy=True,
    ),
)
