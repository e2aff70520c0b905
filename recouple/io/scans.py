"""The scans table of a cohort store (``/scans``): one dataset per column, the
column order in the group's ``columns`` attribute; checked on the way in."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd

from ..exceptions import InputError, ShapeError
from ..validation import safe_name

__all__ = ["REQUIRED_COLUMNS", "normalise_scans"]

REQUIRED_COLUMNS = ("scan_id", "subject", "session", "group")
_STR = h5py.string_dtype("utf-8")


def _columns_from(scans) -> dict:
    if isinstance(scans, pd.DataFrame):
        return {str(c): scans[c].to_numpy() for c in scans.columns}
    if isinstance(scans, dict):
        return {str(k): np.asarray(v) for k, v in scans.items()}
    raise InputError(
        f"scans must be a pandas DataFrame or a dict of columns; got {type(scans).__name__}. "
        "Pass e.g. scans={'scan_id': [...], 'subject': [...], 'session': [...], 'group': [...]}."
    )


def normalise_scans(scans) -> dict:
    """Check a scans table and return ordered host columns (strings as str arrays)."""
    cols = _columns_from(scans)
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise InputError(
            f"scans must have the columns {', '.join(REQUIRED_COLUMNS)}; missing {', '.join(missing)} "
            f"(got {', '.join(cols)}). Add them (session and group may be constant, e.g. 'ses-1', 'all')."
        )
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) != 1:
        raise ShapeError(f"scans columns must all have the same length; got {lengths}. Fix the table.")
    out = {}
    for key, values in cols.items():
        arr = np.asarray(values)
        if arr.dtype == object or arr.dtype.kind in "USO":
            arr = np.array(["" if v is None else str(v) for v in arr.tolist()], dtype=str)
        elif arr.dtype.kind not in "biuf":
            raise InputError(
                f"scans column {key!r} must hold numbers or strings; got dtype {arr.dtype}. Convert it first."
            )
        out[key] = arr
    ids = out["scan_id"]
    if ids.size == 0:
        raise InputError("scans must hold at least one scan; got an empty table. Add rows.")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][:5].tolist()
        raise InputError(
            f"scan_id must be unique; got duplicates {dup}. Give every scan its own id "
            "(e.g. '<subject>_<session>')."
        )
    for sid in ids.tolist():  # scan ids become file names (exports): one safe-name rule
        safe_name(sid, "scan_id")
    return out


def _write_table(group, columns: dict):
    for key, arr in columns.items():
        if arr.dtype.kind == "U":
            group.create_dataset(key, data=arr.astype(object), dtype=_STR)
        else:
            group.create_dataset(key, data=arr)
    group.attrs["columns"] = json.dumps(list(columns))


def _read_table(group) -> dict:
    names = json.loads(group.attrs["columns"]) if "columns" in group.attrs else sorted(group)
    out = {}
    for key in names:
        ds = group[key]
        if h5py.check_string_dtype(ds.dtype) is not None:
            out[key] = ds.asstr()[()].astype(str)
        else:
            out[key] = ds[()]
    return out
