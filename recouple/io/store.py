"""The HDF5 cohort store: one file per cohort, a versioned schema, validation,
and lazy picklable dataset handles that tasks open for themselves.

The layout (schema version 1) is documented in ``docs/STORE.md``::

    /                 attrs: format="recouple-cohort", schema_version=1, recouple_version
    /scans/<column>   (S,) one dataset per column; attr ``columns`` keeps their order
    /regions/label    (N,) str;  /regions/hemisphere (N,) str;  /regions/centroids (N, 3) mm
                      (N = 0 in a voxel-only store: no sc/fc/ts)
    /regions/surface/{lh,rh}/{vertex_region (V,) int64, sphere (V, 3) float64}   optional
    /sc, /fc          (S, N, N) float, chunked one scan per chunk; attrs ``recouple_writes``,
                      ``recouple_sha256`` (the cached checksum, see :func:`checksum`)
    /ts               (S, N, T) parcel time series
    /voxel/mask       (X, Y, Z) uint8, attr ``affine`` (4, 4); V = number of non-zero voxels
    /voxel/bold       (S, V, T) voxel time series, voxels in C order of the mask
    /voxel/sc/<k>/{data,indices,indptr}   CSR voxel x voxel SC rows of scan k
    /voxel/profiles/{sc,fc}  (S, V, M) voxel x target profiles; /voxel/targets (M,) str
    /maps/<name>      (N,), (V,) or (S, N)/(S, V) brain maps; attr ``space``
    /results/<analysis>/<name>  outputs; attrs ``provenance`` (JSON), ``complete``;
                      ``done`` (n_chunks,) uint8 completion flags, ``chunk_bounds``

Writes of result chunks go to datasets allocated (and filled) when the
analysis starts, so a chunk write only changes raw data bytes; the flag is set
after the data has been flushed. A process killed part-way leaves a file that
opens, validates and resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import pandas as pd

from .. import __version__
from ..exceptions import InputError, ShapeError, StoreError
from ..validation import safe_name
from .checksums import (  # noqa: F401  (WRITES_ATTR, DIGEST_ATTR, dataset_checksums: public through io.store)
    DIGEST_ATTR,
    WRITES_ATTR,
    _array_sha256,
    _begin_write,
    _cacheable,
    _check_cached_checksums,
    _remember_digest,
    dataset_checksums,
)
from .files import check_room
from .rows import read_rows
from .scans import _STR, REQUIRED_COLUMNS, _read_table, _write_table, normalise_scans  # noqa: F401  (public through io.store)
from .surfaces import RegionGeometry

FORMAT = "recouple-cohort"
SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)
STACKS = ("sc", "fc", "ts")

__all__ = [
    "CohortStore",
    "LazyDataset",
    "ValidationReport",
    "create",
    "open",
    "validate",
    "checksum",
    "dataset_checksums",
    "iter_rows",
]


_REMAKE = "Re-create it with `recouple ingest` or rc.store.create(...)"


def check_header(f, path) -> None:
    """Check what every reader relies on before it reads anything: the
    ``format`` attribute, a supported integer ``schema_version`` and the
    /scans (with ``scan_id`` and a consistent ``columns`` list) and /regions
    (with ``label``) tables. Raises :class:`StoreError` saying what is wrong
    and what to do; stores made by other tools or edited by hand end here
    rather than in a KeyError."""
    where = f"store {str(path)!r}"
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if fmt != FORMAT:
        raise StoreError(
            f"{where} is an HDF5 file but not a recouple cohort store (format attribute {fmt!r}, expected "
            f"{FORMAT!r}). Create a store with rc.store.create(...) or `recouple ingest`."
        )
    if "schema_version" not in f.attrs:
        raise StoreError(
            f"{where} has no schema_version attribute (expected one of {SUPPORTED_VERSIONS}); it was not written by "
            f"recouple. {_REMAKE}."
        )
    ver = f.attrs["schema_version"]
    if isinstance(ver, np.ndarray) and ver.shape == ():
        ver = ver[()]
    if isinstance(ver, np.generic):
        ver = ver.item()
    if isinstance(ver, bytes):
        ver = ver.decode("utf-8", "replace")
    if isinstance(ver, bool) or not isinstance(ver, int):
        raise StoreError(
            f"{where} has schema_version {ver!r} ({type(ver).__name__}); it must be an integer, one of "
            f"{SUPPORTED_VERSIONS}. {_REMAKE}."
        )
    if ver not in SUPPORTED_VERSIONS:
        reads = f"this recouple reads schema version {', '.join(map(str, SUPPORTED_VERSIONS))}"
        if ver > max(SUPPORTED_VERSIONS):
            raise StoreError(
                f"{where} has schema_version {ver}; {reads}. It was written by a newer recouple: upgrade "
                f"recouple to read it, or {_REMAKE[0].lower() + _REMAKE[1:]} with this version."
            )
        raise StoreError(f"{where} has schema_version {ver}; {reads}. {_REMAKE}.")
    for grp, key in (("scans", "scan_id"), ("regions", "label")):
        if grp not in f or not isinstance(f[grp], h5py.Group):
            raise StoreError(
                f"{where} lacks the /{grp} table required by the schema (a group holding at least '{key}'). "
                f"{_REMAKE}, or add the table (see docs/STORE.md)."
            )
    scans = f["scans"]
    if "scan_id" not in scans or not isinstance(scans["scan_id"], h5py.Dataset):
        raise StoreError(f"{where}: /scans lacks the required column 'scan_id'. {_REMAKE}, or add the column.")
    if "label" not in f["regions"] or not isinstance(f["regions"]["label"], h5py.Dataset):
        raise StoreError(f"{where}: /regions lacks 'label' (one name per region). {_REMAKE}, or add the labels.")
    if "columns" in scans.attrs:
        raw = scans.attrs["columns"]
        try:
            names = json.loads(raw)
            ok = isinstance(names, list) and all(isinstance(c, str) for c in names)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise StoreError(
                f"{where}: the /scans attribute 'columns' must be a JSON list of column names; got {raw!r}. "
                "Fix it (e.g. '[\"scan_id\", \"subject\", \"session\", \"group\"]') or delete the attribute."
            )
        missing = [c for c in names if c not in scans]
        if missing:
            raise StoreError(
                f"{where}: the /scans attribute 'columns' names {missing[:5]}, which /scans does not hold. "
                "Remove them from the attribute or add the columns."
            )


def _open_h5(path, mode, *, check=True):
    """Open an HDF5 file without HDF5's own file lock, checking the store
    header (:func:`check_header`) unless ``check`` is False.

    Readers can then inspect a store (and workers read inputs) while a run
    writes its results; concurrent writers are kept apart by the runner's
    advisory lock instead. Within one process HDF5 shares a file opened for
    writing with later readers, but cannot reopen for writing a file that a
    reader holds open.
    """
    path = str(path)
    try:
        f = h5py.File(path, mode, locking=False)
    except FileNotFoundError:
        raise StoreError(
            f"store {path!r} does not exist. Create it with rc.store.create(...) or `recouple ingest`."
        ) from None
    except OSError as exc:
        hint = ("close the other handles on this store in this process (e.g. st.close()) first"
                if "already open" in str(exc) else "check that the path is a recouple store (HDF5 file)")
        raise StoreError(f"store {path!r} could not be opened in mode {mode!r} ({exc}); {hint}.") from None
    if check:
        try:
            check_header(f, path)
        except BaseException:
            f.close()
            raise
    return f


# ----------------------------------------------------------------------------- lazy handles


@dataclass(frozen=True)
class LazyDataset:
    """Picklable reference to one HDF5 dataset: a path and a dataset name.

    Indexing opens the file read-only, reads the selection and closes it, so
    the handle can travel through a Dask graph to any worker; no open HDF5
    handle is ever shipped.
    """

    path: str
    name: str
    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key):
        with _open_h5(self.path, "r") as f:
            return f[self.name][key]

    def __len__(self):
        return self.shape[0]


def iter_rows(handles, start: int, stop: int):
    """Rows ``start..stop`` of several :class:`LazyDataset` of one store, one
    row of each at a time: ``(i, (row_of_first, row_of_second, ...))``.

    The store is opened once for the whole range (instead of once per
    indexing) and every row is read into one buffer per dataset that is
    reused for the next row, so a consumer must be done with a row (or copy
    it) before asking for the next one. The values are those of
    ``handle[i]``: a row stored as one unfiltered HDF5 chunk (the layout of
    ``sc``, ``fc`` and ``ts``) or in a contiguous dataset is read from the file
    as raw bytes by a plain ``pread`` (no HDF5 call, and the interpreter lock
    is released meanwhile, so other threads compute); any other row is read
    through HDF5.
    """
    handles = tuple(handles)
    if len({h.path for h in handles}) != 1:
        raise InputError(f"handles must name datasets of one store; got {sorted({h.path for h in handles})}.")
    if start >= stop:
        return
    with _open_h5(handles[0].path, "r", check=False) as f:
        yield from read_rows(f, handles[0].path, [h.name for h in handles], start, stop)


# ----------------------------------------------------------------------------- the store


def _dataset_name(name: str) -> str:
    name = name.strip("/")
    if not name:
        raise InputError("name must be a dataset name such as 'sc', 'fc', 'ts' or 'maps/<name>'; got ''.")
    return name


class CohortStore:
    """An open cohort store.

    Use :func:`recouple.store.open` or :func:`recouple.store.create` rather
    than this constructor. The store is a context manager; in read mode the
    file is opened without taking the HDF5 file lock.

    Attributes
    ----------
    path : str
    mode : {"r", "r+"}
    """

    def __init__(self, path, mode="r"):
        if mode not in ("r", "r+", "a"):
            raise InputError(f"mode must be 'r' or 'r+'; got {mode!r}. Use 'r' to read, 'r+' to add data.")
        self.path = str(Path(path))
        self.mode = "r+" if mode == "a" else mode
        self._file = _open_h5(self.path, self.mode)  # checks format, schema version and tables

    # -- housekeeping
    @property
    def file(self) -> h5py.File:
        if not self._file:
            self._file = _open_h5(self.path, self.mode)
        return self._file

    def close(self) -> None:
        if self._file:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        try:
            return f"<CohortStore {self.path!r}: {self.n_scans} scans, {self.n_regions} regions, mode={self.mode!r}>"
        except Exception:
            return f"<CohortStore {self.path!r} (closed)>"

    def _require_writable(self):
        if self.mode == "r":
            raise StoreError(
                f"store {self.path!r} is open read-only; open it with rc.store.open(path, mode='r+') to write."
            )

    # -- tables
    @property
    def schema_version(self) -> int:
        return int(self.file.attrs["schema_version"])

    @property
    def scans(self):
        """Scans table as a pandas DataFrame (one row per scan, store order)."""
        return pd.DataFrame(_read_table(self.file["scans"]))

    @property
    def scan_ids(self) -> np.ndarray:
        return self.file["scans/scan_id"].asstr()[()].astype(str)

    @property
    def n_scans(self) -> int:
        return int(self.file["scans/scan_id"].shape[0])

    @property
    def regions(self):
        """Region table as a pandas DataFrame: label, hemisphere, x, y, z."""
        g = self.file["regions"]
        c = g["centroids"][()]
        return pd.DataFrame(
            {
                "label": g["label"].asstr()[()].astype(str),
                "hemisphere": g["hemisphere"].asstr()[()].astype(str),
                "x": c[:, 0],
                "y": c[:, 1],
                "z": c[:, 2],
            }
        )

    @property
    def labels(self) -> np.ndarray:
        return self.file["regions/label"].asstr()[()].astype(str)

    # -- region geometry
    def region_geometry(self):
        """Labels, hemisphere and centroids of the regions, with the surface parcellation if stored.

        Returns a :class:`recouple.io.surfaces.RegionGeometry`:
        ``vertex_region`` and ``sphere`` are the per-hemisphere arrays of
        ``/regions/surface/{lh,rh}`` (None in a store without them);
        ``excluded`` lists the parcellation entries left out at ingest.
        """
        g = self.file["regions"]
        n = self.n_regions
        vertex_region = sphere = None
        excluded = ()
        if "surface" in g:
            sg = g["surface"]
            check_region_surface(sg, n, self.path)
            vertex_region = tuple(sg[h]["vertex_region"][()].astype(np.int64) for h in _SURFACE_HEMIS)
            sphere = tuple(sg[h]["sphere"][()].astype(np.float64) for h in _SURFACE_HEMIS)
            excluded = tuple(json.loads(sg.attrs.get("excluded", "[]")))
        cattrs = g["centroids"].attrs
        if "excluded" in cattrs and not excluded:
            excluded = tuple(json.loads(cattrs["excluded"]))
        return RegionGeometry(
            labels=self.labels, hemisphere=g["hemisphere"].asstr()[()].astype(str),
            centroids=g["centroids"][()].astype(np.float64), vertex_region=vertex_region, sphere=sphere,
            excluded=excluded, source=str(cattrs.get("source", "")),
        )

    def write_region_geometry(self, geometry, *, sources=None):
        """Store a :class:`~recouple.io.surfaces.RegionGeometry` of this store's regions.

        Replaces ``/regions/hemisphere`` and ``/regions/centroids`` (attrs
        ``source``, ``centroid_method``, ``inputs``) and, when the geometry
        holds a surface parcellation, ``/regions/surface/{lh,rh}/
        {vertex_region, sphere}``; a stored surface parcellation is removed
        when the new geometry has none.
        """
        self._require_writable()
        n = self.n_regions
        labels = np.asarray(geometry.labels).astype(str)
        if not np.array_equal(labels, self.labels):
            raise InputError(f"geometry must be computed for this store's {n} regions in store order "
                             "(geometry.labels == store.labels); got other labels. Pass labels=store.labels.")
        cent = np.asarray(geometry.centroids, dtype=np.float64)
        hemi = np.asarray(geometry.hemisphere).astype(str)
        if cent.shape != (n, 3) or hemi.shape != (n,):
            raise ShapeError(f"geometry must hold ({n}, 3) centroids and ({n},) hemispheres; got {cent.shape} "
                             f"and {hemi.shape}.")
        g = self.file["regions"]
        g["hemisphere"][...] = hemi.astype(object)
        g["centroids"][...] = cent
        g["centroids"].attrs["source"] = str(geometry.source)
        g["centroids"].attrs["centroid_method"] = ("nearest sphere vertex to the mean of the region's vertices"
                                                   if geometry.source == "surface" else "table")
        g["centroids"].attrs["excluded"] = json.dumps(list(geometry.excluded))
        g["centroids"].attrs["inputs"] = json.dumps([str(x) for x in (sources or [])])
        if "surface" in g:
            del g["surface"]
        if geometry.vertex_region is not None:
            sg = g.create_group("surface")
            sg.attrs["excluded"] = json.dumps(list(geometry.excluded))
            for h, vr, sph in zip(_SURFACE_HEMIS, geometry.vertex_region, geometry.sphere):
                hg = sg.create_group(h)
                hg.create_dataset("vertex_region", data=np.asarray(vr, dtype=np.int64), track_times=False)
                hg.create_dataset("sphere", data=np.asarray(sph, dtype=np.float64), track_times=False)
            check_region_surface(sg, n, self.path)
        self.file.flush()

    @property
    def n_regions(self) -> int:
        return int(self.file["regions/label"].shape[0])

    def __contains__(self, name) -> bool:
        return _dataset_name(name) in self.file

    def datasets(self) -> list[str]:
        """Names of every dataset in the store (results included)."""
        out = []
        self.file.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
        return out

    # -- scans selection
    def scan_index(self, scans=None) -> np.ndarray:
        """Integer positions of a scan selection: None (all), scan ids, ints, a bool mask or a slice."""
        n = self.n_scans
        if scans is None:
            return np.arange(n)
        if isinstance(scans, slice):
            return np.arange(n)[scans]
        if isinstance(scans, (str, np.str_, int, np.integer)):
            scans = [scans]
        sel = np.asarray(scans)
        if sel.dtype == bool:
            if sel.shape != (n,):
                raise ShapeError(f"scans mask must have shape ({n},); got {sel.shape}. Pass one flag per scan.")
            return np.nonzero(sel)[0]
        if sel.dtype.kind in "iu":
            if sel.size and (sel.min() < -n or sel.max() >= n):
                raise InputError(f"scans indices must lie in [0, {n}); got {sel.tolist()[:5]}. Check the selection.")
            return np.asarray(sel % n, dtype=np.int64)
        ids = self.scan_ids
        lookup = {s: i for i, s in enumerate(ids.tolist())}
        unknown = [s for s in sel.astype(str).tolist() if s not in lookup]
        if unknown:
            raise InputError(
                f"scans must name scan ids of this store; unknown {unknown[:5]}. See store.scans['scan_id']."
            )
        return np.array([lookup[s] for s in sel.astype(str).tolist()], dtype=np.int64)

    # -- arrays
    def _get(self, name):
        name = _dataset_name(name)
        if name not in self.file:
            have = ", ".join(sorted(k for k in ("sc", "fc", "ts", "maps", "voxel", "results") if k in self.file))
            raise StoreError(
                f"store {self.path!r} has no dataset {name!r} (top level holds: {have or 'only tables'}). "
                "Write it with store.write_array(...) or ingest it."
            )
        obj = self.file[name]
        if not isinstance(obj, h5py.Dataset):
            raise StoreError(f"{name!r} in store {self.path!r} is a group, not a dataset; name one of {sorted(obj)}.")
        return obj

    def read(self, name: str, scans=None) -> np.ndarray:
        """Read dataset ``name`` ("sc", "fc", "ts", "maps/<name>", "voxel/bold", ...).

        ``scans`` selects scans along the first axis of per-scan datasets.
        """
        ds = self._get(name)
        if scans is None:
            return ds[()]
        idx = self.scan_index(scans)
        if ds.shape[0] != self.n_scans:
            raise InputError(f"scans can only select from per-scan datasets; {name!r} has shape {ds.shape}.")
        if idx.size and np.all(np.diff(idx) > 0):
            return ds[idx]
        return np.stack([ds[int(i)] for i in idx]) if idx.size else ds[0:0]

    def handle(self, name: str) -> LazyDataset:
        """Picklable lazy handle on dataset ``name`` (opened only when indexed)."""
        ds = self._get(name)
        return LazyDataset(self.path, ds.name.lstrip("/"), tuple(ds.shape), ds.dtype)

    def lazy(self, name: str, chunks=None):
        """Dataset ``name`` as a lazy ``dask.array`` (default: one scan per chunk)."""
        h = self.handle(name)
        if chunks is None:
            chunks = (1,) + tuple(h.shape[1:]) if h.ndim > 1 else h.shape
        return da.from_array(h, chunks=chunks, lock=False, asarray=True, name=f"recouple-{h.path}-{h.name}",
                             meta=np.empty((0,) * h.ndim, dtype=h.dtype))

    def _expected_shape(self, name, array):
        s, n = self.n_scans, self.n_regions
        if name in STACKS and n == 0:
            raise StoreError(f"store {self.path!r} is voxel-only (no region labels); it cannot hold {name!r}. "
                             "Create the store with the region labels (rc.store.create(..., labels=...) or "
                             "`recouple ingest --labels`) to add region matrices.")
        if name in ("sc", "fc"):
            return (s, n, n)
        if name == "ts":
            return (s, n, array.shape[-1]) if array.ndim == 3 else None
        return None

    def write_array(self, name: str, array, *, scans=None, attrs: dict | None = None, overwrite: bool = False):
        """Write an array (sc, fc, ts, maps/<name>, voxel/...) into the store.

        Per-scan stacks are stored one scan per HDF5 chunk. With ``scans`` the
        rows are written into an existing (or new, NaN-filled) dataset.
        """
        self._require_writable()
        name = _dataset_name(name)
        if name.startswith("results/"):
            raise InputError("name must not start with 'results/'; use store.write_result(analysis, name, array).")
        if name.startswith("maps/"):
            safe_name(name[len("maps/"):], "map name")
        arr = np.asarray(array)
        if arr.dtype.kind not in "biuf":
            raise InputError(f"{name} must hold numbers; got dtype {arr.dtype}. Convert it with np.asarray(..., float).")
        if scans is not None:
            idx = self.scan_index(scans)
            full = (self.n_scans,) + arr.shape[1:]
            if name not in self.file:
                self._create_stack(name, full, arr.dtype)
            ds = self.file[name]
            if ds.shape[1:] != arr.shape[1:] or arr.shape[0] != idx.size:
                raise ShapeError(
                    f"{name} rows must have shape {ds.shape[1:]} and one row per selected scan ({idx.size}); "
                    f"got {arr.shape}."
                )
            _begin_write(ds)  # the cached checksum no longer holds; the next checksum() recomputes it
            self.file.flush()
            for k, i in enumerate(idx):
                ds[int(i)] = arr[k]
        else:
            expected = self._expected_shape(name, arr)
            if expected is not None and arr.shape != expected:
                raise ShapeError(
                    f"{name} must have shape {expected} (scans x regions ...) for this store; got {arr.shape}. "
                    "Use the store's scan and region order."
                )
            if name.startswith("maps/") and arr.ndim >= 1:
                pass
            if name in self.file:
                if not overwrite:
                    raise StoreError(f"store already holds {name!r}; pass overwrite=True to replace it.")
                del self.file[name]
            per_scan = name in STACKS or name == "voxel/bold"
            if per_scan:
                ds = self._create_stack(name, arr.shape, arr.dtype)
                writes = _begin_write(ds)
                for i in range(arr.shape[0]):
                    ds[i] = arr[i]
            else:
                ds = self.file.create_dataset(name, data=arr, track_times=False)
                writes = _begin_write(ds)
            # the checksum of what was just written, from memory: runs read it instead of hashing the data
            _remember_digest(ds, writes, _array_sha256(arr, ds.dtype))
        if attrs:
            for k, v in attrs.items():
                ds.attrs[k] = v if not isinstance(v, (dict, list)) else json.dumps(v)
        self.file.flush()
        return ds.name

    def refresh_checksums(self, names=None) -> dict:
        """Recompute and cache the checksums of input datasets (all numeric
        datasets outside ``results/`` when ``names`` is None), e.g. after the
        store was edited outside recouple; returns ``{name: sha256}``."""
        self._require_writable()
        if names is None:
            names = [n for n in self.datasets() if _cacheable(n, self.file[n])]
        out = dataset_checksums(self.file, names, cached=False, remember=True)
        self.file.flush()
        return out

    def _create_stack(self, name, shape, dtype):
        chunks = (1,) + tuple(shape[1:])
        if name == "voxel/bold":
            chunks = (1, min(shape[1], 4096), shape[2])
        return self.file.create_dataset(
            name, shape=shape, dtype=dtype, chunks=chunks, fillvalue=np.nan if np.dtype(dtype).kind == "f" else 0,
            track_times=False,
        )

    # -- voxel data
    def write_voxel_mask(self, mask, affine, *, overwrite: bool = False):
        """Store the brain mask (X, Y, Z) and its (4, 4) affine; V = mask.sum()."""
        self._require_writable()
        m = np.asarray(mask)
        a = np.asarray(affine, dtype=np.float64)
        if m.ndim != 3:
            raise ShapeError(f"mask must be a 3-D volume; got shape {m.shape}. Pass the brain mask image data.")
        if a.shape != (4, 4):
            raise ShapeError(f"affine must have shape (4, 4); got {a.shape}. Pass img.affine.")
        if "voxel/mask" in self.file:
            if not overwrite:
                raise StoreError("store already holds voxel/mask; pass overwrite=True to replace it.")
            del self.file["voxel/mask"]
        ds = self.file.create_dataset("voxel/mask", data=(m != 0).astype(np.uint8), track_times=False)
        ds.attrs["affine"] = a
        self.file.flush()

    @property
    def voxel_mask(self) -> np.ndarray:
        return self._get("voxel/mask")[()].astype(bool)

    @property
    def voxel_affine(self) -> np.ndarray:
        return np.asarray(self._get("voxel/mask").attrs["affine"])

    @property
    def n_voxels(self) -> int:
        return int(self._get("voxel/mask")[()].sum())

    def write_voxel_sc(self, scan, data, indices, indptr, *, overwrite: bool = False):
        """Store voxel x voxel SC rows of one scan in CSR form (``scipy.sparse`` layout)."""
        self._require_writable()
        k = int(self.scan_index(scan)[0])
        data = np.asarray(data, dtype=np.float64)
        indices = np.asarray(indices)
        indptr = np.asarray(indptr)
        v = int(indptr.shape[0]) - 1
        if indices.shape != data.shape or indptr.ndim != 1 or indptr[-1] != data.shape[0]:
            raise ShapeError(
                f"voxel SC must be CSR arrays with len(indices) == len(data) == indptr[-1]; got data {data.shape}, "
                f"indices {indices.shape}, indptr {indptr.shape} ending at {indptr[-1] if indptr.size else None}. "
                "Pass csr.data, csr.indices, csr.indptr of a scipy.sparse.csr_array."
            )
        if indices.size and (indices.min() < 0 or indices.max() >= v):
            raise InputError(f"voxel SC indices must lie in [0, {v}); got range [{indices.min()}, {indices.max()}].")
        if not np.isfinite(data).all():
            raise InputError("voxel SC data must be finite; found NaN or inf. Drop or fix those entries.")
        name = f"voxel/sc/{k:06d}"
        if name in self.file:
            if not overwrite:
                raise StoreError(f"store already holds {name!r}; pass overwrite=True to replace it.")
            del self.file[name]
        g = self.file.create_group(name)
        g.create_dataset("data", data=data, track_times=False)
        g.create_dataset("indices", data=indices.astype(np.int64), track_times=False)
        g.create_dataset("indptr", data=indptr.astype(np.int64), track_times=False)
        g.attrs["scan_id"] = str(self.scan_ids[k])
        self.file.flush()

    def read_voxel_sc(self, scan):
        """CSR arrays ``(data, indices, indptr)`` of one scan's voxel SC."""
        k = int(self.scan_index(scan)[0])
        name = f"voxel/sc/{k:06d}"
        if name not in self.file:
            raise StoreError(f"store {self.path!r} has no voxel SC for scan {self.scan_ids[k]!r} ({name}).")
        g = self.file[name]
        return g["data"][()], g["indices"][()], g["indptr"][()]

    # -- results
    def write_result(self, analysis: str, name: str, array, *, attrs: dict | None = None, overwrite: bool = True):
        """Write one result array to ``results/<analysis>/<name>`` with attributes (e.g. provenance).

        The array is written under a temporary name and renamed into place, so
        a write that fails (disk full, file size limit) leaves the previous
        result, or none, and no half-written dataset behind.
        """
        self._require_writable()
        safe_name(analysis, "analysis name")
        safe_name(name, "result name")
        key = f"results/{analysis}"
        if f"{key}/{name}" in self.file and not overwrite:
            raise StoreError(f"{key}/{name} exists; pass overwrite=True to replace it.")
        array = np.asarray(array)
        check_room(self.path, array.nbytes + (64 << 10), what=f"{key}/{name}")
        created = key not in self.file
        group = self.file.require_group(key)
        tmp = f".{name}.writing"
        try:
            if tmp in group:
                del group[tmp]
            group.create_dataset(tmp, data=array, track_times=False)
            self.file.flush()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if tmp in group:
                    del group[tmp]
                if created and not len(group) and not len(group.attrs):
                    del self.file[key]
            if isinstance(exc, OSError) and exc.filename is None:
                exc.filename = self.path
            raise
        if name in group:
            del group[name]
        group.move(tmp, name)
        for k, v in (attrs or {}).items():
            group.attrs[k] = v if not isinstance(v, (dict, list, tuple)) else json.dumps(v, default=str)
        if "complete" not in group.attrs:
            group.attrs["complete"] = True
        self.file.flush()

    def read_result(self, analysis: str, name: str = "coupling") -> np.ndarray:
        """Read ``results/<analysis>/<name>``."""
        return self._get(f"results/{analysis}/{name}")[()]

    def result_attrs(self, analysis: str) -> dict:
        """Attributes of ``results/<analysis>`` with JSON values decoded (``provenance`` as a dict)."""
        key = f"results/{analysis}"
        if key not in self.file:
            raise StoreError(f"store {self.path!r} has no results/{analysis}; run the analysis first.")
        out = {}
        for k, v in self.file[key].attrs.items():
            if isinstance(v, str) and v[:1] in "[{":
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            elif isinstance(v, np.generic):
                v = v.item()
            out[k] = v
        return out

    def results(self) -> list[str]:
        """Names of the analyses under ``results/``."""
        return sorted(self.file["results"]) if "results" in self.file else []


