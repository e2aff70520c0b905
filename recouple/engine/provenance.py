"""Provenance: what produced a result (version, parameters, seed, backend,
device, dtype, chunking, scheduler and input checksums), stored as a JSON
attribute with every result and written as a file next to exported outputs."""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
from pathlib import Path

import dask
import numpy as np

from .. import __version__
from ..io.files import atomic_write
from .backend import get_backend

__all__ = ["build_provenance", "write_provenance_file", "params_key", "file_checksums"]


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and value != value:
        return "nan"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def file_checksums(paths: dict) -> dict:
    """``{name: {"path": path, "sha256": hex digest}}`` of the input files named in
    ``paths`` (entries that are ``None`` or empty are left out), for ``inputs=``."""
    import hashlib

    out = {}
    for name, path in paths.items():
        if not path:
            continue
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[str(name)] = {"path": str(path), "sha256": h.hexdigest()}
    return out


def params_key(params: dict) -> str:
    """Canonical JSON of analysis parameters, used to decide whether a stored result can be resumed."""
    return json.dumps(_jsonable(params), sort_keys=True)


def build_provenance(*, analysis: str, params: dict, backend=None, seed=None, dtype="float64", chunking=None,
                     inputs=None, scheduler=None, extra=None) -> dict:
    """A JSON-ready provenance record for one analysis run.

    Parameters
    ----------
    analysis : str
        Result name (``results/<analysis>``).
    params : dict
        The analysis parameters that define the result.
    backend : Backend or str, optional
        Array backend used (its device is recorded too).
    seed : int, optional
    dtype : str
    chunking : dict, optional
        How the work was cut (chunk sizes, number of chunks).
    inputs : dict, optional
        ``{dataset: sha256}`` of the inputs read.
    scheduler : str, optional
        Dask scheduler used ("threads", "sync", or a distributed address).
    """
    if backend is not None and not isinstance(backend, str):
        backend_name, device = backend.name, backend.device
    else:
        be = get_backend(backend)
        backend_name, device = be.name, be.device
    dask_version = dask.__version__
    record = {
        "analysis": analysis,
        "recouple_version": __version__,
        "parameters": _jsonable(params),
        "seed": seed,
        "backend": backend_name,
        "device": device,
        "dtype": str(dtype),
        "chunking": _jsonable(chunking or {}),
        "scheduler": scheduler,
        "inputs": _jsonable(inputs or {}),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "dask": dask_version,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "user": os.environ.get("USER", ""),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        record.update(_jsonable(extra))
    return record


def write_provenance_file(output_path, provenance: dict) -> Path:
    """Write ``<output>.provenance.json`` next to an exported output and return its path."""
    out = Path(output_path)
    target = out / "provenance.json" if out.is_dir() else out.with_name(out.name + ".provenance.json")
    atomic_write(target, json.dumps(_jsonable(provenance), indent=2, sort_keys=True) + "\n")
    return target
