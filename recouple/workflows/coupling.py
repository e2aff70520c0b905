"""Cohort-level analyses over the HDF5 store: read lazily, run kernels chunk by
chunk through Dask, write results with provenance and completion flags.

``cohort_coupling`` computes region-level nodal coupling for every scan
(:func:`recouple.coupling.nodal`) or voxel-level coupling (voxel-to-voxel
from BOLD time series and CSR structural rows, or voxel x target profiles).
"""

from __future__ import annotations

import functools
import math
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import store
from ..coupling import nodal
from ..engine.backend import get_backend
from ..engine.dispatch import call_kernel
from ..engine.planner import FC_MODES
from ..engine.runner import (
    OutputSpec,
    chunk_ranges,
    plan_chunk_size,
    resolve_scheduler,
    run_chunks,
    worker_count,
)
from ..engine.voxel import chunk_coupling
from ..exceptions import StoreError
from ..io.store import _open_h5, iter_rows
from ..kernels.coupling import EDGE_SETS
from ..kernels.voxel import (
    DENSE_BLOCK_BYTES,
    SAMPLED_BLOCK_BYTES,
    profile_coupling,
    standardize_timeseries,
)
from ..validation import check_choice, check_positive_int

__all__ = ["CohortCoupling", "cohort_coupling", "coupling_result_name"]

LEVELS = ("region", "voxel")
VOXEL_KINDS = ("auto", "voxel_to_voxel", "profile")


@dataclass(frozen=True)
class CohortCoupling:
    """Coupling of every scan of a store.

    Attributes
    ----------
    coupling : (S, N) or (S, V) float array
        Per scan, per region (or voxel); NaN where undefined.
    n_edges : (S, N) or (S, V) int array
        Edges each correlation used.
    scan_ids : (S,) str array
    labels : (N,) str array or None
        Region labels (None at voxel level).
    analysis : str
        The result group, ``results/<analysis>`` in the store.
    store : str
    level : {"region", "voxel"}
    provenance : dict
    n_computed, n_skipped : int
        Chunks computed by this call and chunks an earlier run had finished.
    """

    coupling: np.ndarray
    n_edges: np.ndarray
    scan_ids: np.ndarray
    labels: np.ndarray | None
    analysis: str
    store: str
    level: str
    provenance: dict = field(default_factory=dict)
    n_computed: int = 0
    n_skipped: int = 0

    @property
    def undefined(self) -> np.ndarray:
        return np.isnan(self.coupling)

    def to_frame(self):
        """Coupling as a pandas DataFrame: one row per scan, one column per region (or voxel)."""
        cols = self.labels if self.labels is not None else [f"v{i}" for i in range(self.coupling.shape[1])]
        return pd.DataFrame(self.coupling, index=pd.Index(self.scan_ids, name="scan_id"), columns=cols)


def coupling_result_name(*, method: str, edges: str, level: str = "region", kind: str | None = None) -> str:
    """Default result name: ``coupling_<method>_<edges>`` (prefixed ``voxel_``/``profile_`` at voxel level)."""
    if level == "region":
        return f"coupling_{method}_{edges}"
    prefix = "profile" if kind == "profile" else "voxel"
    return f"{prefix}_coupling_{method}_{edges}"


# ----------------------------------------------------------------------------- chunk tasks (picklable)


def _region_task(chunk, *, sc, fc, method, edges, min_edges, symmetrize, allow_negative, backend):
    ((a, b),) = chunk
    coupling = np.empty((b - a, sc.shape[-1]))
    n_edges = np.empty((b - a, sc.shape[-1]), dtype=np.int64)
    # one kernel call per scan: every call has the same shape, so a scan's
    # result does not depend on which chunk it falls in. The store is opened
    # once per chunk and read a scan at a time (one HDF5 chunk each) into
    # reused buffers: no chunk-sized block is ever allocated.
    for i, (sc_i, fc_i) in iter_rows((sc, fc), a, b):
        res = nodal(sc_i, fc_i, method=method, edges=edges, min_edges=min_edges,
                    symmetrize=symmetrize, allow_negative=allow_negative, backend=backend)
        coupling[i - a] = res.coupling
        n_edges[i - a] = res.n_edges
    return {"coupling": coupling, "n_edges": n_edges}


