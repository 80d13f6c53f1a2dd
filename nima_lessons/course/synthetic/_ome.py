"""The OME-Zarr (NGFF 0.4) writing shared by the synthetic generators.

One owner for what every generated store repeats: the zarr format-2 arrays with
``"/"`` chunk keys that NGFF 0.4 asks for, and the metadata of a single-level
(T, C, Z, Y, X) image with named, coloured channels.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import zarr
from ome_zarr.format import FormatV04

with warnings.catch_warnings():
    # ome-zarr's module evaluates a deprecated default argument at import time
    warnings.simplefilter("ignore", DeprecationWarning)
    from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

__all__ = [
    "CHANNEL_COLOURS",
    "FORMAT",
    "create_ngff_array",
    "open_ngff_group",
    "write_label_metadata",
    "write_multiscales_metadata",
    "write_tczyx_metadata",
]

#: The NGFF version every generated store follows.
FORMAT = FormatV04()

#: Display colour (RRGGBB) of each channel name in the ``omero`` metadata.
CHANNEL_COLOURS = {"G": "00FF00", "R": "FF0000", "C": "00FFFF"}


def open_ngff_group(path: str) -> zarr.Group:
    """Create (replacing) the root group of an NGFF 0.4 store at ``path``."""
    return zarr.open_group(path, mode="w", zarr_format=FORMAT.zarr_format)


def create_ngff_array(
    group: zarr.Group,
    name: str,
    shape: Sequence[int],
    chunks: Sequence[int],
    dtype: np.typing.DTypeLike = np.uint16,
) -> zarr.Array:
    """Create one zero-filled array with ``"/"`` chunk keys, as NGFF 0.4 asks.

    Parameters
    ----------
    group : zarr.Group
        The group to create it in.
    name : str
        Array name, e.g. ``"0"`` for the full-resolution level.
    shape, chunks : sequence of int
        Array and chunk shapes.
    dtype : dtype-like
        Element type.

    Returns
    -------
    zarr.Array
        The new, empty array.
    """
    return group.create_array(
        name,
        shape=tuple(shape),
        chunks=tuple(chunks),
        dtype=dtype,
        chunk_key_encoding={"name": "v2", "separator": "/"},
        fill_value=0,
    )


def write_tczyx_metadata(root: zarr.Group, name: str, channels: Sequence[str]) -> None:
    """Describe array ``"0"`` of ``root`` as a one-level (T, C, Z, Y, X) image.

    Writes the ``multiscales`` metadata (unit scale) and the ``omero`` channel
    list with each channel's name, colour and display window.

    Parameters
    ----------
    root : zarr.Group
        The image group, holding the array ``"0"``.
    name : str
        Image name.
    channels : sequence of str
        Channel names in the order of the C axis; each one of :data:`CHANNEL_COLOURS`.
    """
    write_multiscales_metadata(
        root,
        [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * 5}]}],
        fmt=FORMAT,
        axes=["t", "c", "z", "y", "x"],
        name=name,
    )
    root.attrs["omero"] = {
        "channels": [
            {
                "label": channel,
                "color": CHANNEL_COLOURS[channel],
                "active": True,
                "window": {"min": 0, "max": 65535, "start": 0, "end": 4000},
            }
            for channel in channels
        ]
    }
