"""NumPy-backend drivers of the graph kernels: Floyd-Warshall's N pivot steps
in compiled loops (numba through :mod:`recouple.host.jit`, or SciPy's
``csgraph.floyd_warshall``), bit-identical to the portable pivot steps of
:func:`recouple.kernels.graph.floyd_warshall`. :mod:`recouple.graph` passes
:func:`floyd_warshall_pivots` to the kernels as ``pivots=`` on NumPy."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csgraph

from . import jit

__all__ = ["floyd_warshall_pivots"]


def floyd_warshall_pivots(d, p=None):
    """All N Floyd-Warshall pivot steps of :func:`recouple.kernels.graph.floyd_warshall`
    on NumPy arrays: lengths ``d`` (..., N, N) and initial predecessors ``p``
    (None when not tracked); returns ``dist`` or ``(dist, pred)``.

    The compiled loop of :mod:`recouple.host.jit` when enabled, else SciPy's
    compiled routine one matrix at a time, else the pivot steps on
    preallocated NumPy buffers: the same sums and strict comparisons in the
    same order as the portable kernel, so the same lengths and predecessors
    bit for bit. Passed to the graph kernels as ``pivots=`` on the NumPy backend.
    """
    if jit.enabled() and d.dtype in (np.float32, np.float64) and d.size:
        return jit.floyd_warshall_blocks(d, p)
    compiled = _floyd_warshall_compiled(d, p is not None)
    if compiled is not None:
        return compiled
    # Same pivot steps as the portable loop on preallocated buffers, updated
    # in place: one add and one minimum a pivot for the lengths, plus one
    # compare and one masked copy when the predecessors are tracked.
    d = np.array(d, copy=True)
    n = d.shape[-1]
    through = np.empty_like(d)
    if p is None:
        for k in range(n):
            np.add(d[..., :, k, None], d[..., None, k, :], out=through)
            np.minimum(d, through, out=d)
        return d
    p = np.asarray(p).astype(np.int32)
    better = np.empty(d.shape, dtype=bool)
    for k in range(n):
        np.add(d[..., :, k, None], d[..., None, k, :], out=through)
        np.less(through, d, out=better)
        np.minimum(d, through, out=d)
        np.copyto(p, p[..., None, k, :], where=better)
    return d, p.astype(np.int64)


def _floyd_warshall_compiled(d, predecessors):
    """The same pivot steps in SciPy's compiled Floyd-Warshall, one matrix at
    a time (same sums, same strict comparisons in the same order, so the
    same lengths and predecessors bit for bit; several times faster than N
    NumPy passes). None where it does not apply: other than float64, or
    zero-length edges (SciPy reads zeros in a dense matrix as absent)."""
    if d.dtype != np.float64 or d.size == 0:
        return None
    n = d.shape[-1]
    flat = d.reshape((-1, n, n))
    off = ~np.eye(n, dtype=bool)
    if np.any((flat == 0) & off):
        return None
    dist = np.empty_like(flat)
    pred = np.empty(flat.shape, dtype=np.int64) if predecessors else None
    for s, m in enumerate(flat):
        if predecessors:
            dist[s], pr = csgraph.floyd_warshall(m, directed=True, return_predecessors=True)
            pred[s] = np.where(pr < 0, -1, pr)
        else:
            dist[s] = csgraph.floyd_warshall(m, directed=True)
    if not predecessors:
        return dist.reshape(d.shape)
    return dist.reshape(d.shape), pred.reshape(d.shape)
