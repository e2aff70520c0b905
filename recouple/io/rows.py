"""Rows of HDF5 datasets read into reused buffers, by a plain ``pread`` where
the stored bytes are the values (one unfiltered chunk per row, or contiguous
storage), through HDF5 otherwise."""

from __future__ import annotations

import contextlib
import os

import h5py
import numpy as np

__all__ = ["read_rows"]


def _row_offsets(f, ds):
    """``offset(i)``: where row ``i`` of ``ds`` lies in the file as raw bytes that can be read as they are
    (``None`` for a row HDF5 has not allocated), or None when rows cannot be read that way (filters,
    external or virtual storage, chunks other than one row, a user block, another file driver)."""
    if ds.dtype.kind not in "iuf" or ds.ndim < 1 or f.userblock_size or f.driver != "sec2":
        return None
    dcpl = ds.id.get_create_plist()
    if dcpl.get_nfilters() or dcpl.get_external_count() or not ds.id.get_type().equal(h5py.h5t.py_create(ds.dtype)):
        return None  # stored bytes that HDF5 would decode or convert
    row_bytes = int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        base = ds.id.get_offset()
        return None if base is None else (lambda i: base + i * row_bytes)
    if layout != h5py.h5d.CHUNKED or ds.chunks != (1,) + tuple(ds.shape[1:]) or not hasattr(
            ds.id, "get_chunk_info_by_coord"):
        return None
    origin = (0,) * (ds.ndim - 1)

    def offset(i):
        info = ds.id.get_chunk_info_by_coord((i,) + origin)
        if info.byte_offset is None or info.filter_mask or info.size != row_bytes:
            return None
        return info.byte_offset

    return offset


def _pread_into(fd, buf, offset) -> bool:
    view = memoryview(buf.reshape(-1).view(np.uint8))
    while len(view):
        n = os.preadv(fd, [view], offset)
        if n <= 0:
            return False
        view, offset = view[n:], offset + n
    return True


def read_rows(f, path, names, start: int, stop: int):
    """Rows ``start..stop`` of the datasets ``names`` of the open file ``f`` (at ``path``), one row of each at
    a time: ``(i, (row, row, ...))``, each into one buffer per dataset reused for the next row."""
    with contextlib.ExitStack() as stack:
        dsets = [f[name] for name in names]
        bufs = [np.empty(ds.shape[1:], dtype=ds.dtype) for ds in dsets]
        offsets = [_row_offsets(f, ds) for ds in dsets]
        fd = None
        if any(o is not None for o in offsets):
            fd = os.open(path, os.O_RDONLY)
            stack.callback(os.close, fd)
        for i in range(start, stop):
            for ds, buf, offset in zip(dsets, bufs, offsets):
                at = offset(i) if offset is not None else None
                if at is None or not _pread_into(fd, buf, at):
                    ds.read_direct(buf, np.s_[i])
            yield i, tuple(bufs)
