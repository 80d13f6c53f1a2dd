"""The ``nima-lessons data`` subcommand: generate the lesson datasets.

Each generator has its own sub-subcommand; the same argument builders serve the stand-alone
scripts in ``data_scripts/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from nima_lessons.cli._exit import exit_code
from nima_lessons.config import SIZES, data_dir, size_name, size_preset

GENERATORS = ("nuclei", "timelapse", "ratiometric", "mandelbrot")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Attach ``data`` and its generators to the top-level subparsers."""
    parser = subparsers.add_parser(
        "data",
        help="generate the synthetic lesson datasets",
        description="Generate the synthetic datasets of the lessons. Sizes default to the "
        "preset chosen by --size (or $NIMA_LESSONS_SIZE); outputs go to the data folder "
        "($NIMA_LESSONS_DATA or data/) unless --out says otherwise.",
    )
    generators = parser.add_subparsers(dest="generator", metavar="GENERATOR", required=True)
    for name, (adder, runner, summary) in _COMMANDS.items():
        sub = generators.add_parser(name, help=summary, description=summary)
        adder(sub)
        sub.set_defaults(func=runner)
    return parser


def add_common_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """Add --size, --out, --seed, --overwrite and --no-progress."""
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default=None,
        help="size preset for every size not given explicitly "
        "(default: $NIMA_LESSONS_SIZE or workshop)",
    )
    parser.add_argument("--out", type=Path, default=None, help=out_help)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing data instead of refusing"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_nuclei_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the nuclei OME-Zarr generator."""
    add_common_arguments(parser, "output store (default: <data>/<size>/nuclei.zarr)")
    _pair(parser, "--shape", "image shape in pixels (preset: 2000 5000 for workshop)")
    _pair(parser, "--chunks", "zarr chunk shape (preset: 100 100 for workshop)")


def add_timelapse_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the TIFF-folder time-lapse generator."""
    add_common_arguments(parser, "output folder (default: <data>/<size>/timelapse)")
    parser.add_argument("--n-t", type=int, default=None, help="number of time points")
    parser.add_argument("--n-c", type=int, default=None, help="number of channels")
    parser.add_argument("--n-z", type=int, default=None, help="number of Z planes")
    _pair(parser, "--shape", "plane shape in pixels")


def add_ratiometric_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ratiometric time-lapse generator."""
    add_common_arguments(parser, "output folder (default: <data>/<size>/ratiometric)")
    parser.add_argument("--n-t", type=int, default=None, help="number of time points")
    parser.add_argument("--n-z", type=int, default=None, help="number of Z planes")
    _pair(parser, "--shape", "plane shape in pixels")
    parser.add_argument("--n-cells", type=int, default=None, help="number of cells")


def add_mandelbrot_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the Mandelbrot zoom stack: describe it, find its first uniform frame."""
    parser.add_argument("--size", choices=sorted(SIZES), default=None, help="size preset")
    parser.add_argument("--n-frames", type=int, default=None, help="number of zoom levels")
    _pair(parser, "--shape", "frame shape in pixels")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also save the frames selected by --frames as a (T, Y, X) TIFF file",
    )
    parser.add_argument(
        "--frames",
        default="0:20000:1000",
        help="frames to save with --out, as START:STOP:STEP (default: 0:20000:1000)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument(
        "--seed", type=int, default=0, help="accepted for symmetry; the stack has no randomness"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_all_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``data all``: every on-disk dataset with the preset's sizes."""
    add_common_arguments(parser, "data folder (default: $NIMA_LESSONS_DATA or data/)")


def run_nuclei(args: argparse.Namespace) -> int:
    """Write the nuclei OME-Zarr store."""
    from nima_lessons.course.synthetic import write_nuclei_zarr

    preset = size_preset(args.size)
    return _write_dataset(
        args,
        "nuclei",
        write_nuclei_zarr,
        shape=tuple(args.shape or preset["nuclei_shape"]),
        chunks=tuple(args.chunks or preset["nuclei_chunks"]),
    )


def run_timelapse(args: argparse.Namespace) -> int:
    """Write the TIFF-folder time-lapse."""
    from nima_lessons.course.synthetic import write_tiff_timelapse

    sizes = size_preset(args.size)["timelapse"]
    return _write_dataset(
        args,
        "timelapse",
        write_tiff_timelapse,
        n_t=_pick(args.n_t, sizes["n_t"]),
        n_c=_pick(args.n_c, sizes["n_c"]),
        n_z=_pick(args.n_z, sizes["n_z"]),
        shape=tuple(args.shape or sizes["shape"]),
    )


def run_ratiometric(args: argparse.Namespace) -> int:
    """Write the ratiometric dataset folder."""
    from nima_lessons.course.synthetic import write_ratiometric

    sizes = size_preset(args.size)["ratiometric"]
    return _write_dataset(
        args,
        "ratiometric",
        write_ratiometric,
        n_t=_pick(args.n_t, sizes["n_t"]),
        n_z=_pick(args.n_z, sizes["n_z"]),
        shape=tuple(args.shape or sizes["shape"]),
        n_cells=_pick(args.n_cells, sizes["n_cells"]),
    )


def _write_dataset(
    args: argparse.Namespace, name: str, writer: Callable[..., Path], **sizes
) -> int:
    """Write dataset ``name`` with ``writer`` and the common options; print where it went.

    The output is ``--out``, or else the dataset's place in the data folder for
    ``--size`` and ``--seed``.
    """
    from nima_lessons.course.synthetic import dataset_path

    out = args.out or dataset_path(name, size=args.size, seed=args.seed)
    path = writer(
        out,
        **sizes,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
    )
    print(f"wrote {path}")
    return 0


