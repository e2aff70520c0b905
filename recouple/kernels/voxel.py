"""Voxel-level structure-function coupling kernels (METHODS 1.6).

Two definitions:

* profile coupling (V2): per voxel, the correlation between its SC profile
  and its FC profile over M targets (e.g. voxel -> parcel tractography versus
  voxel -> parcel FC);
* voxel-to-voxel coupling (V1, Fotiadis et al. 2023): per voxel i, the
  Spearman correlation of its structural row and its functional row over
  ``J_i = {j != i : SC_ij != 0 and FC_ij != 0}``. Structural rows arrive as
  gathered CSR entries padded to a fixed width; functional rows are computed
  on the fly for a chunk of voxels as ``Z_chunk @ Z_all.T / (T - 1)`` and
  gathered at the structural non-zeros, so the V x V FC matrix never exists.
"""

from __future__ import annotations

from ._xp import as_float, namespace, take_along
from .stats import pearson_rows, spearman_rows, zscore

__all__ = ["standardize_timeseries", "fc_rows", "voxel_to_voxel_coupling", "profile_coupling", "target_fc"]

METHODS = ("spearman", "pearson")
VOXEL_EDGES = ("sc_nonzero", "both_nonzero")


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


def voxel_to_voxel_coupling(z_rows, z_all, sc_values, sc_indices, sc_valid, rows, *, method="spearman",
                            edges="both_nonzero", min_edges=3):
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

    Returns
    -------
    coupling : (C,) float array, NaN where undefined
    n_edges : (C,) int array
    """
    xp = namespace(z_rows, z_all, sc_values)
    sc_values = as_float(xp, sc_values)
    f = fc_rows(z_rows, z_all)
    fc_g = take_along(xp, f, sc_indices, axis=-1)
    valid = sc_valid & (sc_indices != rows[:, None]) & (sc_values != 0)
    if edges == "both_nonzero":
        valid = valid & (fc_g != 0)
    valid = valid & ~xp.isnan(fc_g)
    if method == "spearman":
        r = spearman_rows(sc_values, fc_g, mask=valid, min_count=min_edges)
    else:
        r = pearson_rows(sc_values, fc_g, mask=valid, min_count=min_edges)
    return r, xp.sum(xp.astype(valid, xp.int32), axis=-1)


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
