"""The ``nima-lessons pipeline`` subcommand: run the lazy nima pipeline on an image.

Reads INPUT lazily, builds the pipeline and saves the result chunk by chunk on the
chosen dask scheduler, with a progress bar; optionally writes the per-cell table.
The pipeline options are generated from ``PipelineConfig``; ``--preset`` picks a
named configuration whose fields explicit options override.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import re
from pathlib import Path

import numpy as np
import xarray as xr

from nima_lessons._atomic import (
    NotOurOutputError,
    check_separate,
    write_lock,
)
from nima_lessons.cli._config_options import (
    add_dataclass_options,
    option_name,
    options_to_config,
)
from nima_lessons.cli._exit import CommandInterrupted, Terminated, exit_codes_epilog, warn
from nima_lessons.cluster import (
    LOCAL_SCHEDULERS,
    SchedulerLostError,
    add_scheduler_arguments,
    security_from_arguments,
    use_scheduler,
    validate_scheduler,
)

__all__ = ["add_parser", "build_config", "parse_channels", "read_frame", "run"]

# Option names of earlier versions, still accepted.
LEGACY_OPTIONS = {"background_method": ("--background",), "segment_method": ("--segment",)}
NONFINITE_VARIABLE = "input_nonfinite"
NONFINITE_COLUMN = "nonfinite_px"
# The first columns of a table this command writes (with or without Z).
TABLE_HEADERS = ("T,label,area,", "T,Z,label,area,")
MAX_PLANES_LISTED = 10


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Attach the ``pipeline`` subcommand to ``subparsers``."""
    from nima_lessons.pipeline import PipelineConfig
    from nima_lessons.pipeline.run import PRESETS

    parser = subparsers.add_parser(
        "pipeline",
        help="run the lazy nima ratiometric pipeline on an image and save the result",
        description="Read INPUT lazily (TIFF folder or pattern, multi-dimensional TIFF, "
        "zarr / OME-Zarr), correct, segment and compute the ratio image plane by plane, "
        "and write the result to OUTPUT (zarr, or netCDF for a .nc name) chunk by chunk. "
        "Only one run at a time may write an OUTPUT; an interrupted run is finished "
        "with --resume and the same inputs and settings.",
        epilog=exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="INPUT", help="image folder, pattern, TIFF or zarr")
    parser.add_argument("output", metavar="OUTPUT", help="result store (.zarr) or file (.nc)")
    parser.add_argument("--dark", metavar="PATH", help="dark frame, (Y, X) or (C, Y, X) TIFF")
    parser.add_argument(
        "--flat", metavar="PATH", help="flat field, (Y, X) or (C, Y, X) TIFF, positive everywhere"
    )
    parser.add_argument(
        "--channels",
        metavar="NAMES",
        help="channels to keep, comma-separated (G,R,C), or renamed (0=G,1=R,2=C)",
    )
    parser.add_argument("--table", metavar="CSV", help="also write the per-cell table here")
    writing = parser.add_mutually_exclusive_group()
    writing.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an OUTPUT (and --table) that nima-lessons wrote; nothing else is ever "
        "replaced",
    )
    writing.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted run with the same inputs and settings (nothing to do "
        "when OUTPUT is complete)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="hide the progress bar (default: shown unless $NIMA_LESSONS_PROGRESS is 0)",
    )
    add_scheduler_arguments(parser)
    steps = parser.add_argument_group(
        "pipeline settings",
        "the fields of PipelineConfig; options given explicitly override the preset's values",
    )
    steps.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="named settings to start from (default: %(default)s)",
    )
    add_dataclass_options(steps, PipelineConfig, LEGACY_OPTIONS)
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


def build_config(args: argparse.Namespace):
    """Return the PipelineConfig of ``--preset`` with the options given explicitly.

    Raises
    ------
    ValueError
        Naming the option whose value the configuration refuses.
    """
    from nima_lessons.pipeline import PipelineConfig
    from nima_lessons.pipeline.run import PRESETS

    preset = getattr(args, "preset", "default")
    try:
        return options_to_config(args, PipelineConfig, PRESETS[preset])
    except (ValueError, TypeError) as error:
        raise ValueError(_name_options(str(error))) from None


