"""Voxel-level structure-function coupling kernels (METHODS 1.6).

Two definitions:

* profile coupling (V2): per voxel, the correlation between its SC profile
  and its FC profile over M targets (e.g. voxel -> parcel tractography versus
  voxel -> parcel FC);
* voxel-to-voxel coupling (V1, Fotiadis et al. 2023): per voxel i, the
  Spearman correlation of its structural row and its functional row over
  ``J_i = {j != i : SC_ij != 0 and FC_ij != 0}``. Structural rows arrive as
  gathered CSR entries padded to a fixed width, so the V x V FC matrix never
  exists. The FC a chunk needs is computed one of two ways (``fc_mode``):

  - ``"dense"``: FC rows ``Z_chunk @ Z_all.T / (T - 1)`` by matrix products
    (C x V x T multiply-adds), gathered at the structural non-zeros
    (:func:`dense_fc`: the columns go in blocks, so the (C, V) product never
    exists whole either);
  - ``"sampled"``: only the FC at the structural non-zeros, one length-T dot
    product ``z_i . z_j / (T - 1)`` per entry (nnz x T multiply-adds), the
    needed series gathered per block of rows (:func:`sampled_fc`).

  Both give the same Pearson r up to the order of the T products in a dot
  product (last bits); the edges, ranks and correlations that follow are
  shared (:func:`coupling_from_fc`). Which one is cheaper depends on the
  density of the chunk; :func:`recouple.engine.planner.plan_fc_mode` chooses.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import InputError
from ..validation import check_choice
from ._xp import as_float, is_numpy_namespace, namespace, take_along
from .stats import pearson_rows, spearman_rows, zscore

__all__ = ["chunk_coupling_step", "coupling_from_fc", "dense_block_cols", "dense_fc", "fc_rows", "profile_coupling",
           "sampled_block_rows", "sampled_fc", "standardize_timeseries", "target_fc", "voxel_to_voxel_coupling"]

METHODS = ("spearman", "pearson")
VOXEL_EDGES = ("sc_nonzero", "both_nonzero")
FC_MODES = ("dense", "sampled")

#: working set of one block of gathered series in :func:`sampled_fc` (bytes)
SAMPLED_BLOCK_BYTES = 64 * 2**20
#: one block of FC columns ``(C, block)`` in :func:`dense_fc` (bytes): big enough
#: that each product repacks ``z_rows`` rarely, small enough that a 1,000-row
#: chunk never holds its whole FC rows (50,000 voxels: 400 MB)
DENSE_BLOCK_BYTES = 32 * 2**20


def standardize_timeseries(x):
    """Z-score time series along the last axis (ddof=1) so ``z_i . z_j / (T - 1)`` is Pearson's r.

    Parameters
    ----------
    x : (..., V, T) array

    Returns
    -------
    z : (..., V, T) array; NaN rows for constant series.
    """
    return zscore(x, axis=-1, ddof=1)


def fc_rows(z_rows, z_all):
    """Functional connectivity rows ``(C, V)`` of a chunk of voxels: ``z_rows @ z_all.T / (T - 1)``.

    Parameters
    ----------
    z_rows : (C, T) array, standardised (see :func:`standardize_timeseries`)
    z_all : (V, T) array, standardised

    Returns
    -------
    r : (C, V) array, clipped to [-1, 1]
    """
    xp = namespace(z_rows, z_all)
    t = z_all.shape[-1]
    return xp.clip(z_rows @ xp.matrix_transpose(z_all) / (t - 1), -1.0, 1.0)


def dense_block_cols(n_rows, n_voxels, *, itemsize=8, budget=DENSE_BLOCK_BYTES):
    """Columns per block of :func:`dense_fc`: blocks of equal width (to one
    column) whose product ``(n_rows, cols)`` fits ``budget`` bytes, or at
    least 256 columns wide; ``n_voxels`` when one block fits. A function of
    the shapes only, so the same chunk is always cut the same way.
    """
    v = max(1, int(n_voxels))
    cols = max(256, int(budget // max(1, int(n_rows) * int(itemsize))))
    if cols >= v:
        return v
    n_blocks = -(-v // cols)
    return -(-v // n_blocks)


def dense_fc(z_rows, z_all, sc_indices, *, block_cols=None):
    """FC at given entries from dense FC rows: ``take_along(fc_rows(z_rows, z_all), sc_indices)``.

    The same values: every entry is the same matrix-product element
    ``z_rows[c] . z_all[j]``, divided by ``T - 1`` and clipped after the
    gather instead of before (element-wise, so the order does not matter).
    The product is taken ``block_cols`` columns of ``z_all`` at a time, so
    only a ``(C, block_cols)`` piece of the FC rows exists at once instead of
    the (C, V) rows and their scaled and clipped copies, and each piece is
    read only at the entries whose column falls in it. Blocks unroll under
    jit. On NumPy one piece buffer serves every block of a call, the entries
    are grouped by block once (a stable sort of their block numbers) and a
    block no entry needs is skipped.

    Bit for bit the whole product's values wherever the BLAS sums an element
    over T the same way in a block as in the whole product. OpenBLAS does
    for any number of columns, but sums in another order on one thread than
    on several, and takes very small products (below ~2.6e5 multiply-adds,
    or a single column) on one thread or through other kernels: a default
    block holds at least half of ``DENSE_BLOCK_BYTES / 8`` = 4M products
    (2M, far above), so it runs the way the whole product runs.

    Parameters
    ----------
    z_rows : (C, T) array, standardised
    z_all : (V, T) array, standardised
    sc_indices : (C, K) int array
        Columns wanted per row, in ``[0, V)`` (padding: any valid index).
    block_cols : int, optional
        Columns of ``z_all`` per matrix product (static under jit); default
        :func:`dense_block_cols` with :data:`DENSE_BLOCK_BYTES`.

    Returns
    -------
    r : (C, K) array, clipped to [-1, 1]; NaN where a series is constant.
    """
    xp = namespace(z_rows, z_all)
    v, t = z_all.shape
    if block_cols is None:
        block_cols = dense_block_cols(z_rows.shape[0], v)
    b = max(1, min(int(block_cols), v))
    b = -(-v // -(-v // b))  # the same number of blocks, of equal widths (no sliver of a last block)
    if is_numpy_namespace(xp):
        return _dense_fc_numpy(z_rows, z_all, sc_indices, b)
    f = None
    for a in range(0, v, b):
        w = min(b, v - a)
        piece = z_rows @ xp.matrix_transpose(z_all[a:a + w, :])
        if w == v:
            f = take_along(xp, piece, sc_indices, axis=-1)
            break
        local = sc_indices - a
        inside = (local >= 0) & (local < w)
        g = take_along(xp, piece, xp.where(inside, local, xp.zeros_like(local)), axis=-1)
        f = g if f is None else xp.where(inside, g, f)
    return xp.clip(f / (t - 1), -1.0, 1.0)


def _dense_fc_numpy(z_rows, z_all, sc_indices, b):
    # NumPy: one (C, b) buffer written by every block's product in place; the
    # entries grouped by block once, each block's entries gathered from it
    z_rows, z_all = np.asarray(z_rows), np.asarray(z_all)
    dt = np.result_type(z_rows.dtype, z_all.dtype)
    z_rows, z_all = z_rows.astype(dt, copy=False), z_all.astype(dt, copy=False)
    c, k = sc_indices.shape
    v, t = z_all.shape
    cols = np.asarray(sc_indices).reshape(-1).astype(np.int64, copy=False)
    if cols.size and (cols.min() < -v or cols.max() >= v):
        raise InputError(f"sc_indices holds columns outside [0, {v}) (min {cols.min()}, max {cols.max()}); "
                         "structural columns must index the voxels of z_all. Check the CSR indices.")
    cols = np.where(cols < 0, cols + v, cols)  # as take_along_axis
    out = np.empty(c * k, dtype=dt)
    if b >= v:
        piece = z_rows @ z_all.T
        out[:] = piece.reshape(-1)[np.repeat(np.arange(c, dtype=np.int64) * v, k) + cols]
    else:
        block = cols // b
        order = np.argsort(block.astype(np.int32), kind="stable")
        bounds = np.searchsorted(block[order], np.arange(-(-v // b) + 1))
        local = cols[order] - block[order] * b
        row = order // k
        buf = np.empty(c * b, dtype=dt)
        for i in range(bounds.size - 1):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            if lo == hi:
                continue
            a = i * b
            w = min(b, v - a)
            piece = buf[:c * w].reshape(c, w)
            np.matmul(z_rows, z_all[a:a + w].T, out=piece)
            out[order[lo:hi]] = buf[row[lo:hi] * w + local[lo:hi]]
    out = out.reshape(c, k)
    np.divide(out, t - 1, out=out)
    return np.clip(out, -1.0, 1.0, out=out)


def sampled_block_rows(n_entries, n_timepoints, *, itemsize=8, budget=SAMPLED_BLOCK_BYTES):
    """Rows per block of :func:`sampled_fc` whose gathered series ``(rows, K, T)`` fit ``budget`` bytes."""
    return max(1, int(budget // max(1, n_entries * n_timepoints * itemsize)))


def sampled_fc(z_rows, z_all, sc_indices, *, block_rows=None):
    """FC at given entries only: ``clip(z_rows[c] . z_all[sc_indices[c, k]] / (T - 1), -1, 1)``.

    The sampled counterpart of ``take_along(fc_rows(z_rows, z_all), sc_indices)``:
    nnz x T multiply-adds instead of C x V x T. Per block of ``block_rows``
    rows the needed series are gathered to ``(b, K, T)`` and multiplied with
    the block's own series as a batch of matrix-vector products.

    Parameters
    ----------
    z_rows : (C, T) array, standardised
    z_all : (V, T) array, standardised
    sc_indices : (C, K) int array
        Columns wanted per row (padding: any valid index; its value is
        computed and left to the caller's mask).
    block_rows : int, optional
        Rows per gathered block (static under jit: the blocks unroll); default
        from :data:`SAMPLED_BLOCK_BYTES` (:func:`sampled_block_rows`).

    Returns
    -------
    r : (C, K) array, clipped to [-1, 1]; NaN where a series is constant.
    """
    xp = namespace(z_rows, z_all)
    c, k = sc_indices.shape
    t = z_all.shape[-1]
    if block_rows is None:
        block_rows = sampled_block_rows(k, t)
    b = max(1, min(int(block_rows), c)) if c else 1
    pieces = []
    for a in range(0, c, b):
        e = min(a + b, c)
        idx = sc_indices[a:e, :]
        g = xp.reshape(xp.take(z_all, xp.reshape(idx, ((e - a) * k,)), axis=0), (e - a, k, t))
        pieces.append(xp.matmul(g, z_rows[a:e, :, None])[..., 0])
    if not pieces:
        return xp.zeros((0, k), dtype=z_all.dtype)
    f = pieces[0] if len(pieces) == 1 else xp.concat(pieces, axis=0)
    return xp.clip(f / (t - 1), -1.0, 1.0)


def coupling_from_fc(fc_g, sc_values, sc_indices, sc_valid, rows, *, method="spearman", edges="both_nonzero",
                     min_edges=3):
    """Voxel-to-voxel coupling from the FC at each structural entry (the part both FC modes share).

    ``fc_g`` (C, K): FC of each chunk row with the column in ``sc_indices``;
    other arguments as :func:`voxel_to_voxel_coupling`. Entries in padding
    (``sc_valid`` False) are never read.
    """
    xp = namespace(fc_g, sc_values)
    sc_values = as_float(xp, sc_values)
    valid = sc_valid & (sc_indices != rows[:, None]) & (sc_values != 0)
    if edges == "both_nonzero":
        valid = valid & (fc_g != 0)
    valid = valid & ~xp.isnan(fc_g)
    if method == "spearman":
        r = spearman_rows(sc_values, fc_g, mask=valid, min_count=min_edges)
    else:
        r = pearson_rows(sc_values, fc_g, mask=valid, min_count=min_edges)
    return r, xp.sum(xp.astype(valid, xp.int32), axis=-1)


def voxel_to_voxel_coupling(z_rows, z_all, sc_values, sc_indices, sc_valid, rows, *, method="spearman",
                            edges="both_nonzero", min_edges=3, fc_mode="dense", block_rows=None, block_cols=None):
    """Voxel-to-voxel SC-FC coupling of a chunk of voxels.

    Parameters
    ----------
    z_rows : (C, T) array
        Standardised time series of the chunk's voxels.
    z_all : (V, T) array
        Standardised time series of every voxel.
    sc_values : (C, K) array
        Structural weights of each chunk voxel's CSR row, padded to width K.
    sc_indices : (C, K) int array
        Column (target voxel) of each entry; any valid index in padding.
    sc_valid : (C, K) bool array
        False in padding.
    rows : (C,) int array
        Voxel index of each chunk row (its own column is excluded).
    method : {"spearman", "pearson"}
    edges : {"both_nonzero", "sc_nonzero"}
        ``both_nonzero`` (Fotiadis 2023): SC != 0 and FC != 0;
        ``sc_nonzero``: SC != 0 only.
    min_edges : int
    fc_mode : {"dense", "sampled"}
        How the FC at the structural entries is computed (module docstring):
        dense FC rows by matrix products, gathered (:func:`dense_fc`), or one
        dot product per entry (:func:`sampled_fc`). Same values up to the last bits of each
        dot product. :func:`recouple.engine.planner.plan_fc_mode` picks the
        cheaper one for a chunk's density.
    block_rows : int, optional
        ``"sampled"`` only: rows per gathered block (:func:`sampled_fc`).
    block_cols : int, optional
        ``"dense"`` only: columns per matrix product (:func:`dense_fc`).

    Returns
    -------
    coupling : (C,) float array, NaN where undefined
    n_edges : (C,) int array
    """
    check_choice("fc_mode", fc_mode, FC_MODES)
    if fc_mode == "sampled":
        fc_g = sampled_fc(z_rows, z_all, sc_indices, block_rows=block_rows)
    else:
        fc_g = dense_fc(z_rows, z_all, sc_indices, block_cols=block_cols)
    return coupling_from_fc(fc_g, sc_values, sc_indices, sc_valid, rows, method=method, edges=edges,
                            min_edges=min_edges)


def chunk_coupling_step(z_all, sc_values, sc_indices, sc_valid, rows, *, method="spearman", edges="both_nonzero",
                        min_edges=3, fc_mode="dense", block_rows=None, block_cols=None):
    """:func:`voxel_to_voxel_coupling` of a chunk named by its ``rows``; the
    chunk's series are gathered from ``z_all`` (a device-resident loop's step:
    only the chunk's structural rows and row indices change between chunks).
    Padding rows (``sc_valid`` all False) give NaN coupling and 0 edges."""
    xp = namespace(z_all, sc_values)
    z_rows = xp.take(z_all, rows, axis=0)
    return voxel_to_voxel_coupling(z_rows, z_all, sc_values, sc_indices, sc_valid, rows, method=method, edges=edges,
                                   min_edges=min_edges, fc_mode=fc_mode, block_rows=block_rows,
                                   block_cols=block_cols)


def target_fc(z_voxels, z_targets):
    """FC profiles ``(V, M)``: correlation of each voxel's series with each target's series.

    ``z_voxels`` (V, T) and ``z_targets`` (M, T) standardised (ddof=1).
    """
    return fc_rows(z_voxels, z_targets)


def profile_coupling(sc_profiles, fc_profiles, *, method="spearman", edges="sc_nonzero", min_edges=3):
    """Per-voxel correlation of SC and FC profiles over M targets.

    Parameters
    ----------
    sc_profiles, fc_profiles : (..., V, M) arrays
    method : {"spearman", "pearson"}
    edges : {"sc_nonzero", "all"}
        Targets entering each voxel's correlation: those with SC != 0, or all.
    min_edges : int

    Returns
    -------
    coupling : (..., V) float array, NaN where undefined
    n_edges : (..., V) int array
    """
    xp = namespace(sc_profiles, fc_profiles)
    sc = as_float(xp, sc_profiles)
    fc = as_float(xp, fc_profiles)
    valid = ~(xp.isnan(sc) | xp.isnan(fc))
    if edges == "sc_nonzero":
        valid = valid & (sc != 0)
    if method == "spearman":
        r = spearman_rows(sc, fc, mask=valid, min_count=min_edges)
    else:
        r = pearson_rows(sc, fc, mask=valid, min_count=min_edges)
    return r, xp.sum(xp.astype(valid, xp.int32), axis=-1)
