"""The ``nima-lessons pipeline`` subcommand: run the lazy nima pipeline on an image.

Reads INPUT lazily, builds the pipeline and saves the result chunk by chunk on the
chosen dask scheduler, with a progress bar; optionally writes the per-cell table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
import xarray as xr

from nima_lessons.cluster import SCHEDULER_CHOICES, use_scheduler, validate_scheduler


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Attach the ``pipeline`` subcommand to ``subparsers``."""
    from nima_lessons.pipeline import BACKGROUND_METHODS, FOOTPRINTS, THRESHOLD_METHODS

    parser = subparsers.add_parser(
        "pipeline",
        help="run the lazy nima ratiometric pipeline on an image and save the result",
        description="Read INPUT lazily (TIFF folder or pattern, multi-dimensional TIFF, "
        "zarr / OME-Zarr), correct, segment and compute the ratio image plane by plane, "
        "and write the result to OUTPUT (zarr, or netCDF for a .nc name) chunk by chunk.",
    )
    parser.add_argument("input", metavar="INPUT", help="image folder, pattern, TIFF or zarr")
    parser.add_argument("output", metavar="OUTPUT", help="result store (.zarr) or file (.nc)")
    parser.add_argument("--dark", metavar="PATH", help="dark frame, (Y, X) or (C, Y, X) TIFF")
    parser.add_argument("--flat", metavar="PATH", help="flat field, (Y, X) or (C, Y, X) TIFF")
    parser.add_argument(
        "--channels",
        metavar="NAMES",
        help="channels to keep, comma-separated (G,R,C), or renamed (0=G,1=R,2=C)",
    )
    parser.add_argument(
        "--scheduler",
        default="threads",
        metavar="NAME",
        help=f"{' | '.join(SCHEDULER_CHOICES)} | tcp://ADDRESS (default: threads)",
    )
    parser.add_argument("--workers", type=int, help="worker processes for --scheduler distributed")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--resume", action="store_true", help="finish an interrupted zarr save")
    parser.add_argument("--table", metavar="CSV", help="also write the per-cell table here")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    steps = parser.add_argument_group("pipeline options")
    steps.add_argument("--median-radius", type=int, default=1, help="0 skips (default: 1)")
    steps.add_argument("--median-footprint", choices=FOOTPRINTS, default="disk")
    steps.add_argument("--background", choices=BACKGROUND_METHODS, default="li")
    steps.add_argument("--background-percentile", type=float, default=10.0)
    steps.add_argument("--segment", choices=tuple(THRESHOLD_METHODS), default="li")
    steps.add_argument("--min-size", type=int, default=20, help="smallest cell, pixels")
    steps.add_argument("--watershed", action="store_true", help="split touching cells")
    steps.add_argument("--numerator", default="G", help="ratio numerator channel")
    steps.add_argument("--denominator", default="C", help="ratio denominator channel")
    steps.add_argument("--ratio-smooth-radius", type=int, default=0)
    parser.set_defaults(func=run)
    return parser


def parse_channels(text: str | None) -> list[str] | dict[str, str] | None:
    """Turn ``"G,R,C"`` into a list and ``"0=G,1=R"`` into a renaming dict.

    Examples
    --------
    >>> parse_channels("0=G, 2=C")
    {'0': 'G', '2': 'C'}
    >>> parse_channels("G,C")
    ['G', 'C']
    """
    if not text:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    renames = [item for item in items if "=" in item]
    if not renames:
        return items
    if len(renames) != len(items):
        raise ValueError(f"--channels {text!r}: give either names or old=new pairs, not both")
    pairs = [item.split("=", 1) for item in items]
    return {old.strip(): new.strip() for old, new in pairs}


def read_frame(path: str, source: xr.DataArray, channels) -> xr.DataArray:
    """Read a dark or flat frame and name its channels like the image's.

    A (C, Y, X) frame follows the channel order of the source before
    ``--channels``; it goes through the same selection and renaming.
    """
    from nima_lessons.io import select_channels

    if not Path(path).exists():
        raise FileNotFoundError(f"no such dark/flat frame: {path}")
    values = np.load(path) if path.endswith(".npy") else tifffile.imread(path)
    values = np.squeeze(values)
    if values.ndim == 2:
        return xr.DataArray(values, dims=("Y", "X"))
    if values.ndim != 3 or values.shape[0] != source.sizes["C"]:
        raise ValueError(
            f"{path} has shape {values.shape}; expected (Y, X) or ({source.sizes['C']}, Y, X) "
            "with one frame per channel of the input"
        )
    frame = xr.DataArray(values, dims=("C", "Y", "X"), coords={"C": source["C"].values})
    return select_channels(frame, channels)


def build_config(args: argparse.Namespace):
    """Return the PipelineConfig described by the command-line options."""
    from nima_lessons.pipeline import PipelineConfig

    return PipelineConfig(
        median_radius=args.median_radius,
        median_footprint=args.median_footprint,
        background_method=args.background,
        background_percentile=args.background_percentile,
        segment_method=args.segment,
        min_size=args.min_size,
        watershed=args.watershed,
        numerator=args.numerator,
        denominator=args.denominator,
        ratio_smooth_radius=args.ratio_smooth_radius,
    )


def run(args: argparse.Namespace) -> int:
    """Run the pipeline from INPUT to OUTPUT; return the exit status."""
    from nima_lessons.io import read_image, select_channels
    from nima_lessons.pipeline import measure, run_pipeline, save
    from nima_lessons.store import open_result

    scheduler = validate_scheduler(args.scheduler)
    config = build_config(args)
    channels = parse_channels(args.channels)
    source = read_image(args.input)
    image = select_channels(source, channels)
    dark = read_frame(args.dark, source, channels) if args.dark else None
    flat = read_frame(args.flat, source, channels) if args.flat else None
    table_path = Path(args.table) if args.table else None
    if table_path is not None and table_path.exists() and not args.overwrite:
        raise FileExistsError(f"{table_path} already exists; pass --overwrite to replace it")
    result = run_pipeline(image, dark, flat, config)
    progress = not args.no_progress
    with use_scheduler(scheduler, n_workers=args.workers):
        output = save(
            result, args.output, overwrite=args.overwrite, resume=args.resume, progress=progress
        )
        print(f"saved {', '.join(result.data_vars)} {dict(image.sizes)} to {output}")
        if table_path is not None:
            stored = open_result(output)
            table = measure(stored["image"], stored["labels"], config.numerator, config.denominator)
            _write_table(table, table_path, args.overwrite)
            print(f"wrote {len(table)} rows (time point x cell) to {table_path}")
    return 0


def _write_table(table, path: Path, overwrite: bool) -> None:
    from nima_lessons._atomic import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        table.to_csv(tmp, index=False)