# ----------------------------------------------------------------------------- region surface

_SURFACE_HEMIS = ("lh", "rh")


def check_region_surface(group, n_regions: int, path="") -> None:
    """Check ``/regions/surface``: per hemisphere ``vertex_region (V,)`` in
    [-1, N) and ``sphere (V, 3)`` float; every region has vertices."""
    seen = np.zeros(n_regions, dtype=bool)
    for h in _SURFACE_HEMIS:
        if h not in group or "vertex_region" not in group[h] or "sphere" not in group[h]:
            raise StoreError(f"store {str(path)!r}: /regions/surface needs {h}/vertex_region and {h}/sphere.")
        vr, sph = group[h]["vertex_region"], group[h]["sphere"]
        if vr.ndim != 1 or sph.shape != (vr.shape[0], 3):
            raise StoreError(f"store {str(path)!r}: /regions/surface/{h} has vertex_region {vr.shape} and sphere "
                             f"{sph.shape}; the schema needs (V,) and (V, 3).")
        v = vr[()]
        if v.size and (v.min() < -1 or v.max() >= n_regions):
            raise StoreError(f"store {str(path)!r}: /regions/surface/{h}/vertex_region must lie in [-1, "
                             f"{n_regions}); got [{v.min()}, {v.max()}].")
        seen[v[v >= 0]] = True
    if not seen.all():
        raise StoreError(f"store {str(path)!r}: /regions/surface leaves {int((~seen).sum())} regions without "
                         "vertices.")


