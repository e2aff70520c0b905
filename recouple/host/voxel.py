"""Sampled voxel FC on the NumPy backend: a compiled gather-dot loop (numba).

Voxel-to-voxel coupling needs FC only at the structural non-zeros of each
row (:mod:`recouple.kernels.voxel`). At tractography densities (well under
1%) one dot product per needed pair costs a small fraction of the dense FC
rows. Vectorised NumPy has to copy every needed series into a
``(rows, K, T)`` block first; this loop reads them in place, one target
series at a time: the needed pairs of a chunk are sorted by target column (a
counting sort), so each target's series is read from memory once and dotted
with the chunk rows that need it while it is in cache. That matters when V
series do not fit in cache (V = 50,000, T = 300: 120 MB), as gathers in row
order would read every target about C x K / V times.

Each pair is one dot product of length T whose terms are summed with
reassociation allowed (``fastmath={"reassoc"}`` on this loop only; no other
fast-math flag, NaN propagates), so the compiler sums in vector lanes. The
order depends only on T and the machine's vector width -- not on the chunk,
the other pairs or the thread -- so a pair's value is the same in every chunk.
It differs from the dense GEMM's in the last bits (tests: <= 1e-13 on r).

numba is a dependency; without it or with ``RECOUPLE_JIT=0``
(:func:`recouple.host.jit.enabled`) callers use the array-API kernel
:func:`recouple.kernels.voxel.sampled_fc`. The loop releases the GIL.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import InputError
from .jit import compile_loop, enabled

__all__ = ["enabled", "sampled_fc"]

def _compiled(fn, **flags):
    # compiled and cached by the one compiler of recouple's host loops
    return compile_loop(fn, **flags)


def _sampled_fc_loop(z_rows, z_all, sc_indices, sc_valid, lo, hi, out):
    # writes the valid entries whose column lies in [lo, hi) and nothing else
    c, k = sc_indices.shape
    v = z_all.shape[0]
    t = z_all.shape[1]
    # counting sort of those entries by target column
    start = np.zeros(v + 1, np.int64)
    bad = 0
    for i in range(c):
        for p in range(k):
            if sc_valid[i, p]:
                j = sc_indices[i, p]
                if j < 0 or j >= v:
                    bad += 1
                elif lo <= j < hi:
                    start[j + 1] += 1
    if bad:
        return bad
    for j in range(v):
        start[j + 1] += start[j]
    entry = np.empty(start[v], np.int64)
    fill = start[:v].copy()
    for i in range(c):
        for p in range(k):
            if sc_valid[i, p]:
                j = sc_indices[i, p]
                if lo <= j < hi:
                    entry[fill[j]] = i * k + p
                    fill[j] += 1
    # one target series at a time, dotted with every chunk row that needs it
    for j in range(lo, hi):
        for e in range(start[j], start[j + 1]):
            q = entry[e]
            i = q // k
            s = 0.0
            for m in range(t):
                s += z_rows[i, m] * z_all[j, m]
            r = s / (t - 1)  # as the dense path: divide, then clip
            if r > 1.0:
                r = 1.0
            elif r < -1.0:
                r = -1.0
            out[i, q - i * k] = r
    return 0


def sampled_fc(z_rows, z_all, sc_indices, sc_valid, out=None, *, columns=None):
    """FC at the valid structural entries of a chunk, by a compiled gather-dot loop.

    Parameters
    ----------
    z_rows : (C, T) float64
        Standardised series of the chunk's voxels.
    z_all : (V, T) float64
        Standardised series of every voxel.
    sc_indices : (C, K) int
        Target column of each entry.
    sc_valid : (C, K) bool
        False in padding (those entries are not computed).
    out : (C, K) float64, optional
        Written in place.
    columns : (lo, hi), optional
        Compute only the entries whose target column lies in ``[lo, hi)``
        and write nothing else to ``out`` (which must then be given, zeroed
        where the caller wants zeros): threads that split the columns of one
        chunk read every target series once in all and write disjoint entries.

    Returns
    -------
    out : (C, K) float64
        ``clip(z_rows[c] . z_all[sc_indices[c, k]] / (T - 1), -1, 1)`` where
        ``sc_valid``; 0 in padding. NaN where a series is NaN (constant).
    """
    z_rows = np.ascontiguousarray(z_rows, dtype=np.float64)
    z_all = np.ascontiguousarray(z_all, dtype=np.float64)
    sc_indices = np.ascontiguousarray(sc_indices, dtype=np.int64)
    sc_valid = np.ascontiguousarray(sc_valid, dtype=bool)
    c, k = sc_indices.shape
    if z_rows.shape[0] != c or sc_valid.shape != (c, k) or z_rows.shape[1] != z_all.shape[1]:
        raise InputError(
            f"sampled_fc: z_rows {z_rows.shape}, z_all {z_all.shape}, sc_indices {sc_indices.shape} and sc_valid "
            f"{sc_valid.shape} must be (C, T), (V, T), (C, K) and (C, K). Pass one chunk's arrays.")
    if columns is None:
        lo, hi = 0, z_all.shape[0]
        out = np.zeros((c, k)) if out is None else out
        out[...] = 0.0
    else:
        lo, hi = (max(0, int(columns[0])), min(z_all.shape[0], int(columns[1])))
        if out is None or out.shape != (c, k) or out.dtype != np.float64 or not out.flags.c_contiguous:
            raise InputError("sampled_fc(columns=...) writes into out: pass a C-contiguous float64 (C, K) array.")
    if c == 0 or k == 0:
        return out
    bad = _compiled(_sampled_fc_loop, fastmath={"reassoc"})(z_rows, z_all, sc_indices, sc_valid, lo, hi, out)
    if bad:
        raise InputError(f"sc_indices holds {bad} valid entries outside [0, {z_all.shape[0]}); structural "
                         "columns must index the voxels of z_all. Check the CSR indices.")
    return out