@functools.lru_cache(maxsize=2)
def _standardized_bold(path, scan, run_token, backend):
    with _open_h5(path, "r") as f:
        x = f["voxel/bold"][scan]
    return call_kernel(standardize_timeseries, np.asarray(x, dtype=np.float64), backend=backend)


def _csr_block(path, scan, a, b, width):
    """Rows a..b of one scan's CSR SC, padded to ``width``: values, indices, valid."""
    with _open_h5(path, "r") as f:
        g = f[f"voxel/sc/{scan:06d}"]
        indptr = g["indptr"][a:b + 1]
        lo, hi = int(indptr[0]), int(indptr[-1])
        data = g["data"][lo:hi]
        indices = g["indices"][lo:hi]
    counts = np.diff(indptr)
    pos = np.arange(width)
    valid = pos[None, :] < counts[:, None]
    flat = np.where(valid, (indptr[:-1] - lo)[:, None] + pos[None, :], 0)
    if data.size == 0:
        return np.zeros((b - a, width)), np.zeros((b - a, width), np.int64), valid
    values = np.where(valid, data[flat], 0.0)
    cols = np.where(valid, indices[flat], 0)
    return values, cols, valid


def _voxel_task(chunk, *, path, method, edges, min_edges, width, rows_per_chunk, backend, run_token,
                fc_mode="auto"):
    (s, _), (a, b) = chunk
    z = _standardized_bold(path, s, run_token, backend)
    values, cols, valid = _csr_block(path, s, a, b, width)
    c = b - a
    rows = np.arange(a, b)
    if c < rows_per_chunk:
        # pad to the common chunk shape: one compiled kernel, one GEMM shape
        pad = rows_per_chunk - c
        values = np.concatenate([values, np.zeros((pad, width))])
        cols = np.concatenate([cols, np.zeros((pad, width), np.int64)])
        valid = np.concatenate([valid, np.zeros((pad, width), bool)])
        rows = np.concatenate([rows, np.zeros(pad, np.int64)])
    z_rows = z[rows]
    r, n, _ = chunk_coupling(z_rows, z, values, cols, valid, rows, method=method, edges=edges,
                             min_edges=min_edges, fc_mode=fc_mode, backend=backend)
    return {"coupling": np.asarray(r, dtype=np.float64)[:c][None], "n_edges": np.asarray(n)[:c][None]}


def _profile_task(chunk, *, sc, fc, method, edges, min_edges, backend):
    (s, _), (a, b) = chunk
    r, n = call_kernel(profile_coupling, np.asarray(sc[s, a:b], dtype=np.float64),
                       np.asarray(fc[s, a:b], dtype=np.float64), backend=backend,
                       static={"method": method, "edges": edges, "min_edges": min_edges})
    return {"coupling": np.asarray(r, dtype=np.float64)[None], "n_edges": np.asarray(n)[None]}


# ----------------------------------------------------------------------------- the analysis