def run_mandelbrot(args: argparse.Namespace) -> int:
    """Build the lazy zoom stack, report it and its first uniform frame; optionally save frames."""
    from nima_lessons.course.synthetic import first_uniform_frame, mandelbrot_stack

    preset = size_preset(args.size)
    n_frames = _pick(args.n_frames, preset["mandelbrot_frames"])
    shape = tuple(args.shape or preset["mandelbrot_shape"])
    frames = _parse_frames(args.frames, n_frames)
    start = time.perf_counter()
    stack = mandelbrot_stack(n_frames, shape)
    built = time.perf_counter() - start
    print(
        f"lazy stack {stack.shape} {stack.dtype}, chunks {stack.chunksize}, "
        f"{len(stack.dask.layers)} graph layer, built in {built * 1000:.1f} ms"
    )
    start = time.perf_counter()
    try:
        found = first_uniform_frame(stack)
    except ValueError:
        print(f"no uniform frame among the {n_frames} frames: the stack is too short")
    else:
        print(
            f"first uniform frame: {found.index} "
            f"({found.frames_computed} frames computed, {time.perf_counter() - start:.2f} s)"
        )
    if args.out is not None:
        _save_frames(stack, args.out, frames, args)
    return 0


def run_all(args: argparse.Namespace) -> int:
    """Generate (or keep, when complete) every on-disk dataset of the chosen preset."""
    from nima_lessons.course.synthetic import (
        DATASETS,
        dataset_parameters,
        dataset_path,
        ensure_dataset,
    )
    from nima_lessons.course.synthetic.datasets import is_dataset_complete

    root = args.out or data_dir()
    print(f"size preset: {size_name(args.size)}; data folder: {root}")
    for name in DATASETS:
        path = dataset_path(name, root, args.size, args.seed)
        kept = not args.overwrite and is_dataset_complete(
            name, path, dataset_parameters(name, args.size, args.seed)
        )
        path = ensure_dataset(
            name,
            size=args.size,
            root=root,
            seed=args.seed,
            progress=False if args.no_progress else None,
            overwrite=args.overwrite,
        )
        print(f"kept {path} (already complete)" if kept else f"wrote {path}")
    return 0


_COMMANDS = {
    "nuclei": (add_nuclei_arguments, run_nuclei, "nuclei image, labels and count as OME-Zarr"),
    "timelapse": (
        add_timelapse_arguments,
        run_timelapse,
        "time-lapse of drifting nuclei, one 3D TIFF per time point and channel",
    ),
    "ratiometric": (
        add_ratiometric_arguments,
        run_ratiometric,
        "ratiometric (T, C, Z, Y, X) time-lapse with dark, flat and per-cell ground truth",
    ),
    "mandelbrot": (
        add_mandelbrot_arguments,
        run_mandelbrot,
        "lazy Mandelbrot zoom stack: build it, find its first uniform frame",
    ),
    "all": (add_all_arguments, run_all, "all on-disk datasets with the preset's sizes"),
}


def _pair(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    parser.add_argument(flag, type=int, nargs=2, metavar=("Y", "X"), default=None, help=help_text)


def _pick(given, default):
    return default if given is None else given


def _parse_frames(text: str, n_frames: int) -> range:
    """Parse START:STOP:STEP (each part optional) into a range of frame indices."""
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(f"--frames must look like START:STOP:STEP, got {text!r}")
    try:
        numbers = [int(part) if part else None for part in parts]
    except ValueError as error:
        raise ValueError(f"--frames must hold integers, got {text!r}") from error
    selected = range(n_frames)[slice(*numbers)]
    if len(selected) == 0:
        raise ValueError(f"--frames {text!r} selects no frame of a {n_frames}-frame stack")
    return selected


def _save_frames(stack, out: Path, frames: range, args: argparse.Namespace) -> None:
    """Compute the selected frames (held in memory) and save them as an ImageJ TIFF."""
    import tifffile
    from tqdm.dask import TqdmCallback

    from nima_lessons._atomic import atomic_path

    selection = stack[frames.start : frames.stop : frames.step]
    with atomic_path(out, overwrite=args.overwrite) as tmp:
        with TqdmCallback(desc="frames", disable=args.no_progress):
            values = selection.compute()
        tifffile.imwrite(tmp, values, imagej=True, metadata={"axes": "TYX"})
    print(f"wrote {out} ({len(frames)} frames)")


def script_main(generator: str, argv: list[str] | None = None) -> int:
    """Run one generator as a stand-alone command (the ``data_scripts/`` wrappers).

    Parameters
    ----------
    generator : str
        One of ``nuclei``, ``timelapse``, ``ratiometric``, ``mandelbrot``, ``all``.
    argv : list of str, optional
        Command-line arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status, as for ``nima-lessons`` (see
        :data:`nima_lessons.cli._exit.EXIT_CODES`): 0 on success, 2 on a bad
        argument, 3 for an existing output, 4 when another process writes it.
    """
    adder, runner, summary = _COMMANDS[generator]
    parser = argparse.ArgumentParser(
        description=f"{summary[0].upper()}{summary[1:]}. Sizes default to the preset chosen "
        "by --size (or $NIMA_LESSONS_SIZE); outputs go to the data folder "
        "($NIMA_LESSONS_DATA or data/) unless --out says otherwise."
    )
    adder(parser)
    args = parser.parse_args(argv)
    try:
        return int(runner(args) or 0)
    except (Exception, KeyboardInterrupt) as error:
        print(f"{parser.prog}: error: {str(error) or 'interrupted'}", file=sys.stderr)
        return exit_code(error)