def _name_options(message: str) -> str:
    """Say ``--median-radius`` where PipelineConfig's message says ``median_radius``."""
    fields = [field.name for field in dataclasses.fields(_config_class())]
    for field in sorted(fields, key=len, reverse=True):
        message = re.sub(rf"\b{field}\b", option_name(field), message)
    return message


def _config_class():
    from nima_lessons.pipeline import PipelineConfig

    return PipelineConfig


def read_frame(path: str, option: str, source: xr.DataArray, channels) -> xr.DataArray:
    """Read a dark or flat frame, check it, and name its channels like the image's.

    A (C, Y, X) frame follows the channel order of the source before
    ``--channels``; it goes through the same selection and renaming.

    Parameters
    ----------
    path : str
        TIFF or ``.npy`` file.
    option : {"--dark", "--flat"}
        The option that named it, for messages; a flat field must be positive.
    source : xarray.DataArray
        The image as read, before ``--channels``.
    channels : list or dict or None
        As parsed from ``--channels``.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming ``option``, ``path`` and what was expected.
    """
    from nima_lessons.io import select_channels

    if not Path(path).is_file():
        raise FileNotFoundError(f"{option} {path}: no such file")
    values = np.squeeze(_read_array(path, option))
    plane = (source.sizes["Y"], source.sizes["X"])
    expected = f"(Y, X) = {plane} or (C, Y, X) = ({source.sizes['C']}, {plane[0]}, {plane[1]})"
    if not np.issubdtype(values.dtype, np.number) or values.ndim not in (2, 3):
        raise ValueError(f"{option} {path} has shape {values.shape}; expected {expected}")
    if values.shape[-2:] != plane or (values.ndim == 3 and values.shape[0] != source.sizes["C"]):
        raise ValueError(
            f"{option} {path} has shape {values.shape}; expected {expected}, one frame per "
            "channel of INPUT"
        )
    _check_frame_values(values, path, option)
    if values.ndim == 2:
        return xr.DataArray(values, dims=("Y", "X"))
    frame = xr.DataArray(values, dims=("C", "Y", "X"), coords={"C": source["C"].values})
    return select_channels(frame, channels)