def cohort_coupling(
    store_path,
    *,
    method: str = "spearman",
    edges: str = "sc_nonzero",
    level: str = "region",
    chunk_size: int | None = None,
    memory_limit=None,
    scheduler=None,
    client=None,
    overwrite: bool = False,
    backend: str | None = None,
    progress: bool | None = False,
    min_edges: int = 3,
    symmetrize: bool = False,
    allow_negative: bool = False,
    voxel_kind: str = "auto",
    name: str | None = None,
    fc_mode: str = "auto",
) -> CohortCoupling:
    """SC-FC coupling of every scan in a cohort store, chunked, resumable, on any Dask scheduler.

    Parameters
    ----------
    store_path : str or Path
        A cohort store (``rc.store.create`` / ``recouple ingest``).
    method : {"spearman", "pearson"}
    edges : str
        Region level: ``"sc_nonzero"`` (Baum 2020), ``"offdiag"`` (Gu 2021),
        ``"both_nonzero"`` (Fotiadis 2023). Voxel-to-voxel: ``"both_nonzero"``
        or ``"sc_nonzero"``. Profiles: ``"sc_nonzero"`` or ``"all"``.
    level : {"region", "voxel"}
        ``"region"`` reads ``sc``/``fc`` (S, N, N) and gives (S, N);
        ``"voxel"`` reads ``voxel/bold`` + ``voxel/sc`` (voxel-to-voxel) or
        ``voxel/profiles/{sc,fc}`` (profiles) and gives (S, V).
    chunk_size : int, optional
        Scans per chunk (region level) or voxels per chunk (voxel level).
        Planned from ``memory_limit`` when omitted. A run that resumes keeps
        the chunking of the run it continues.
    memory_limit : int, float or str, optional
        Budget for all chunks in flight ("4GB", bytes, or a fraction of RAM;
        default half of the available memory).
    scheduler : str, optional
        ``"threads"`` (default), ``"sync"``, ``"processes"`` or the address
        of a ``distributed`` scheduler (``tcp://host:8786``).
    client : distributed.Client, optional
        Run on this client's cluster.
    overwrite : bool
        Recompute a stored result from scratch.
    backend : {"numpy", "jax", "cupy", "auto"}, optional
    progress : bool or None
        Progress bar on stderr (None: only on a terminal).
    min_edges : int
        Fewest edges for a defined coupling.
    symmetrize, allow_negative : bool
        Region level: passed to :func:`recouple.coupling.nodal`.
    voxel_kind : {"auto", "voxel_to_voxel", "profile"}
        Voxel-level definition; ``"auto"`` uses voxel-to-voxel when the store
        holds BOLD and CSR SC, else profiles.
    name : str, optional
        Result name; default from the parameters (:func:`coupling_result_name`).
    fc_mode : {"auto", "dense", "sampled"}
        Voxel-to-voxel: how each chunk computes its FC -- whole FC rows by one
        matrix product, or only the FC at the structural non-zeros
        (:mod:`recouple.kernels.voxel`); ``"auto"`` picks the cheaper for the
        chunk's density on this machine (:func:`recouple.engine.voxel.chunk_coupling`).
        Same values up to the last bits of each dot product.

    Returns
    -------
    CohortCoupling
        ``coupling`` (S, N) or (S, V), stored in ``results/<name>``.

    Notes
    -----
    Chunks run as Dask tasks that open the store read-only; the calling
    process writes each finished chunk and then its completion flag. A re-run
    with the same parameters skips finished chunks and gives the same bytes;
    region-level results do not depend on the chunk size at all (one kernel
    call per scan).

    Examples
    --------
    >>> import os, tempfile, recouple as rc
    >>> from recouple.workflows.coupling import cohort_coupling
    >>> path = os.path.join(tempfile.mkdtemp(), "c.h5")
    >>> rc.store.from_simulated(rc.simulate.cohort(n_regions=20, n_patients=2, n_controls=1), path).close()
    >>> cohort_coupling(path).coupling.shape
    (6, 20)
    """
    check_choice("method", method, ("spearman", "pearson"))
    check_choice("level", level, LEVELS)
    check_choice("voxel_kind", voxel_kind, VOXEL_KINDS)
    check_choice("fc_mode", fc_mode, FC_MODES)
    min_edges = check_positive_int("min_edges", min_edges, minimum=2)
    if chunk_size is not None:
        chunk_size = check_positive_int("chunk_size", chunk_size)
    be = get_backend(backend)
    path = str(store_path)
    kind, cl, owned = resolve_scheduler(scheduler, client)
    if owned:  # connect once here; the runner reuses the client
        scheduler, client = None, cl
    elif kind == "distributed":
        client = cl
    try:
        workers = worker_count(kind, client)
        with store.open(path) as st:
            scan_ids = st.scan_ids
            vkind = _voxel_kind(st, path, voxel_kind) if level == "voxel" else None
            analysis = name or coupling_result_name(method=method, edges=edges, level=level, kind=vkind)
            if not overwrite and f"results/{analysis}" in st:
                # a resumed run keeps the chunking of the run it continues
                stored = st.result_attrs(analysis).get("provenance", {}).get("chunking", {})
                chunk_size = stored.get("chunk_size", chunk_size)
            if level == "region":
                labels = st.labels
                if st.n_regions == 0:
                    raise StoreError(f"store {path!r} is voxel-only (no region labels, no sc/fc); region-level "
                                     "coupling needs region matrices. Use level='voxel' (--level voxel).")
                for key in ("sc", "fc"):
                    if key not in st:
                        raise StoreError(f"store {path!r} has no {key!r}; region-level coupling needs sc and fc "
                                         "(S, N, N). Ingest them first.")
                run = _plan_region(st, path, method=method, edges=edges, min_edges=min_edges,
                                   symmetrize=symmetrize, allow_negative=allow_negative, backend=be.name,
                                   chunk_size=chunk_size, memory_limit=memory_limit, workers=workers)
            else:
                labels = None
                run = _plan_voxel(st, path, method=method, edges=edges, min_edges=min_edges, backend=be.name,
                                  chunk_size=chunk_size, memory_limit=memory_limit, workers=workers,
                                  voxel_kind=vkind, fc_mode=fc_mode)
        info = run_chunks(path, analysis, task=run["task"], chunks=run["chunks"], outputs=run["outputs"],
                          params=run["params"], inputs=run["inputs"], backend=be,
                          chunking=run["chunking"], overwrite=overwrite, scheduler=scheduler, client=client,
                          progress=progress, desc=f"coupling ({level})")
    finally:
        if owned:
            cl.close()
    with store.open(path) as st:
        coupling = st.read_result(analysis, "coupling")
        n_edges = st.read_result(analysis, "n_edges")
    return CohortCoupling(coupling=coupling, n_edges=n_edges, scan_ids=scan_ids, labels=labels, analysis=analysis,
                          store=path, level=level, provenance=info.provenance, n_computed=info.n_computed,
                          n_skipped=info.n_skipped)


