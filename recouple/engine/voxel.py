"""Voxel-to-voxel coupling of one chunk: choose how its FC is computed, then run it.

A chunk of C voxel rows needs FC only at its ``nnz`` structural entries. The
dense way (matrix products of whole FC rows, C x V x T multiply-adds) wins
when the chunk is dense; the sampled way (one dot product per entry, nnz x T)
wins at tractography densities. :func:`chunk_coupling` measures the chunk's
density and lets :func:`recouple.engine.planner.plan_fc_mode` choose against
the crossover density of :func:`crossover_density`, unless ``fc_mode`` names
one. That crossover is a fixed nominal value per kind of backend, replaced by
this machine's measured one (:func:`fc_rates`, once per process, backend and
T) only when the two differ by more than :data:`CROSSOVER_MARGIN`: the same
chunk takes the same path in every run on a loaded machine, and a machine
clearly unlike the nominal one still gets its own crossover. On NumPy the sampled FC comes from the
compiled loop :func:`recouple.host.voxel.sampled_fc` (the array-API kernel
when compiled loops are off); on JAX/CuPy from
:func:`recouple.kernels.voxel.sampled_fc` (gather + batched products, static
shapes: rows keep the store's padded width).

The two ways give the same Pearson r up to the last bits of each dot product,
so Spearman coupling is the same unless two FC values of a row are within
rounding of each other, and Pearson coupling agrees to ~1e-15.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..host import voxel as host_voxel
from ..kernels import voxel as kv
from .backend import get_backend
from .dispatch import (call_kernel, device_get, device_put, host_map, host_thread_count, pad_leading, resident_body,
                       resident_step)
from .planner import FC_MODES, plan_fc_mode

__all__ = ["CROSSOVER_MARGIN", "FC_MODES", "NOMINAL_CROSSOVER", "chunk_coupling", "crossover_density", "fc_rates",
           "plan_chunk_mode", "scan_coupling", "synthetic_chunk", "throughput"]

#: Nominal crossover density (sampled rate / dense rate: below it the sampled
#: way is cheaper) by how a backend computes sampled FC: ``"host"`` the
#: compiled loop (NumPy), ``"cpu"`` the array-API kernel on a CPU (JAX, or
#: NumPy with compiled loops off), ``"gpu"`` the kernel on a GPU. Measured
#: here (2-core AMD EPYC, T = 300): host 0.07-0.17, JAX CPU 0.02-0.05.
NOMINAL_CROSSOVER = {"host": 0.1, "cpu": 0.03, "gpu": 0.01}
#: factor by which a measured crossover must differ from the nominal one to replace it
CROSSOVER_MARGIN = 4.0

_RATES: dict = {}
_RATES_LOCK = threading.Lock()
_STATIC = ("method", "edges", "min_edges", "fc_mode", "block_rows")


def _host_sampled(backend_name: str) -> bool:
    return backend_name == "numpy" and host_voxel.enabled()


def _host_sampled_fc(z_rows, z_all, sc_indices, sc_valid):
    """Sampled FC (C, K) by the compiled host loop; from the main thread the
    target columns split in ranges over :func:`host_thread_count` threads
    (each target series read once in all; a pair's value does not depend on
    the split). Inside a Dask task the scheduler already uses the cores."""
    v = z_all.shape[0]
    threads = host_thread_count() if threading.current_thread() is threading.main_thread() else 1
    if threads == 1 or sc_indices.size < 65536:
        return host_voxel.sampled_fc(z_rows, z_all, sc_indices, sc_valid)
    z_rows = np.ascontiguousarray(z_rows, dtype=np.float64)
    z_all = np.ascontiguousarray(z_all, dtype=np.float64)
    sc_indices = np.ascontiguousarray(sc_indices, dtype=np.int64)
    sc_valid = np.ascontiguousarray(sc_valid, dtype=bool)
    out = np.zeros(sc_indices.shape)
    step = -(-v // threads)
    host_map(lambda lo: host_voxel.sampled_fc(z_rows, z_all, sc_indices, sc_valid, out=out, columns=(lo, lo + step)),
             range(0, v, step))
    return out


def _best_times(fns, be, repeats=3):
    """Best time of each of ``fns`` over ``repeats`` rounds that call them in
    turn (after one warm-up call each): on a shared machine every round meets
    about the same load for all of them, so their ratio holds when the load
    changes between rounds."""
    for fn in fns:
        be.synchronize(fn())  # warm up (compile)
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            be.synchronize(fn())
            best[i] = min(best[i], time.perf_counter() - t0)
    return [max(b, 1e-9) for b in best]


def fc_rates(backend=None, n_timepoints: int = 300) -> tuple[float, float]:
    """Multiply-adds per second of this machine for dense FC rows and for sampled FC.

    Measured once per process, backend and ``n_timepoints`` on synthetic
    standardised series (V = 16,384 of them, out of the fastest caches): the
    dense path (:func:`recouple.kernels.voxel.dense_fc`: 128 rows against all
    V, gathered at 64 random targets a row) and the same 128 rows x 64
    targets by the sampled path this backend uses, timed in alternation
    (best of three rounds each) so that both meet the same load. Takes well
    under a second.

    Returns
    -------
    dense_rate, sampled_rate : float
    """
    be = get_backend(backend)
    t = int(n_timepoints)
    key = (be.name, t, _host_sampled(be.name))
    with _RATES_LOCK:
        if key in _RATES:
            return _RATES[key]
    v, c, k = 16384, 128, 64
    z, _, cols, valid, _ = synthetic_chunk(v, t, c, k / v, seed=1)
    zd, zr, cd = be.to_device(z), be.to_device(z[:c]), be.to_device(cols)
    dense = be.compile(kv.dense_fc)
    if _host_sampled(be.name):
        def sampled():
            return _host_sampled_fc(z[:c], z, cols, valid)
    else:
        kern = be.compile(kv.sampled_fc, static_argnames=("block_rows",))

        def sampled():
            return kern(zr, zd, cd, block_rows=kv.sampled_block_rows(k, t))
    dense_s, sampled_s = _best_times([lambda: dense(zr, zd, cd), sampled], be)
    rates = (c * v * t / dense_s, c * k * t / sampled_s)
    with _RATES_LOCK:
        _RATES[key] = rates
    return rates


def _sampled_kind(be) -> str:
    if _host_sampled(be.name):
        return "host"
    if be.name == "cupy" or any(g in str(be.device).lower() for g in ("gpu", "cuda")):
        return "gpu"
    return "cpu"


def crossover_density(backend=None, n_timepoints: int = 300) -> float:
    """Structural density ``nnz / (C * V)`` below which sampled FC is taken instead of dense.

    :data:`NOMINAL_CROSSOVER` for the backend's kind, unless this machine's
    measured crossover (``sampled_rate / dense_rate`` of :func:`fc_rates`)
    lies more than :data:`CROSSOVER_MARGIN` times above or below it; then
    the measured one. Near the crossover the two ways cost about the same,
    so the nominal value loses little where it is not exact, and a fixed
    value keeps the choice the same from run to run, however loaded the
    machine is when the rates are measured.
    """
    be = get_backend(backend)
    nominal = NOMINAL_CROSSOVER[_sampled_kind(be)]
    dense_rate, sampled_rate = fc_rates(be, n_timepoints)
    measured = sampled_rate / max(dense_rate, 1e-300)
    if nominal / CROSSOVER_MARGIN <= measured <= nominal * CROSSOVER_MARGIN:
        return nominal
    return measured


def plan_chunk_mode(fc_mode: str, *, nnz: int, n_rows: int, n_voxels: int, n_timepoints: int, backend=None) -> str:
    """``"dense"`` or ``"sampled"`` for a chunk of ``n_rows`` rows with ``nnz`` valid structural entries.

    ``fc_mode`` ``"dense"`` or ``"sampled"`` as is; ``"auto"``:
    :func:`recouple.engine.planner.plan_fc_mode` with the crossover of
    :func:`crossover_density` (sampled below it; ties go to dense).
    """
    if fc_mode != "auto":
        return plan_fc_mode(fc_mode, nnz=0, n_rows=n_rows, n_voxels=n_voxels, n_timepoints=n_timepoints,
                            dense_rate=1.0, sampled_rate=1.0)
    crossover = crossover_density(backend, n_timepoints)
    return plan_fc_mode("auto", nnz=nnz, n_rows=n_rows, n_voxels=n_voxels, n_timepoints=n_timepoints,
                        dense_rate=1.0, sampled_rate=crossover)


def chunk_coupling(z_rows, z_all, sc_values, sc_indices, sc_valid, rows, *, method="spearman",
                   edges="both_nonzero", min_edges=3, fc_mode="auto", backend=None):
    """Voxel-to-voxel coupling of a chunk (:func:`recouple.kernels.voxel.voxel_to_voxel_coupling`),
    its FC computed the cheaper way for the chunk's density.

    Parameters
    ----------
    z_rows, z_all, sc_values, sc_indices, sc_valid, rows, method, edges, min_edges
        As :func:`recouple.kernels.voxel.voxel_to_voxel_coupling` (host arrays).
    fc_mode : {"auto", "dense", "sampled"}
        ``"auto"``: :func:`plan_chunk_mode` from the chunk's density
        ``nnz / (C * V)`` (valid entries) and :func:`crossover_density`.
    backend : str, optional

    Returns
    -------
    coupling : (C,) float64 array
    n_edges : (C,) int array
    mode : {"dense", "sampled"}
        The way the FC was computed.
    """
    be = get_backend(backend)
    c, v, t = sc_indices.shape[0], z_all.shape[0], z_all.shape[1]
    nnz = int(np.count_nonzero(sc_valid)) if fc_mode == "auto" else 0
    mode = plan_chunk_mode(fc_mode, nnz=nnz, n_rows=c, n_voxels=v, n_timepoints=t, backend=be)
    static = {"method": method, "edges": edges, "min_edges": min_edges}
    if mode == "sampled" and _host_sampled(be.name):
        fc_g = _host_sampled_fc(z_rows, z_all, sc_indices, sc_valid)
        r, n = call_kernel(kv.coupling_from_fc, fc_g, sc_values, sc_indices, sc_valid, rows, backend=be,
                           static=static)
    else:
        if mode == "sampled":
            # the kernel computes padding entries too: cut the rows to the
            # chunk's longest (rounded up to a power of two, so that a jitted
            # kernel meets few shapes)
            sc_values, sc_indices, sc_valid = _trim_width(sc_values, sc_indices, sc_valid)
        static.update(fc_mode=mode, block_rows=kv.sampled_block_rows(sc_indices.shape[1], t))
        r, n = call_kernel(kv.voxel_to_voxel_coupling, z_rows, z_all, sc_values, sc_indices, sc_valid, rows,
                           backend=be, static=static)
    return r, n, mode


def scan_coupling(z, sc_values, sc_indices, sc_valid, *, rows_per_chunk=1000, method="spearman",
                  edges="both_nonzero", min_edges=3, fc_mode="auto", backend=None):
    """Voxel-to-voxel coupling of every voxel of one scan, chunk by chunk.

    Parameters
    ----------
    z : (V, T) array
        Standardised series of every voxel (:func:`recouple.kernels.voxel.standardize_timeseries`).
    sc_values, sc_indices, sc_valid : (V, K) arrays
        Every voxel's structural CSR row padded to width K (as
        :func:`chunk_coupling`).
    rows_per_chunk : int
        Voxel rows per chunk; the last chunk is padded to this size.
    method, edges, min_edges
        As :func:`chunk_coupling`.
    fc_mode : {"auto", "dense", "sampled"}
        One way for the whole scan; ``"auto"`` chooses from the scan's
        density (:func:`recouple.engine.planner.plan_fc_mode`).
    backend : str, optional

    Returns
    -------
    coupling : (V,) float64 array
    n_edges : (V,) int array
    mode : {"dense", "sampled"}

    Notes
    -----
    On NumPy every chunk runs through :func:`chunk_coupling` in the chosen
    mode. On an accelerator the loop stays on the device: the series move
    once, every chunk's structural rows (padded to ``rows_per_chunk`` rows
    of no valid entry, and, sampled, cut once to the scan's longest row) are
    copied explicitly, and one compiled step
    (:func:`recouple.kernels.voxel.chunk_coupling_step`) serves all chunks.
    """
    be = get_backend(backend)
    z = np.asarray(z, dtype=np.float64)
    v, t = z.shape
    c = max(1, min(int(rows_per_chunk), v))
    nnz = int(np.count_nonzero(sc_valid)) if fc_mode == "auto" else 0
    mode = plan_chunk_mode(fc_mode, nnz=nnz, n_rows=v, n_voxels=v, n_timepoints=t, backend=be)
    starts = range(0, v, c)
    if be.name == "numpy":
        pieces = []
        for a in starts:
            rows = np.arange(a, min(a + c, v))
            r, n, _ = chunk_coupling(z[rows], z, sc_values[rows], sc_indices[rows], sc_valid[rows], rows,
                                     method=method, edges=edges, min_edges=min_edges, fc_mode=mode, backend=be)
            pieces.append((np.asarray(r, dtype=np.float64), np.asarray(n)))
        return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces]), mode
    if mode == "sampled":
        sc_values, sc_indices, sc_valid = _trim_width(sc_values, sc_indices, sc_valid)
    width = sc_indices.shape[1]
    step = resident_step(kv.chunk_coupling_step, be, static={
        "method": method, "edges": edges, "min_edges": min_edges, "fc_mode": mode,
        "block_rows": kv.sampled_block_rows(width, t) if mode == "sampled" else None})
    z_dev = device_put(z, be)
    out = []
    for a in starts:
        b = min(a + c, v)
        chunk = device_put([pad_leading(np.asarray(sc_values[a:b], dtype=np.float64), c, 0.0),
                            pad_leading(np.asarray(sc_indices[a:b], dtype=np.int64), c, 0),
                            pad_leading(np.asarray(sc_valid[a:b], dtype=bool), c, False),
                            pad_leading(np.arange(a, b), c, 0)], be)
        with resident_body(be):
            out.append((b - a, step(z_dev, *chunk)))
    host = device_get([res for _, res in out], be)
    r = np.concatenate([np.asarray(res[0], dtype=np.float64)[:size] for (size, _), res in zip(out, host)])
    n = np.concatenate([np.asarray(res[1])[:size] for (size, _), res in zip(out, host)])
    return r, n, mode


def _trim_width(sc_values, sc_indices, sc_valid):
    """Drop trailing columns with no valid entry in any row, keeping a power-of-two width (>= 8)."""
    k = sc_valid.shape[1]
    used = np.flatnonzero(np.asarray(sc_valid).any(axis=0))
    need = int(used[-1]) + 1 if used.size else 1
    width = min(k, max(8, 1 << (need - 1).bit_length()))
    if width == k:
        return sc_values, sc_indices, sc_valid
    return sc_values[:, :width], sc_indices[:, :width], sc_valid[:, :width]


def synthetic_chunk(n_voxels: int, n_timepoints: int, chunk: int, density: float, *, seed: int = 0):
    """Standardised series and one chunk of random structural rows at ``density``.

    Returns ``z`` (V, T), ``values`` (C, K), ``indices`` (C, K) distinct and sorted per row,
    ``valid`` (C, K) all True and ``rows`` (C,), with ``K = max(1,
    round(density * V))`` (density 1: every column once).
    """
    rng = np.random.default_rng(seed)
    z = kv.standardize_timeseries(rng.standard_normal((n_voxels, n_timepoints))
                                  + 0.3 * rng.standard_normal(n_timepoints))
    k = max(1, min(n_voxels, round(density * n_voxels)))
    if k == n_voxels:
        cols = np.broadcast_to(np.arange(n_voxels), (chunk, k)).copy()
    else:  # distinct columns per row, as in a CSR matrix
        cols = np.sort(np.stack([rng.choice(n_voxels, k, replace=False) for _ in range(chunk)]), axis=1)
    return z, rng.lognormal(size=(chunk, k)), cols, np.ones((chunk, k), bool), np.arange(chunk)


def throughput(density: float, fc_mode: str = "auto", *, n_voxels: int = 50000, n_timepoints: int = 300,
               chunk: int = 1000, backend=None, repeats: int = 3, data=None) -> dict:
    """Voxels per second of :func:`chunk_coupling` (Spearman, ``both_nonzero``) for one chunk.

    For benchmark harnesses: ``density`` is the fraction of the V columns
    each structural row holds (``synthetic_chunk``), ``fc_mode`` the path.
    ``data`` reuses a :func:`synthetic_chunk` result. Returns a dict with
    ``voxels_per_s``, ``seconds`` (best of ``repeats`` after one warm-up),
    ``mode`` (the path taken), ``nnz_per_row`` and the sizes.
    """
    be = get_backend(backend)
    z, vals, cols, valid, rows = data if data is not None else synthetic_chunk(n_voxels, n_timepoints, chunk,
                                                                               density)
    c = cols.shape[0]

    def run():
        return chunk_coupling(z[:c], z, vals, cols, valid, rows, fc_mode=fc_mode, backend=be)

    mode = run()[2]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return {"voxels_per_s": c / best, "seconds": best, "mode": mode, "fc_mode": fc_mode, "density": density,
            "nnz_per_row": cols.shape[1], "n_voxels": z.shape[0], "n_timepoints": z.shape[1], "chunk": c,
            "backend": be.name}
