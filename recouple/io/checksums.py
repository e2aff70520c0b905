"""Content checksums of cohort-store datasets: what a result's inputs were.

A dataset written through the store's writers carries its SHA-256 with a
counter of the writes to it (:data:`WRITES_ATTR`, :data:`DIGEST_ATTR`): while
the counter matches, the cached value stands for the data and nothing is
read. Everything else (results, string tables, datasets from older stores) is
hashed block by block into one reused buffer. The value is the same either
way, so a cached checksum and a computed one can be compared.
"""

from __future__ import annotations

import hashlib

import h5py
import numpy as np

from ..exceptions import StoreError

__all__ = ["WRITES_ATTR", "DIGEST_ATTR", "dataset_checksums"]


def _check_cached_checksums(f, path) -> None:
    """Every cached checksum still matches its dataset's data (deep validation)."""
    names = []
    f.visititems(lambda n, o: names.append(n) if _cacheable(n, o) and _cached_digest(o) is not None else None)
    for name in names:
        if _compute_digest(f[name]) != _cached_digest(f[name]):
            raise StoreError(
                f"store {str(path)!r}: /{name} no longer matches the checksum recouple recorded when writing it "
                "(it was changed outside recouple). Record the current data with rc.store.open(path, 'r+')"
                ".refresh_checksums(), or write the dataset again with store.write_array(..., overwrite=True)."
            )


def _value_bytes(ds, sel) -> bytes:
    """The bytes of a selection's values: for variable-length strings their
    UTF-8 text (each prefixed by its length), not the object pointers."""
    if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind == "O":
        values = ds.asstr()[sel] if h5py.check_string_dtype(ds.dtype) is not None else ds[sel]
        parts = []
        for v in np.asarray(values, dtype=object).ravel().tolist():
            b = v.encode("utf-8") if isinstance(v, str) else repr(v).encode()
            parts.append(len(b).to_bytes(8, "little") + b)
        return b"".join(parts)
    return np.ascontiguousarray(ds[sel]).tobytes()


#: Attributes with which recouple's writers keep a dataset's checksum: ``recouple_writes`` counts the
#: writes to the dataset (raised before each one) and ``recouple_sha256`` holds ``"<writes>:<sha256>"``,
#: the checksum of the content as it was after write number ``<writes>``.
WRITES_ATTR = "recouple_writes"
DIGEST_ATTR = "recouple_sha256"
_READ_BLOCK = 64 << 20  # bytes per read while hashing


def _begin_write(ds) -> int:
    """Raise ``ds``'s write counter (dropping its cached checksum) before its data change; return the count."""
    writes = int(ds.attrs.get(WRITES_ATTR, 0)) + 1
    ds.attrs[WRITES_ATTR] = writes
    if DIGEST_ATTR in ds.attrs:
        del ds.attrs[DIGEST_ATTR]
    return writes


def _remember_digest(ds, writes: int, digest: str) -> None:
    ds.attrs[DIGEST_ATTR] = f"{int(writes)}:{digest}"


def _cached_digest(ds) -> str | None:
    """The checksum cached with ``ds`` when it still describes the content (its write count matches)."""
    raw = ds.attrs.get(DIGEST_ATTR)
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str):
        return None
    count, _, digest = raw.partition(":")
    writes = ds.attrs.get(WRITES_ATTR)
    if writes is None or count != str(int(writes)) or len(digest) != 64:
        return None
    return digest


def _cacheable(name, ds) -> bool:
    """Numeric input datasets written through the store's writers; results are written chunk by chunk by the
    runner, which keeps no counter, so their checksum is always computed."""
    return (isinstance(ds, h5py.Dataset) and not name.strip("/").startswith("results/")
            and ds.dtype.kind in "biuf" and h5py.check_string_dtype(ds.dtype) is None)


def _array_sha256(arr, dtype) -> str:
    """The checksum :func:`checksum` computes for a dataset of ``dtype`` holding ``arr``."""
    dtype = np.dtype(dtype)
    a = np.ascontiguousarray(np.asarray(arr), dtype=dtype)
    h = hashlib.sha256(str(("", a.shape, dtype.str)).encode())
    if a.size:
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def _hash_dataset(h, sub, ds) -> None:
    h.update(str((sub, ds.shape, ds.dtype.str)).encode())
    if not ds.ndim or ds.shape[0] == 0:
        h.update(_value_bytes(ds, ()))
        return
    if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind == "O":
        row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
        step = max(1, _READ_BLOCK // row_bytes)
        for i in range(0, ds.shape[0], step):
            h.update(_value_bytes(ds, slice(i, i + step)))
        return
    # numbers: read block by block into one reused buffer and hash it in place (no fresh memory, no copy)
    row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = max(1, min(ds.shape[0], _READ_BLOCK // row_bytes))
    buf = np.empty((step,) + tuple(ds.shape[1:]), dtype=ds.dtype)
    for i in range(0, ds.shape[0], step):
        n = min(step, ds.shape[0] - i)
        ds.read_direct(buf, np.s_[i:i + n], np.s_[0:n])
        if buf.size:
            h.update(buf[:n].reshape(-1).view(np.uint8))


def _compute_digest(obj) -> str:
    h = hashlib.sha256()
    items = []
    if isinstance(obj, h5py.Group):
        obj.visititems(lambda n, o: items.append((n, o)) if isinstance(o, h5py.Dataset) else None)
    else:
        items = [("", obj)]
    for sub, ds in items:
        _hash_dataset(h, sub, ds)
    return h.hexdigest()


def dataset_checksums(f, names, *, cached: bool = True, remember: bool = False) -> dict:
    """:func:`checksum` on an open store ``f``; ``remember`` (``f`` open for
    writing) caches each input dataset's checksum computed here, so the next
    run reads it instead of hashing the data."""
    out = {}
    for name in names:
        if name not in f:
            continue
        obj = f[name]
        use_cache = _cacheable(name, obj)
        digest = _cached_digest(obj) if (use_cache and cached) else None
        if digest is None:
            writes = int(obj.attrs.get(WRITES_ATTR, 0)) if use_cache else 0
            digest = _compute_digest(obj)
            if use_cache and remember:
                if WRITES_ATTR not in obj.attrs:
                    obj.attrs[WRITES_ATTR] = writes
                _remember_digest(obj, writes, digest)
        out[name] = digest
    return out