def _plan_region(st, path, *, method, edges, min_edges, symmetrize, allow_negative, backend, chunk_size,
                 memory_limit, workers):
    allowed = tuple(e for e in EDGE_SETS if e != "mask")
    check_choice("edges", edges, allowed)
    s, n = st.n_scans, st.n_regions
    if chunk_size is None:
        # scans of one chunk in memory plus the kernel's working set for one scan
        chunk_size = plan_chunk_size(s, 2 * 8 * n * n, fixed_bytes=12 * 8 * n * n, memory_limit=memory_limit,
                                     workers=workers, maximum=max(1, math.ceil(s / (2 * workers))))
    task = functools.partial(_region_task, sc=st.handle("sc"), fc=st.handle("fc"), method=method, edges=edges,
                             min_edges=min_edges, symmetrize=symmetrize, allow_negative=allow_negative,
                             backend=backend)
    return {
        "kind": "region",
        "task": task,
        "chunks": [((a, b),) for a, b in chunk_ranges(s, chunk_size)],
        "outputs": [OutputSpec("coupling", (s, n), "float64", float("nan")), OutputSpec("n_edges", (s, n), "int64", 0)],
        "params": {"level": "region", "method": method, "edges": edges, "min_edges": min_edges,
                   "symmetrize": symmetrize, "allow_negative": allow_negative, "backend": backend},
        "inputs": ["sc", "fc"],
        "chunking": {"axis": "scans", "chunk_size": chunk_size},
    }


def _voxel_kind(st, path, voxel_kind):
    have_v2v = "voxel/bold" in st and "voxel/sc" in st
    have_prof = "voxel/profiles/sc" in st and "voxel/profiles/fc" in st
    kind = voxel_kind
    if kind == "auto":
        kind = "voxel_to_voxel" if have_v2v else "profile" if have_prof else None
    if kind is None or (kind == "voxel_to_voxel" and not have_v2v) or (kind == "profile" and not have_prof):
        raise StoreError(
            f"store {path!r} lacks voxel data for level='voxel' ({voxel_kind}): voxel-to-voxel coupling needs "
            "voxel/bold (S, V, T) and voxel/sc CSR rows; profile coupling needs voxel/profiles/sc and "
            "voxel/profiles/fc (S, V, M). Ingest them first."
        )
    return kind