# ----------------------------------------------------------------------------- create / open / validate


def create(path, *, scans, labels, hemisphere=None, centroids=None, overwrite: bool = False) -> CohortStore:
    """Create a cohort store with its scans and region tables (``rc.store.create``).

    Parameters
    ----------
    path : str or Path
        The HDF5 file to create.
    scans : pandas.DataFrame or dict of (S,) columns
        Must hold ``scan_id`` (unique), ``subject``, ``session`` and
        ``group``; every other column (covariates, clinical scores) is kept.
    labels : (N,) sequence of str, or None
        Region names, in the order of the matrices. ``None`` (or an empty
        list) makes a voxel-only store (``N = 0``): it holds voxel data
        (``voxel/...``) and voxel maps but no region matrices.
    hemisphere : (N,) sequence of str, optional
        "L"/"R" per region (guessed from an ``L``/``R`` prefix when omitted).
    centroids : (N, 3) array_like, optional
        Region centroids in millimetres (NaN when omitted).
    overwrite : bool
        Replace an existing file; otherwise an existing path raises
        :class:`~recouple.exceptions.StoreError`.

    Returns
    -------
    CohortStore
        Open for writing (``mode="r+"``); use it as a context manager.
    """
    path = Path(path)
    cols = normalise_scans(scans)
    labels = np.asarray([] if labels is None else labels).astype(str)
    if labels.ndim != 1 or labels.size == 1:
        raise ShapeError(f"labels must be a 1-D list of at least 2 region names (or None for a voxel-only store); "
                         f"got shape {labels.shape}.")
    uniq, counts = np.unique(labels, return_counts=True)
    if (counts > 1).any():
        raise InputError(f"labels must be unique; got duplicates {uniq[counts > 1][:5].tolist()}. Rename them.")
    n = labels.size
    if hemisphere is None:
        hemisphere = np.array(["L" if s.upper().startswith(("L", "LH")) else "R" if s.upper().startswith(("R", "RH"))
                               else "" for s in labels.tolist()])
    hemisphere = np.asarray(hemisphere).astype(str)
    if hemisphere.shape != (n,):
        raise ShapeError(f"hemisphere must have shape ({n},) like labels; got {hemisphere.shape}.")
    if centroids is None:
        centroids = np.full((n, 3), np.nan)
    centroids = np.asarray(centroids, dtype=np.float64)
    if centroids.shape != (n, 3):
        raise ShapeError(f"centroids must have shape ({n}, 3) (x, y, z in mm per region); got {centroids.shape}.")
    if path.exists():
        if not overwrite:
            raise StoreError(f"store {str(path)!r} already exists; pass overwrite=True (or --overwrite) to replace it.")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".creating")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["recouple_version"] = __version__
        _write_table(f.create_group("scans"), cols)
        g = f.create_group("regions")
        g.create_dataset("label", data=labels.astype(object), dtype=_STR)
        g.create_dataset("hemisphere", data=hemisphere.astype(object), dtype=_STR)
        g.create_dataset("centroids", data=centroids)
    os.replace(tmp, path)  # a store appears whole or not at all
    return CohortStore(path, "r+")


