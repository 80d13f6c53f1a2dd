"""What reading one tile costs on disk: contiguous files against chunked stores.

Lesson 00 compares the byte ranges a box selection needs from a C-ordered raw or ``.npy``
file with the chunk files it needs from a zarr store, recorded as zarr reads them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from zarr.storage import WrapperStore

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest, Store
    from zarr.core.buffer import Buffer, BufferPrototype

__all__ = ["RecordingStore", "contiguous_byte_ranges"]

Selection = int | slice | Sequence[int | slice]


def _box(shape: tuple[int, ...], selection: Selection) -> list[tuple[int, int]]:
    """Return the (start, stop) of a box selection along every axis of ``shape``."""
    key = tuple(selection) if isinstance(selection, (tuple, list)) else (selection,)
    if len(key) > len(shape):
        raise ValueError(
            f"selection {selection!r} has {len(key)} entries but the array has shape {shape}"
        )
    key = key + (slice(None),) * (len(shape) - len(key))
    box = []
    for axis, (item, size) in enumerate(zip(key, shape, strict=True)):
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -size <= item < size:
                raise ValueError(f"index {item} is out of bounds for axis {axis} of size {size}")
            start = int(item) % size
            box.append((start, start + 1))
        elif isinstance(item, slice):
            start, stop, step = item.indices(size)
            if step != 1:
                raise ValueError(
                    f"axis {axis}: only boxes can be mapped to byte ranges, got step {step}"
                )
            box.append((start, max(start, stop)))
        else:
            raise TypeError(f"axis {axis}: expected an integer or a slice, got {item!r}")
    return box


def contiguous_byte_ranges(
    shape: Sequence[int], dtype, selection: Selection, offset: int = 0
) -> list[tuple[int, int]]:
    """Return the byte ranges a C-ordered file holds for a box selection.

    A raw file (or the data part of an ``.npy`` file) stores an array row after
    row. Reading a box out of it needs one run of bytes per row of the box
    (fewer when the box spans whole rows: adjacent runs merge).

    Parameters
    ----------
    shape : sequence of int
        Shape of the whole array in the file.
    dtype : numpy dtype-like
        Its data type (gives the bytes per element).
    selection : int, slice or sequence of them
        The box to read, e.g. ``(slice(0, 100), slice(200, 300))``; slices need
        a step of 1, missing trailing axes are taken whole.
    offset : int
        Bytes before the array data in the file (the header of an ``.npy``
        file; ``np.load(path, mmap_mode="r").offset`` gives it).

    Returns
    -------
    list of (int, int)
        ``(start, stop)`` byte positions in the file, ascending, with adjacent
        ranges merged; empty when the box is empty.

    Raises
    ------
    ValueError
        If the selection has too many entries, a step other than 1 or an index
        out of bounds.
    TypeError
        If an entry is neither an integer nor a slice.

    Examples
    --------
    >>> contiguous_byte_ranges((4, 6), "uint16", (slice(1, 3), slice(2, 4)))
    [(16, 20), (28, 32)]
    >>> contiguous_byte_ranges((4, 6), "uint16", slice(1, 3))  # whole rows merge
    [(12, 36)]
    """
    shape = tuple(int(n) for n in shape)
    itemsize = np.dtype(dtype).itemsize
    box = _box(shape, selection)
    if any(stop <= start for start, stop in box) or not shape:
        return []
    strides = [math.prod(shape[axis + 1 :]) for axis in range(len(shape))]
    # Trailing axes taken whole join the run of the last axis that is not whole.
    inner = len(shape) - 1
    while inner > 0 and box[inner] == (0, shape[inner]):
        inner -= 1
    run = (box[inner][1] - box[inner][0]) * strides[inner] * itemsize
    ranges: list[tuple[int, int]] = []
    for index in itertools.product(*(range(a, b) for a, b in box[:inner])):
        first = sum(i * s for i, s in zip(index, strides, strict=False))
        start = offset + (first + box[inner][0] * strides[inner]) * itemsize
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], start + run)
        else:
            ranges.append((start, start + run))
    return ranges


class RecordingStore(WrapperStore):
    """A zarr store that notes every key read through it, with its size in bytes.

    Wrap a store, open the array through the wrapper, and ``reads`` lists what
    zarr fetched: metadata documents and chunk files, in the order asked for.

    Parameters
    ----------
    store : zarr store
        The store to read from, e.g. ``zarr.storage.LocalStore(path, read_only=True)``.

    Examples
    --------
    >>> import zarr
    >>> store = RecordingStore(zarr.storage.MemoryStore())
    >>> z = zarr.create_array(store, shape=(4, 4), chunks=(2, 2), dtype="uint8")
    >>> z[:] = 1
    >>> store.clear_reads()
    >>> _ = z[0:2, 1:3]
    >>> store.chunk_keys()
    ['c/0/0', 'c/0/1']
    """

    def __init__(self, store: Store, reads: list[tuple[str, int]] | None = None) -> None:
        super().__init__(store)
        self.reads: list[tuple[str, int]] = [] if reads is None else reads

    def _with_store(self, store: Store) -> RecordingStore:
        # zarr derives new wrappers (read-only views...); they share one record
        return type(self)(store, self.reads)

    def _note(self, key: str, buffer: Buffer | None) -> None:
        self.reads.append((key, 0 if buffer is None else len(buffer)))

    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Read one key from the wrapped store and note it.

        Parameters
        ----------
        key : str
            The key to read (a metadata document or a chunk file).
        prototype : zarr.core.buffer.BufferPrototype
            The kind of buffer to return.
        byte_range : zarr.abc.store.ByteRequest, optional
            The part of the value to read; ``None`` reads all of it.

        Returns
        -------
        zarr.core.buffer.Buffer or None
            The bytes read, ``None`` when the key is not stored (noted with size 0).
        """
        buffer = await self._store.get(key, prototype, byte_range)
        self._note(key, buffer)
        return buffer

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Read parts of several keys from the wrapped store and note each one.

        Parameters
        ----------
        prototype : zarr.core.buffer.BufferPrototype
            The kind of buffer to return.
        key_ranges : iterable of (str, ByteRequest or None)
            The keys to read, each with the part of its value wanted.

        Returns
        -------
        list of zarr.core.buffer.Buffer or None
            One buffer per key, in order; ``None`` for a key that is not stored.
        """
        key_ranges = list(key_ranges)
        buffers = await self._store.get_partial_values(prototype, key_ranges)
        for (key, _), buffer in zip(key_ranges, buffers, strict=True):
            self._note(key, buffer)
        return buffers

    def clear_reads(self) -> None:
        """Forget what was read so far."""
        self.reads.clear()

    def chunk_keys(self) -> list[str]:
        """Return the keys of the chunk files read (metadata documents left out), sorted."""
        metadata = (".json", ".zarray", ".zattrs", ".zgroup")
        return sorted({key for key, _ in self.reads if not key.endswith(metadata)})

    def chunk_bytes(self) -> int:
        """Return how many bytes of chunk files were read."""
        keys = set(self.chunk_keys())
        return sum(size for key, size in self.reads if key in keys)