def _read_array(path: str, option: str) -> np.ndarray:
    import tifffile

    kind = "NumPy .npy" if path.endswith(".npy") else "TIFF"
    try:
        return np.load(path) if kind != "TIFF" else tifffile.imread(path)
    except (tifffile.TiffFileError, OSError, ValueError, EOFError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(
            f"{option} {path} is not a readable {kind} file ({reason}); expected a (Y, X) or "
            "(C, Y, X) TIFF or .npy file"
        ) from None


def _check_frame_values(values: np.ndarray, path: str, option: str) -> None:
    """Refuse NaN or infinite pixels, and a flat field that is not positive everywhere."""
    bad = ~np.isfinite(values)
    problem = "are NaN or infinite"
    if not bad.any() and option == "--flat":
        bad, problem = values <= 0, "are zero or negative"
    if not bad.any():
        return
    where = ", ".join(
        f"{dim}={index}"
        for dim, index in zip(("C", "Y", "X")[-values.ndim :], np.argwhere(bad)[0], strict=True)
    )
    why = (
        "a flat field divides every pixel, so it must be positive everywhere (such pixels "
        "would silently become 0)"
        if option == "--flat"
        else "it is subtracted from every pixel, so it must be finite"
    )
    raise ValueError(
        f"{option} {path}: {int(bad.sum())} of {values.size} pixels {problem} (first at "
        f"{where}); {why}"
    )


def run(args: argparse.Namespace) -> int:
    """Run the pipeline from INPUT to OUTPUT; return the exit status."""
    config = build_config(args)
    scheduler = validate_scheduler(args.scheduler)
    security = security_from_arguments(args)
    if args.dashboard and scheduler in LOCAL_SCHEDULERS:
        raise ValueError(
            "--dashboard needs --scheduler distributed or the address of a running scheduler; "
            f"--scheduler {scheduler} has no dashboard"
        )
    output = Path(args.output)
    table = Path(args.table) if args.table else None
    inputs = _input_paths(args)
    check_separate(output, {**inputs, "--table": table})
    if table is not None:
        check_separate(table, {**inputs, "OUTPUT": output})
        _check_table_target(table, args.overwrite)
    with write_lock(output), write_lock(table) if table else contextlib.nullcontext():
        try:
            _run_locked(args, config, scheduler, security, output, table)
        except KeyboardInterrupt as stop:
            status = 143 if isinstance(stop, Terminated) else 130
            what = "stopped by SIGTERM" if status == 143 else "interrupted"
            raise CommandInterrupted(f"{what}; {_resume_hint(output)}", status) from None
        except SchedulerLostError as error:
            raise SchedulerLostError(f"{error}; {_resume_hint(output)}") from error
    return 0


def _run_locked(args, config, scheduler, security, output: Path, table: Path | None) -> None:
    from nima_lessons.io import read_image, select_channels
    from nima_lessons.pipeline import run_pipeline
    from nima_lessons.store import is_complete, save

    channels = parse_channels(args.channels)
    source = read_image(args.input)
    image = select_channels(source, channels)
    dark = read_frame(args.dark, "--dark", source, channels) if args.dark else None
    flat = read_frame(args.flat, "--flat", source, channels) if args.flat else None
    fingerprint = _fingerprint(args, image, dark, flat, config)
    result = _with_nonfinite_counts(run_pipeline(image, dark, flat, config), image)
    already = args.resume and is_complete(output)
    progress = False if args.no_progress else None
    with use_scheduler(
        scheduler, n_workers=args.workers, dashboard=args.dashboard, security=security
    ) as client:
        if args.dashboard and client is not None:
            print(f"dask dashboard: {getattr(client, 'dashboard_link', None)}", flush=True)
        save(
            result,
            output,
            overwrite=args.overwrite,
            resume=args.resume,
            progress=progress,
            fingerprint=fingerprint,
        )
        if already:
            print(f"{output} is already complete with these inputs and settings; nothing to do")
        else:
            names = ", ".join(map(str, result.data_vars))
            print(f"saved {names} {dict(image.sizes)} to {output}")
        _report(args, config, image, output, table)


def _report(args, config, image: xr.DataArray, output: Path, table: Path | None) -> None:
    """Warn about non-finite input values; write the per-cell table when asked."""
    from nima_lessons.store import open_result

    stored = open_result(output)
    counts = stored[NONFINITE_VARIABLE]
    _warn_nonfinite(counts, args.input)
    if table is None:
        return
    from nima_lessons.pipeline import measure

    cells = measure(stored["image"], stored["labels"], config.numerator, config.denominator)
    cells = _mark_nonfinite_cells(cells, image, stored["labels"], counts)
    _write_table(cells, table, args.overwrite)
    print(f"wrote {len(cells)} rows (time point x cell) to {table}")


def _input_paths(args: argparse.Namespace) -> dict[str, str]:
    """Every path the command reads, labelled by its option, for overlap checks."""
    paths: dict[str, str] = {}
    if glob.has_magic(args.input):
        for match in sorted(glob.glob(args.input)):
            paths[f"a file of INPUT ({match})"] = match
    else:
        paths["INPUT"] = args.input
    paths.update({"--dark": args.dark, "--flat": args.flat})
    return {label: path for label, path in paths.items() if path}


def _check_table_target(table: Path, overwrite: bool) -> None:
    if not (table.exists() or table.is_symlink()):
        return
    if table.is_dir():
        raise NotOurOutputError(f"--table {table} is a folder; give the name of a CSV file")
    if not overwrite:
        raise FileExistsError(f"--table {table} already exists; pass --overwrite to replace it")
    with open(table, "rb") as handle:
        first = handle.readline(200).decode("utf-8", "replace")
    if not first.startswith(TABLE_HEADERS):
        raise NotOurOutputError(
            f"--table {table} is not a table written by nima-lessons (its first line is not "
            f"{TABLE_HEADERS[0]}...); it is never replaced: choose another name"
        )


def _fingerprint(args, image: xr.DataArray, dark, flat, config) -> dict:
    """What the result is made from and how, named by the options that set it."""
    from nima_lessons.store import describe_input

    content: dict = {
        "INPUT": describe_input(args.input, image),
        "--channels": args.channels,
        "--dark": describe_input(args.dark, dark, include_values=True) if args.dark else None,
        "--flat": describe_input(args.flat, flat, include_values=True) if args.flat else None,
    }
    for field, value in dataclasses.asdict(config).items():
        content[option_name(field)] = value
    return content


def _with_nonfinite_counts(result: xr.Dataset, image: xr.DataArray) -> xr.Dataset:
    """Add the number of NaN or infinite pixels of the input, per (T, C, Z) plane.

    Counted while the pipeline reads each plane, so the input is read once.
    """
    if np.issubdtype(image.dtype, np.inexact):
        counts = (~xr.ufuncs.isfinite(image)).sum(dim=("Y", "X")).astype(np.int64)
    else:  # integers are always finite
        counts = xr.zeros_like(image.isel(Y=0, X=0, drop=True), dtype=np.int64)
    counts.attrs["description"] = "NaN or infinite pixels of the input, per plane"
    return result.assign({NONFINITE_VARIABLE: counts.transpose("T", "C", "Z")})


def _warn_nonfinite(counts: xr.DataArray, source: str) -> None:
    values = counts.values
    planes = np.argwhere(values > 0)
    for t, c, z in planes[:MAX_PLANES_LISTED]:
        channel = counts["C"].values[c] if "C" in counts.coords else c
        warn(
            "pipeline",
            f"INPUT {source} has {values[t, c, z]} NaN or infinite values in plane T={t}, "
            f"C={channel}, Z={z}; the cells they touch get NaN means and ratio in the table "
            f"(column {NONFINITE_COLUMN})",
        )
    if len(planes) > MAX_PLANES_LISTED:
        warn("pipeline", f"... and {len(planes) - MAX_PLANES_LISTED} more planes of INPUT")


def _mark_nonfinite_cells(cells, image: xr.DataArray, labels: xr.DataArray, counts):
    """Count each cell's non-finite input pixels; blank the measurements they spoil."""
    from nima_lessons.pipeline import measure

    keys = [column for column in ("T", "Z", "label") if column in cells.columns]
    if int(counts.sum()) > 0:
        bad = (~xr.ufuncs.isfinite(image)).any(dim="C").astype(np.float64)
        bad = bad.expand_dims(C=["bad"], axis=1).assign_coords(T=labels["T"].values)
        per_cell = measure(bad, labels, None, None)
        per_cell[NONFINITE_COLUMN] = np.rint(per_cell["mean_bad"] * per_cell["area"])
        found = per_cell[[*keys, NONFINITE_COLUMN]].astype({NONFINITE_COLUMN: np.int64})
        cells = cells.merge(found, on=keys, how="left")
    else:
        cells = cells.assign(**{NONFINITE_COLUMN: 0})
    measured = [column for column in cells.columns if column.startswith("mean_")]
    measured += ["ratio"] if "ratio" in cells.columns else []
    spoiled = (cells[NONFINITE_COLUMN] > 0) | ~np.isfinite(cells[measured]).all(axis=1)
    cells.loc[spoiled, measured] = np.nan
    return cells


def _resume_hint(output: Path) -> str:
    """What an interrupted run kept of ``output``, and how to finish it."""
    from nima_lessons.store import is_complete, partial_path, save_progress

    if is_complete(output):
        return f"{output} itself is complete"
    progress = save_progress(output)
    if progress is not None:
        done, total = progress
        return (
            f"{done} of {total} regions are saved in {partial_path(output)}: run the same "
            "command with --resume to finish"
        )
    if output.suffix.lower() in (".nc", ".nc4", ".netcdf"):
        return "a netCDF file is written whole, so nothing was kept: run the same command again"
    return "nothing was saved yet: run the same command again"


def _write_table(table, path: Path, overwrite: bool) -> None:
    from nima_lessons._atomic import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        table.to_csv(tmp, index=False)