def open(path, mode: str = "r") -> CohortStore:  # noqa: A001 - the public name rc.store.open
    """Open a cohort store (``rc.store.open``; ``mode="r"`` reads without taking
    the file lock; ``"r+"`` writes)."""
    return CohortStore(path, mode)


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate` found. ``incomplete`` lists results with unfinished chunks."""

    path: str
    n_scans: int
    n_regions: int
    datasets: tuple
    incomplete: tuple = ()
    notes: tuple = field(default=())

    def __str__(self):
        regions = f"{self.n_regions} regions" if self.n_regions else "no regions (voxel-only)"
        lines = [f"{self.path}: {self.n_scans} scans, {regions}; datasets: {', '.join(self.datasets)}"]
        for name, done, total in self.incomplete:
            lines.append(f"  results/{name}: {done}/{total} chunks done (re-run to finish)")
        lines.extend(f"  {n}" for n in self.notes)
        return "\n".join(lines)


def validate(path, *, deep: bool = False) -> ValidationReport:
    """Check a store against its schema (``rc.store.validate``); raise
    :class:`~recouple.exceptions.StoreError` naming the first problem.

    Returns a :class:`ValidationReport` (scans, regions, datasets present and
    results whose chunks are not all finished). ``deep=True`` also reads every
    SC/FC/time-series matrix and checks it is finite.
    """
    p = Path(path)
    if not p.exists():
        raise StoreError(f"store {str(path)!r} does not exist. Check the path or create it with `recouple ingest`.")
    try:
        f = _open_h5(p, "r", check=False)
    except StoreError as exc:
        raise StoreError(f"store {str(path)!r} is not a readable HDF5 file ({exc}).") from None
    with f:
        check_header(f, path)  # format, schema version, /scans and /regions tables
        cols = _read_table(f["scans"])
        for c in REQUIRED_COLUMNS:
            if c not in cols:
                raise StoreError(f"store {str(path)!r}: /scans lacks the required column {c!r}. {_REMAKE}, "
                                 "or add the column.")
        lengths = {k: len(v) for k, v in cols.items()}
        if len(set(lengths.values())) != 1:
            raise StoreError(f"/scans columns have different lengths {lengths}.")
        s = len(cols["scan_id"])
        if len(set(cols["scan_id"].tolist())) != s:
            raise StoreError("/scans/scan_id holds duplicate scan ids.")
        for key in ("label", "hemisphere", "centroids"):
            if key not in f["regions"]:
                raise StoreError(f"/regions lacks {key!r}.")
        n = f["regions/label"].shape[0]
        if f["regions/hemisphere"].shape != (n,) or f["regions/centroids"].shape != (n, 3):
            raise StoreError(f"/regions entries disagree in length (label {n}, hemisphere "
                             f"{f['regions/hemisphere'].shape}, centroids {f['regions/centroids'].shape}).")
        names = []
        if n == 0:
            present = [k for k in STACKS if k in f]
            if present:
                raise StoreError(f"store {str(path)!r} has no region labels (/regions/label is empty: a voxel-only "
                                 f"store) but holds {present}; region matrices need their labels. {_REMAKE}.")
        for key in ("sc", "fc"):
            if key in f:
                names.append(key)
                if f[key].shape != (s, n, n):
                    raise StoreError(f"/{key} has shape {f[key].shape}; the schema needs (scans, regions, regions) = "
                                     f"{(s, n, n)}.")
        if "ts" in f:
            names.append("ts")
            if f["ts"].ndim != 3 or f["ts"].shape[:2] != (s, n):
                raise StoreError(f"/ts has shape {f['ts'].shape}; the schema needs ({s}, {n}, T).")
        if deep:
            for key in ("sc", "fc", "ts"):
                if key in f:
                    for i in range(s):
                        if not np.isfinite(f[key][i]).all():
                            raise StoreError(f"/{key} of scan {cols['scan_id'][i]!r} holds NaN or inf values.")
            _check_cached_checksums(f, path)
        if "voxel" in f:
            vg = f["voxel"]
            if "mask" not in vg or "affine" not in vg["mask"].attrs:
                raise StoreError("/voxel needs /voxel/mask with an 'affine' attribute.")
            v = int((vg["mask"][()] != 0).sum())
            names.append("voxel/mask")
            if "bold" in vg:
                names.append("voxel/bold")
                if vg["bold"].ndim != 3 or vg["bold"].shape[:2] != (s, v):
                    raise StoreError(f"/voxel/bold has shape {vg['bold'].shape}; the schema needs ({s}, {v}, T) "
                                     f"with V = voxels in the mask.")
            if "sc" in vg:
                names.append("voxel/sc")
                for key in vg["sc"]:
                    g = vg["sc"][key]
                    if g["indptr"].shape != (v + 1,) or g["indices"].shape != g["data"].shape:
                        raise StoreError(f"/voxel/sc/{key} is not a valid CSR matrix over {v} voxels.")
            if "profiles" in vg:
                for key in vg["profiles"]:
                    names.append(f"voxel/profiles/{key}")
                    if vg["profiles"][key].shape[:2] != (s, v):
                        raise StoreError(f"/voxel/profiles/{key} must have shape ({s}, {v}, M); "
                                         f"got {vg['profiles'][key].shape}.")
        if "maps" in f:
            names.extend(f"maps/{k}" for k in f["maps"])
        incomplete = []
        if "results" in f:
            for key in f["results"]:
                g = f["results"][key]
                if "done" in g:
                    flags = g["done"][()]
                    if flags.sum() < flags.size:
                        incomplete.append((key, int(flags.sum()), int(flags.size)))
                if "provenance" not in g.attrs:
                    if "params" in g.attrs and "done" not in g:
                        # half-created by a run that stopped while allocating (the runner writes params first
                        # and completion flags last): the next run with the same parameters starts it again
                        incomplete.append((key, 0, 0))
                        continue
                    raise StoreError(f"/results/{key} lacks its provenance attribute.")
                names.append(f"results/{key}")
    return ValidationReport(str(path), s, n, tuple(names), tuple(incomplete))


def checksum(path, names, *, cached: bool = True) -> dict:
    """SHA-256 of the raw bytes of each named dataset or group (read block by block).

    A dataset written by the store's writers (:meth:`CohortStore.write_array`,
    ``recouple ingest``) carries its checksum, computed from the array written
    and kept with a counter of the writes to the dataset: while the counter
    still matches, the cached value is returned without reading the data (the
    same value the data hash to). ``cached=False`` hashes the data anyway. A
    dataset changed outside recouple (raw h5py writes raise no counter) is
    found by ``validate(path, deep=True)``; :meth:`CohortStore.refresh_checksums`
    recomputes its checksum.
    """
    with _open_h5(path, "r") as f:
        return dataset_checksums(f, names, cached=cached)


# ----------------------------------------------------------------------------- deprecated names


def _deprecated(new, old):
    def alias(*args, **kwargs):
        warnings.warn(f"recouple.io.store.{old} is deprecated; use recouple.store.{new.__name__} (the same "
                      "function). The old name will be removed in the next release.", DeprecationWarning, stacklevel=2)
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated alias of :func:`{new.__name__}`."
    return alias


create_store = _deprecated(create, "create_store")
open_store = _deprecated(open, "open_store")
validate_store = _deprecated(validate, "validate_store")
