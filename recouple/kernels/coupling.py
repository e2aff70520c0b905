"""Nodal structure-function coupling kernels (batched over leading axes)."""

from __future__ import annotations

from ._xp import namespace
from .stats import pearson_rows, spearman_rows

EDGE_SETS = ("sc_nonzero", "offdiag", "both_nonzero", "mask")
METHODS = ("spearman", "pearson")


def edge_mask(sc, fc, *, edges="sc_nonzero", mask=None):
    """Boolean ``(..., N, N)`` mask of the entries each node's correlation uses.

    ``"sc_nonzero"`` (Baum 2020): off-diagonal entries with SC != 0;
    ``"offdiag"`` (Gu 2021): every off-diagonal entry;
    ``"both_nonzero"`` (Fotiadis 2023): SC != 0 and FC != 0;
    ``"mask"``: only the given ``mask``. A ``mask`` given with another edge
    set is intersected with it. The diagonal is never used.
    """
    xp = namespace(sc, fc, mask)
    n = sc.shape[-1]
    off = ~xp.astype(xp.eye(n), xp.bool)
    shape = xp.broadcast_arrays(sc, fc)[0].shape
    if edges == "sc_nonzero":
        m = (sc != 0) & off
    elif edges == "offdiag":
        m = xp.broadcast_to(off, shape)
    elif edges == "both_nonzero":
        m = (sc != 0) & (fc != 0) & off
    elif edges == "mask":
        m = xp.broadcast_to(off, shape)
    else:
        raise ValueError(f"edges must be one of {EDGE_SETS}; got {edges!r}")
    if mask is not None:
        m = m & xp.astype(mask, xp.bool)
    return xp.broadcast_to(m, shape)


def nodal_coupling(sc, fc, *, method="spearman", edges="sc_nonzero", min_edges=3, mask=None):
    """Per-node correlation of SC and FC rows over an edge set.

    Parameters
    ----------
    sc, fc : (..., N, N) arrays
    method : {"spearman", "pearson"}
    edges : {"sc_nonzero", "offdiag", "both_nonzero", "mask"}
    min_edges : int
        Fewest edges for a defined coupling; fewer gives NaN.
    mask : (..., N, N) bool array, optional

    Returns
    -------
    coupling : (..., N) float array (NaN where undefined)
    n_edges : (..., N) int array
    """
    xp = namespace(sc, fc, mask)
    m = edge_mask(sc, fc, edges=edges, mask=mask)
    if method == "spearman":
        r = spearman_rows(sc, fc, mask=m, min_count=min_edges)
    elif method == "pearson":
        r = pearson_rows(sc, fc, mask=m, min_count=min_edges)
    else:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    n_edges = xp.sum(xp.astype(m, xp.int32), axis=-1)
    return r, n_edges
