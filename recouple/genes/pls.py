"""SIMPLS PLS regression of brain maps on gene expression, with
variance-explained nulls and bootstrap Z-scores of the gene weights."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import norm

from ..engine.backend import get_backend
from ..engine.dispatch import call_kernel, device_get, device_put, pad_leading, resident_body, resident_step
from ..engine.progress import ProgressBar
from ..engine.random import bootstrap_indices
from ..exceptions import InputError, ShapeError
from ..io.tables import write_rnk
from ..kernels import genes as _kg
from ..kernels import pvalues as _kp
from ..kernels import stats as _ks
from ..nulls import spec as _spec
from ..validation import check_positive_int
from .expression import Expression, _prepare

__all__ = ["PLSResult", "pls"]


@dataclass(frozen=True)
class PLSResult:
    """SIMPLS PLS regression of maps on gene expression (:func:`pls`).

    Attributes
    ----------
    weights : (G, C) float array
        Gene weights (MATLAB ``stats.W``, pyls ``x_weights``): scores are
        z-scored expression (centred) times weights.
    scores : (N, C) float array
        Regional component scores (unit norm, mutually orthogonal).
    loadings : (G, C) float array
        x-loadings ``X0ᵀ T``.
    y_loadings : (M, C) float array
        ``Y0ᵀ T``.
    var_explained : (C,) float array
        Fraction of the (z-scored) maps' variance explained by each component.
    var_explained_x : (C,) float array
        Fraction of the expression variance explained by each component.
    pvalue : (C,) float array or None
        Permutation/spin p of the cumulative variance explained by components
        1..c (+1 convention), ``None`` without nulls.
    null_var_explained : (K, C) float array or None
        Cumulative variance explained of each null map.
    se, zscores : (G, C) float arrays or None
        Bootstrap standard errors (ddof=1) of the weights and ``weights / se``;
        ``None`` when ``n_boot == 0``.
    genes : (G,) str array
    regions : (N,) str array
    maps : (M,) str array
    params : dict

    Notes
    -----
    Sign convention: each component is oriented so that its scores correlate
    positively with the map (with several maps: the sum of ``y_loadings`` is
    non-negative), so genes with positive weights are expressed more where
    the map is high.
    """

    weights: np.ndarray
    scores: np.ndarray
    loadings: np.ndarray
    y_loadings: np.ndarray
    var_explained: np.ndarray
    var_explained_x: np.ndarray
    pvalue: np.ndarray | None
    null_var_explained: np.ndarray | None
    se: np.ndarray | None
    zscores: np.ndarray | None
    genes: np.ndarray
    regions: np.ndarray
    maps: np.ndarray
    params: dict = field(default_factory=dict)

    def ranked(self, component=0) -> dict:
        """Genes ranked by bootstrap Z (or by weight without bootstrap), highest first."""
        key = self.zscores if self.zscores is not None else self.weights
        order = np.argsort(-np.nan_to_num(key[:, component], nan=-np.inf), kind="stable")
        cols = {"rank": np.arange(1, order.size + 1), "gene": self.genes[order],
                "weight": self.weights[order, component]}
        if self.zscores is not None:
            z = self.zscores[order, component]
            p = 2 * norm.sf(np.abs(z))
            cols.update({"se": self.se[order, component], "z": z, "pvalue": p,
                         "pvalue_fdr": call_kernel(_ks.fdr_bh, p, static={"axis": -1})})
        return cols

    def write_rnk(self, path, component=0):
        """Write a GSEA pre-ranked list (gene, Z or weight) for one component."""
        key = self.zscores if self.zscores is not None else self.weights
        return write_rnk(path, self.genes, key[:, component])


def _is_expression_like(obj) -> bool:
    return isinstance(obj, (Expression, str, Path)) or (hasattr(obj, "columns") and hasattr(obj, "index"))


def pls(maps, expression, *, n_components=1, n_boot=0, nulls=None, seed=0, bootstrap=None, labels=None,
        n_perm=1000, coords=None, hemi=None, distance=None, missing="error", map_names=None,
        batch_size=None, backend=None, progress=False, duplicate_genes="error") -> PLSResult:
    """PLS regression (SIMPLS) of brain maps on regional gene expression.

    Parameters
    ----------
    maps : (N,) or (M, N) array
        Response map(s), z-scored per map; several maps are fitted jointly.
    expression : Expression, path or DataFrame
        Regions x genes; z-scored per gene (ddof=1) before fitting. The
        order ``pls(expression, maps)`` of earlier releases still works (the
        expression is recognised by its type) with a ``DeprecationWarning``.
    n_components : int
        Components to extract.
    n_boot : int
        Bootstrap resamples of regions (with replacement) for the standard
        errors of the gene weights; 0 skips the bootstrap.
    nulls : see :mod:`recouple.nulls.spec`
        Nulls of the maps for the variance-explained p-value; ``None`` skips it.
    seed : int, optional
        Seed of the bootstrap draws (and of nulls drawn by name); default 0.
        The same seed gives identical resamples.
    bootstrap : (n_boot, N) int array, optional
        Precomputed bootstrap indices (rows of regions drawn with
        replacement) over the analysed regions; overrides ``n_boot``/``seed``.
        Default: :func:`recouple.engine.random.bootstrap_indices`.
    labels, missing, map_names
        Alignment by label (see :func:`associate`); labelled nulls are aligned to ``labels``.
    duplicate_genes : {"error", "drop", "first", "mean"}
        For an expression given as a path or DataFrame (see :func:`load_expression`).
    n_perm, coords, hemi, distance
        For nulls drawn by name (``seed`` default 0: the same seed gives identical nulls).
    batch_size : int, optional
        Resamples (bootstrap) or null maps per batch.
    progress : bool
        Show a progress bar of the bootstrap on stderr. (A callable
        ``progress(done, total)``, the earlier form, is still called after
        each bootstrap batch, with a ``DeprecationWarning``.)

    Returns
    -------
    PLSResult

    Notes
    -----
    SIMPLS as MATLAB ``plsregress``/pyls (Whitaker et al. 2016; Morgan et
    al. 2019). The bootstrap refits the model to resampled regions (data
    z-scored once, centred per resample) with resamples as count weights:
    each component costs two matrix products for the whole batch (METHODS
    5.3); each resample's component is sign-aligned with the original by
    the sign of their correlation; ``se`` is the standard deviation over
    resamples and ``zscores = weights / se``. Components are not reordered.
    The variance-explained null for one map uses the region Gram matrix
    (one product per component for all nulls); several maps refit SIMPLS
    per null, batched.

    References
    ----------
    de Jong S. SIMPLS. Chemometr Intell Lab Syst 1993;18:251-263.
    Whitaker KJ et al. PNAS 2016;113:9105-9110.
    """
    if _is_expression_like(maps) and not _is_expression_like(expression):
        warnings.warn("rc.genes.pls(expression, maps) is deprecated; pass the maps first: "
                      "rc.genes.pls(maps, expression), as rc.genes.associate.", DeprecationWarning, stacklevel=2)
        maps, expression = expression, maps
    if callable(progress):
        warnings.warn("pls(progress=callable) is deprecated; pass progress=True for a progress bar on stderr.",
                      DeprecationWarning, stacklevel=2)
    n_components = check_positive_int("n_components", n_components)
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    vals, y, index, names, aligned, _ = _prepare(expression, maps, labels, missing, map_names, duplicate_genes)
    n, g = vals.shape
    if n_components > n - 1:
        raise InputError(f"n_components must be at most N - 1 = {n - 1} (regions); got {n_components}. "
                         "Ask for fewer components.")
    X = call_kernel(_ks.zscore, vals, backend=backend, static={"axis": 0, "ddof": 1})
    Y = call_kernel(_ks.zscore, y[:, index], backend=backend, static={"axis": -1, "ddof": 1})
    if np.isnan(Y).any():
        raise InputError("maps must vary across the analysed regions; got a constant map. Remove it.")
    Ycols = np.ascontiguousarray(Y.T)  # (N, M)
    A = call_kernel(_kg.gram, X, backend=backend)
    fit = call_kernel(_kg.simpls, X, Ycols[None], backend=backend, static={"n_components": n_components})
    fit = {k: v[0] for k, v in fit.items()}
    weights = fit["x_weights"]

    pvalue = null_ve = None
    null = _spec.resolve_nulls(nulls, y, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi, distance=distance,
                               labels=None if labels is None else np.atleast_1d(labels))
    if null is not None:
        null = null[:, :, index]
        null_ve = _pls_null(A, null, n_components, batch_size, backend)
        observed = np.cumsum(fit["varexp_y"])
        pvalue = call_kernel(_kp.permutation_pvalue, observed, null_ve, backend=backend,
                             static={"alternative": "greater", "axis": 0, "plus_one": True})

    se = z = None
    if bootstrap is not None or n_boot > 0:
        if bootstrap is None:
            bootstrap = bootstrap_indices(seed, n_boot, n)
        boot = np.asarray(bootstrap)
        if boot.ndim != 2 or boot.shape[1] != n or not np.issubdtype(boot.dtype, np.integer):
            raise ShapeError(f"bootstrap must be (n_boot, N) integer indices with N = {n} regions; got "
                             f"{boot.shape} {boot.dtype}. Draw them with recouple.engine.random.bootstrap_indices.")
        if boot.shape[0] < 2 or boot.min() < 0 or boot.max() >= n:
            raise InputError(f"bootstrap must hold at least 2 resamples of indices in [0, {n - 1}]; got "
                             f"{boot.shape[0]} resample(s), values {boot.min()}..{boot.max()}. Redraw them.")
        if callable(progress):
            report = progress
        elif progress:
            bar = ProgressBar(boot.shape[0], desc="pls bootstrap", unit="resamples")

            def report(done, total):
                bar.update(done - bar.n)
        else:
            report = None
        try:
            se = _bootstrap_se(X, A, Ycols, boot, weights, n_components, batch_size, backend, report)
        finally:
            if progress and not callable(progress):
                bar.close()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = weights / se
        n_boot = boot.shape[0]
    return PLSResult(
        weights=weights, scores=fit["x_scores"], loadings=fit["x_loadings"], y_loadings=fit["y_loadings"],
        var_explained=fit["varexp_y"], var_explained_x=fit["varexp_x"], pvalue=pvalue, null_var_explained=null_ve,
        se=se, zscores=z, genes=aligned.genes, regions=aligned.regions, maps=names,
        params={"n_components": n_components, "n_boot": n_boot, "seed": seed,
                "n_perm": 0 if null is None else int(null.shape[1])},
    )


def _pls_null(A, null, n_components, batch_size, backend):
    """(K, C) cumulative variance explained of null maps (NaN rows stay NaN)."""
    m, k, n = null.shape
    out = np.full((k, n_components), np.nan)
    rows = np.flatnonzero(~np.isnan(null).any(axis=(0, 2)))
    # each null map is standardised like the observed maps (matters with several maps)
    null = (null - null.mean(axis=2, keepdims=True)) / null.std(axis=2, ddof=1, keepdims=True)
    step = batch_size or 4096
    Yn = np.ascontiguousarray(np.transpose(null, (1, 2, 0)))  # (K, N, M)
    if get_backend(backend).name != "numpy":
        if rows.size:
            out[rows] = _pls_null_resident(A, null[0] if m == 1 else Yn, rows, m, n_components,
                                           min(step, rows.size), backend)
        return out
    for s in range(0, rows.size, step):
        sel = rows[s:s + step]
        if m == 1:
            out[sel] = call_kernel(_kg.pls1_null_varexp, A, null[0, sel], backend=backend,
                                   static={"n_components": n_components})
        else:
            res = call_kernel(_kg.simpls_dual, A, Yn[sel], backend=backend, static={"n_components": n_components})
            out[sel] = np.cumsum(res["varexp_y"], axis=-1)
    return out


def _pls_null_resident(A, null, rows, m, n_components, step, backend):
    """:func:`_pls_null` kept on the device: ``A`` moved once, every batch of
    null maps padded to ``step`` (repeating its first row; padded results are
    dropped) and copied explicitly; one compiled program."""
    kernel = _kg.pls1_null_varexp if m == 1 else _kg.simpls_dual
    run = resident_step(kernel, backend, static={"n_components": n_components})
    A_dev = device_put(A, backend)
    pieces = []
    for s in range(0, rows.size, step):
        sel = rows[s:s + step]
        batch = device_put(pad_leading(null[sel], step, null[sel[0]]), backend)
        with resident_body(backend):
            res = run(A_dev, batch)
        pieces.append((sel.size, res if m == 1 else res["varexp_y"]))
    values = device_get([p for _, p in pieces], backend)
    out = np.concatenate([v[:size] for (size, _), v in zip(pieces, values)], axis=0)
    return out if m == 1 else np.cumsum(out, axis=-1)


def _bootstrap_se_resident(X, A, Ycols, counts, ref_proj, n_components, step, backend, progress):
    """:func:`_bootstrap_se` kept on the device: expression, Gram matrix,
    maps and reference moved once; each batch of resample counts padded to
    ``step`` (padding: every region once, weight 0) and copied explicitly;
    moments combined on the device. Two compiled programs (the batch step,
    the final per-gene quadratic form)."""
    nb, n = counts.shape
    fold = resident_step(_kg.pls_bootstrap_accumulate, backend, static={"n_components": n_components})
    quad = resident_step(_kg.gene_quadratic_form, backend)
    X_dev, A_dev, Y_dev, ref_dev, total, mean, scatter = device_put(
        [X, A, Ycols, ref_proj, np.zeros(()), np.zeros((n, n_components)), np.zeros((n_components, n, n))], backend)
    for s in range(0, nb, step):
        c = counts[s:s + step]
        use = pad_leading(np.ones(c.shape[0]), step, 0.0)
        batch, use = device_put([pad_leading(c, step, 1.0), use], backend)
        with resident_body(backend):
            total, mean, scatter = fold(A_dev, Y_dev, batch, use, ref_dev, total, mean, scatter)
        if progress is not None:
            progress(min(s + step, nb), nb)
    with resident_body(backend):
        m2 = quad(X_dev, scatter)
    m2 = device_get(m2, backend)
    return np.sqrt(np.maximum(m2, 0.0) / (nb - 1))


def _bootstrap_se(X, A, Ycols, boot, reference, n_components, batch_size, backend, progress):
    """Bootstrap SE of the weights (ddof=1). Resamples run in batches in the
    region representation; batch moments combine with Chan's formula."""
    nb, n = boot.shape
    counts = np.zeros((nb, n))
    np.add.at(counts, (np.repeat(np.arange(nb), n), boot.ravel()), 1.0)
    ref_proj = X @ (reference - reference.mean(axis=0))
    step = batch_size or 1000
    if get_backend(backend).name != "numpy":
        return _bootstrap_se_resident(X, A, Ycols, counts, ref_proj, n_components, min(step, nb), backend, progress)
    total, mean, scatter = 0, np.zeros((n, n_components)), np.zeros((n_components, n, n))
    for s in range(0, nb, step):
        c = counts[s:s + step]
        b_mean, b_scatter = call_kernel(_kg.pls_bootstrap_moments, A, Ycols, c, ref_proj, backend=backend,
                                        static={"n_components": n_components})
        nb_b = c.shape[0]
        delta = b_mean - mean
        tot = total + nb_b
        mean = mean + delta * (nb_b / tot)
        scatter = scatter + b_scatter + np.einsum("nc,mc->cnm", delta, delta) * (total * nb_b / tot)
        total = tot
        if progress is not None:
            progress(total, nb)
    m2 = call_kernel(_kg.gene_quadratic_form, X, scatter, backend=backend)
    return np.sqrt(np.maximum(m2, 0.0) / (total - 1))


