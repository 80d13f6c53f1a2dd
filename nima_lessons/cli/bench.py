"""The ``nima-lessons bench`` subcommand: measure the lessons' performance claims on this machine.

Writes ``results.json``, ``results.md`` and one PNG per case into ``--out``.
"""

from __future__ import annotations

import argparse

from nima_lessons.course.bench import CASES, PRESETS

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Attach ``bench`` to the ``nima-lessons`` subcommands."""
    parser = subparsers.add_parser(
        "bench",
        help="measure every performance claim: ours against the anchors, on this machine",
        description="Run the benchmark cases (the nima table, lazy stacks, tiled labelling, "
        "streaming, overlap cost, schedulers, real data, the tiled pipeline), each comparing "
        "the established way with nima_lessons in the same run, and write results.json, "
        "results.md and plots.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, about a minute (--preset quick)"
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        help="sizes: tiny (seconds, what the tests run), quick, full (the default), or large "
        "(a 50,000 x 50,000 plane, tiled_pipeline only: about an hour)",
    )
    parser.add_argument(
        "--case",
        dest="cases",
        action="append",
        metavar="NAME",
        choices=CASES,
        help=f"run only this case (repeatable): {', '.join(CASES)}",
    )
    parser.add_argument(
        "--out", default="bench-results", metavar="DIR", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="timed repeats per figure (default: each case's own)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier run in --out"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the selected cases; return 1 if one of them failed, else 0."""
    from nima_lessons.course.bench import run_benchmarks

    results = run_benchmarks(
        cases=args.cases,
        quick=args.quick,
        preset=args.preset,
        out=args.out,
        repeats=args.repeats,
        progress=True,
        overwrite=args.overwrite,
    )
    failed = [name for name, case in results["cases"].items() if case.get("error")]
    for name in failed:
        print(f"nima-lessons bench: case {name} failed: {results['cases'][name]['error']}")
    print(f"results: {results['files']['markdown']} and {results['files']['json']}")
    return 1 if failed else 0