def _plan_voxel(st, path, *, method, edges, min_edges, backend, chunk_size, memory_limit, workers, voxel_kind,
                fc_mode="auto"):
    kind = voxel_kind
    s = st.n_scans
    if kind == "voxel_to_voxel":
        check_choice("edges", edges, ("both_nonzero", "sc_nonzero"))
        bold = st.handle("voxel/bold")
        v, t = bold.shape[1], bold.shape[2]
        if t < 3:
            raise StoreError(f"voxel/bold has {t} time points; voxel FC needs at least 3.")
        missing = [st.scan_ids[k] for k in range(s) if f"voxel/sc/{k:06d}" not in st]
        if missing:
            raise StoreError(f"store {path!r} has no voxel SC for scans {missing[:5]}; write them with "
                             "store.write_voxel_sc(...).")
        width = 1
        for k in range(s):
            indptr = st.file[f"voxel/sc/{k:06d}/indptr"][()]
            width = max(width, int(np.diff(indptr).max()) if indptr.size > 1 else 1)
        width = int(math.ceil(width / 8) * 8)
        if chunk_size is None:
            # per worker: z of the whole scan and its raw read, and one block of FC columns
            # (kernels.voxel.dense_fc) or of gathered series (sampled_fc); per voxel row: its
            # share of a block at the narrowest (256 columns) plus the gathered, ranked and
            # masked profile entries
            block = max(DENSE_BLOCK_BYTES, SAMPLED_BLOCK_BYTES)
            chunk_size = plan_chunk_size(v, 8 * 256 + 24 * 8 * width, fixed_bytes=2 * 8 * v * t + block,
                                         memory_limit=memory_limit, workers=workers, maximum=4096)
        chunk_size = min(chunk_size, v)
        task = functools.partial(_voxel_task, path=path, method=method, edges=edges, min_edges=min_edges,
                                 width=width, rows_per_chunk=chunk_size, backend=backend,
                                 run_token=uuid.uuid4().hex, fc_mode=fc_mode)
        inputs = ["voxel/bold", "voxel/sc"]
    else:
        check_choice("edges", edges, ("sc_nonzero", "all"))
        sc = st.handle("voxel/profiles/sc")
        fc = st.handle("voxel/profiles/fc")
        if sc.shape != fc.shape:
            raise StoreError(f"voxel/profiles/sc {sc.shape} and voxel/profiles/fc {fc.shape} must have the same "
                             "shape (S, V, M).")
        v, m = sc.shape[1], sc.shape[2]
        if chunk_size is None:
            chunk_size = plan_chunk_size(v, 16 * 8 * m, memory_limit=memory_limit, workers=workers, maximum=65536)
        chunk_size = min(chunk_size, v)
        task = functools.partial(_profile_task, sc=sc, fc=fc, method=method, edges=edges, min_edges=min_edges,
                                 backend=backend)
        inputs = ["voxel/profiles/sc", "voxel/profiles/fc"]
    chunks = [((k, k + 1), (a, b)) for k in range(s) for a, b in chunk_ranges(v, chunk_size)]
    return {
        "kind": "profile" if kind == "profile" else "voxel",
        "task": task,
        "chunks": chunks,
        "outputs": [OutputSpec("coupling", (s, v), "float64", float("nan")), OutputSpec("n_edges", (s, v), "int64", 0)],
        "params": {"level": "voxel", "kind": kind, "method": method, "edges": edges, "min_edges": min_edges,
                   "backend": backend},
        "inputs": inputs,
        "chunking": {"axis": "scans x voxels", "chunk_size": chunk_size,
                     **({"fc_mode": fc_mode} if kind == "voxel_to_voxel" else {})},
    }
