"""Design algebra and input checks of permutation inference: the effect and
nuisance bases of a contrast, the scaled reduced-model residuals, data,
design, contrast and covariate checks, and pairing of pre/post sessions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..exceptions import InputError, ShapeError, describe
from ..validation import as_array

__all__ = ["pair_sessions"]


def orth(a, tol=None):
    """Orthonormal basis of the column space of ``a`` (n, m) -> (n, rank)."""
    if a.size == 0:
        return np.zeros((a.shape[0], 0))
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    tol = s.max() * max(a.shape) * np.finfo(float).eps if tol is None and s.size else (tol or 0)
    return u[:, s > tol]


def matrix_rank(m):
    return int(np.linalg.matrix_rank(m)) if m.size else 0


@dataclass(frozen=True)
class Partition:
    basis_x: np.ndarray  # (r, n)
    basis_z: np.ndarray  # (q, n)
    df: int
    rank: int


def partition(design, contrast):
    """Effect and nuisance bases for ``contrast`` (r, p) of ``design`` (n, p)."""
    n, p = design.shape
    q_full = np.linalg.pinv(design.T @ design)
    # Reduced model under H0 (C beta = 0): beta in null(C), Z = M null(C).
    _, s, vt = np.linalg.svd(contrast, full_matrices=True)
    r = int((s > s.max() * max(contrast.shape) * np.finfo(float).eps).sum())
    null_c = vt[r:].T
    qz = orth(design @ null_c)
    x = design @ q_full @ contrast.T  # (n, r), coefficient of x equals C beta
    xr = x - qz @ (qz.T @ x)
    if r == 1:
        norm = np.linalg.norm(xr[:, 0])
        qx = (xr[:, :1] / norm).T if norm > 0 else np.zeros((1, n))
    else:
        qx = orth(xr).T
    return Partition(basis_x=qx, basis_z=np.ascontiguousarray(qz.T), df=n - matrix_rank(design), rank=r)


def check_design(design, contrast, n):
    m = as_array("design", design)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[0] != n:
        raise ShapeError(
            f"design must be a (n_scans, n_regressors) matrix with n_scans = {n} rows (one per data row); got "
            f"{describe(m)}. Build it with recouple.io.design.design_from_table or read_fsl_design."
        )
    if not np.isfinite(m).all():
        bad = np.argwhere(~np.isfinite(m))[0]
        raise InputError(
            f"design must contain only finite values; found NaN/inf at row {bad[0]}, column {bad[1]}. "
            "Drop or impute the scans with missing covariates (and the matching data rows)."
        )
    rank = matrix_rank(m)
    if rank < m.shape[1]:
        raise InputError(
            f"design must have full column rank; got rank {rank} for {m.shape[1]} columns (collinear or constant "
            "duplicate regressors, e.g. an intercept plus a full set of group dummies). Drop the redundant "
            "column(s) or use treatment coding."
        )
    if n - rank < 1:
        raise InputError(
            f"design must leave at least one residual degree of freedom; got {n} scans and {rank} regressors. "
            "Use fewer regressors or more scans."
        )
    c = as_array("contrast", contrast)
    if c.ndim == 1:
        c = c[None, :]
    if c.ndim != 2 or c.shape[1] != m.shape[1]:
        raise ShapeError(
            f"contrast must have one weight per design column ({m.shape[1]}); got {describe(c)}. "
            "Pass e.g. [1, 0, 0] to test the first regressor."
        )
    if not np.isfinite(c).all() or not np.any(c):
        raise InputError(f"contrast must be finite and not all zero; got {c.tolist()}. Put a 1 on the tested column.")
    return m, c


def check_data(data, name="data"):
    y = as_array(name, data)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ShapeError(
            f"{name} must be (n_scans, n_elements); got {describe(y)}. Flatten regions/edges/voxels into columns."
        )
    if 0 in y.shape:
        raise ShapeError(
            f"{name} must hold at least one scan (row) and one element (column); got {describe(y)}. "
            "Pass the data of every scan, one row per scan (an empty group cannot be tested)."
        )
    if not np.isfinite(y).all():
        bad = np.argwhere(~np.isfinite(y))[0]
        raise InputError(
            f"{name} must contain only finite values; found {int((~np.isfinite(y)).sum())} NaN/inf value(s), the "
            f"first at scan {bad[0]}, element {bad[1]}. Drop those elements (columns) or scans, or impute them."
        )
    return y


def prepare(y, design, contrast):
    part = partition(design, contrast)
    qz = part.basis_z
    resid = y - qz.T @ (qz @ y) if qz.shape[0] else y.copy()
    ss = np.einsum("ij,ij->j", resid, resid)
    scale_ref = np.einsum("ij,ij->j", y - y.mean(0), y - y.mean(0)) + np.einsum("ij,ij->j", y, y)
    degenerate = ss <= 1e-24 * np.maximum(scale_ref, 1e-300)
    scaled = np.where(degenerate, 0.0, resid / np.sqrt(np.where(degenerate, 1.0, ss)))
    return part, np.ascontiguousarray(scaled), degenerate


def check_covariates(covariates, n):
    cov = as_array("covariates", covariates)
    if cov.ndim == 1:
        cov = cov[:, None]
    if cov.ndim != 2 or cov.shape[0] != n:
        raise ShapeError(f"covariates must be (n_scans={n}, n_covariates); got {describe(cov)}. One row per scan.")
    if not np.isfinite(cov).all():
        raise InputError("covariates must contain only finite values; found NaN/inf. Drop or impute those scans.")
    return cov


def pair_sessions(scans, *, subject="subject", session="session", pre="pre", post="post"):
    """Row indices of the pre and post scan of every subject with both.

    Parameters
    ----------
    scans : pandas.DataFrame or dict of columns
    subject, session : column names
    pre, post : session values

    Returns
    -------
    subjects : (n,) subject ids, sorted
    pre_rows, post_rows : (n,) int row indices into ``scans``

    Raises
    ------
    InputError if a subject has a pre scan without a post scan (or the reverse)
    or more than one scan per session.
    """
    table = pd.DataFrame(scans)
    for col in (subject, session):
        if col not in table.columns:
            raise InputError(f"scans must have a {col!r} column; got columns {list(table.columns)}. "
                             f"Pass {'subject' if col == subject else 'session'}= with the right name.")
    rows = {}
    for i, (s, ses) in enumerate(zip(table[subject].tolist(), table[session].tolist())):
        if ses not in (pre, post):
            continue
        key = (s, ses)
        if key in rows:
            raise InputError(f"scans must have one {ses!r} scan per subject; subject {s!r} has several. "
                             "Average them or keep one.")
        rows[key] = i
    subs_pre = {s for s, ses in rows if ses == pre}
    subs_post = {s for s, ses in rows if ses == post}
    unpaired = sorted(map(str, subs_pre ^ subs_post))
    if unpaired:
        raise InputError(
            f"paired sessions must exist for every subject; subject(s) {', '.join(unpaired[:10])} have only one of "
            f"{pre!r}/{post!r}. Drop those subjects (or their scans) before a paired test."
        )
    if not subs_pre:
        raise InputError(f"scans must contain sessions {pre!r} and {post!r}; found none. Check pre=/post=.")
    subjects = np.array(sorted(subs_pre, key=str))
    return (subjects, np.array([rows[(s, pre)] for s in subjects]), np.array([rows[(s, post)] for s in subjects]))


def split_contrasts(contrast, test, p):
    c = np.asarray(contrast, dtype=np.float64)
    if c.ndim == 1:
        return [c[None, :]]
    if c.ndim != 2:
        raise ShapeError(f"contrast must be (p,) or (n_contrasts, p); got {describe(c)}. One weight per design column.")
    if test == "F":
        return [c]
    return [row[None, :] for row in c]


def resolve_kind(resampling, design, contrasts) -> str:
    """``"signflip"`` or ``"permute"``: ``resampling.kind``, with ``"auto"``
    resolved to sign flips when the tested effect is one constant column."""
    kind = resampling.resolved_kind
    if kind != "auto":
        return kind
    tested = np.flatnonzero(np.any(np.atleast_2d(contrasts) != 0, axis=0))
    return "signflip" if len(tested) == 1 and np.ptp(design[:, tested[0]]) == 0 else "permute"
