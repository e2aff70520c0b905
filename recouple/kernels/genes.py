"""Kernels for imaging transcriptomics: SIMPLS partial least squares on the
region Gram matrix (one fit, bootstrap resamples and null maps batched), the
PLS1 variance-explained null, and gene-category scores as a product with a
category-membership matrix.

Everything is written against the array API and is jittable with the number
of components and the aggregation as static arguments. Batches of resamples
or nulls ride along a leading axis; the matrix products are written 2-D so
that a batch of B resamples costs one GEMM, not B matrix-vector products.
"""

from __future__ import annotations

from ._xp import float_dtype, namespace
from .stats import rankdata, zscore

__all__ = [
    "gram",
    "simpls_dual",
    "simpls",
    "pls_bootstrap_moments",
    "pls_bootstrap_accumulate",
    "gene_quadratic_form",
    "pls1_null_varexp",
    "category_profiles",
    "category_scores",
    "gene_label_null_scores",
]


def _sign(xp, v):
    """-1 where ``v < 0``, else +1 (a zero statistic keeps its orientation)."""
    return xp.where(v < 0, xp.asarray(-1.0, dtype=v.dtype), xp.asarray(1.0, dtype=v.dtype))


def gram(X):
    """Region Gram matrix ``A = X Xᵀ`` of ``X (N, G)``: (N, N)."""
    return X @ namespace(X).matrix_transpose(X)


def simpls_dual(A, Y, weights=None, *, n_components=1):
    """SIMPLS in the region (dual) representation, batched.

    Every gene-space vector SIMPLS forms (cross-covariance columns, weights,
    x-loadings, the deflation basis) is ``Xᵀ a`` for some region vector
    ``a``, and ``(Xᵀa)ᵀ(Xᵀb) = aᵀ A b``. The fit therefore runs on the
    (N, N) Gram matrix only; gene-space results are one product ``Xᵀ a`` at
    the end (:func:`simpls`).

    Parameters
    ----------
    A : (N, N) array
        ``X Xᵀ`` of the predictors (regions x genes, usually z-scored).
    Y : (B, N, M) array
        ``B`` response sets (one fit, bootstrap resamples or null maps).
    weights : (B, N) array, optional
        Row weights; integer bootstrap counts reproduce a fit to the resampled
        rows. ``None`` weights every row 1.
    n_components : int
        Number of components (static).

    Returns
    -------
    dict of arrays
        ``weights_dual`` (N, B, C): x-weights are ``Xᵀ weights_dual``.
        ``loadings_dual`` (N, B, C): x-loadings are ``Xᵀ loadings_dual``.
        ``x_scores`` (N, B, C): unit (weighted) norm, orthogonal.
        ``y_loadings`` (M, B, C); ``varexp_x``, ``varexp_y`` (B, C).

    Notes
    -----
    de Jong (1993) SIMPLS as MATLAB ``plsregress``: component c takes the
    leading left singular vector ``r`` of the deflated cross-covariance
    ``X0ᵀ Y0`` (for several maps from the eigenvector of the M x M matrix
    ``Covᵀ Cov``), ``t = X0 r`` normalised, and deflates the
    cross-covariance against the orthonormalised x-loadings. Weighted
    centring uses ``x̄ = Xᵀw / Σw``; since ``Σ w (y - ȳ) = 0`` and
    ``Σ w t = 0`` the resampled matrix is never formed.

    Sign convention: each component is oriented so that the sum over maps of
    ``Y0ᵀ t`` is non-negative; with one map, scores correlate positively
    with the map and positive weights mark genes expressed more where the
    map is high.
    """
    xp = namespace(A, Y, weights)
    dt = xp.result_type(float_dtype(xp, A), float_dtype(xp, Y))
    A = xp.astype(A, dt)
    Y = xp.astype(Y, dt)
    nb, n, m = Y.shape
    Yn = xp.permute_dims(Y, (1, 0, 2))  # (N, B, M)
    w = xp.ones((n, nb), dtype=dt) if weights is None else xp.matrix_transpose(xp.astype(weights, dt))
    total_w = xp.sum(w, axis=0)  # (B,)

    def a_dot(a, b):  # gene-space inner products of Xᵀa and Xᵀb, per column: (B,)
        return xp.sum(a * (A @ b), axis=0)

    ybar = xp.sum(w[:, :, None] * Yn, axis=0) / total_w[:, None]  # (B, M)
    Yc = Yn - ybar[None, :, :]
    ss_y = xp.sum(w[:, :, None] * Yc * Yc, axis=(0, 2))
    Aw = A @ w
    ss_x = xp.sum(xp.linalg.diagonal(A)[:, None] * w, axis=0) - xp.sum(w * Aw, axis=0) / total_w
    cov = w[:, :, None] * Yc  # dual of the cross-covariance Xᵀ diag(w) Yc: (N, B, M)

    basis = []
    out = {k: [] for k in ("weights_dual", "loadings_dual", "x_scores", "y_loadings", "varexp_x", "varexp_y")}
    for c in range(n_components):
        if m == 1:
            gamma = cov[:, :, 0]
        else:
            flat = xp.reshape(cov, (n, nb * m))
            gm = xp.reshape(A @ flat, (n, nb, m))
            ctc = xp.sum(cov[:, :, :, None] * gm[:, :, None, :], axis=0)  # (B, M, M) = Covᵀ Cov
            _, vecs = xp.linalg.eigh(ctc)
            lead = vecs[:, :, m - 1]  # (B, M), eigenvalues ascending
            gamma = xp.sum(cov * lead[None, :, :], axis=2)
        a_gamma = A @ gamma  # (N, B): X r before normalising r
        scale = 1.0 / xp.sqrt(xp.sum(gamma * a_gamma, axis=0))
        xr = a_gamma * scale[None, :]
        t = xr - (xp.sum(w * xr, axis=0) / total_w)[None, :]
        norm_t = xp.sqrt(xp.sum(w * t * t, axis=0))
        q = xp.sum((w * t)[:, :, None] * Yc, axis=0)  # (B, M)
        sign = _sign(xp, xp.sum(q, axis=1))
        s = sign / norm_t
        t = t * s[None, :]
        q = q * s[:, None]
        pdual = w * t
        out["weights_dual"].append(gamma * (scale * s)[None, :])
        out["x_scores"].append(t)
        out["y_loadings"].append(xp.matrix_transpose(q))
        out["varexp_y"].append(xp.sum(q * q, axis=1) / ss_y)
        out["loadings_dual"].append(pdual)
        out["varexp_x"].append(a_dot(pdual, pdual) / ss_x)
        if c < n_components - 1:
            v = pdual
            for _ in range(2):  # Gram-Schmidt twice keeps the basis orthonormal in floating point
                for b in basis:
                    v = v - b * a_dot(b, v)[None, :]
            v = v / xp.sqrt(a_dot(v, v))[None, :]
            basis.append(v)
            av = A @ v
            cov = cov - v[:, :, None] * xp.sum(av[:, :, None] * cov, axis=0)[None, :, :]
    return {key: xp.stack(vals, axis=-1) for key, vals in out.items()}


def simpls(X, Y, weights=None, *, n_components=1):
    """SIMPLS partial least squares regression of ``Y`` on ``X``, batched.

    Parameters
    ----------
    X : (N, G) array
        Predictors (regions x genes), usually z-scored columns; centred
        inside (weighted by ``weights``).
    Y : (B, N, M) array
        ``B`` independent response sets (regions x maps).
    weights : (B, N) array, optional
        Row weights (bootstrap counts); see :func:`simpls_dual`.
    n_components : int
        Number of components (static).

    Returns
    -------
    dict of arrays
        ``x_weights`` (B, G, C): MATLAB ``plsregress`` ``stats.W`` / pyls
        ``x_weights`` (scores = centred X times weights, unit norm).
        ``x_scores`` (B, N, C); ``x_loadings`` (B, G, C) = X0ᵀ T;
        ``y_loadings`` (B, M, C) = Y0ᵀ T; ``varexp_x``, ``varexp_y`` (B, C):
        fraction of the (weighted) total sum of squares of X0 and Y0
        explained by each component. Sign convention of :func:`simpls_dual`.
    """
    xp = namespace(X, Y, weights)
    X = xp.astype(X, xp.result_type(float_dtype(xp, X), float_dtype(xp, Y)))
    dual = simpls_dual(gram(X), Y, weights, n_components=n_components)
    n, nb, nc = dual["x_scores"].shape
    Xt = xp.matrix_transpose(X)

    def to_genes(d):  # (N, B, C) -> (B, G, C) with one GEMM
        g = Xt @ xp.reshape(d, (n, nb * nc))
        return xp.permute_dims(xp.reshape(g, (X.shape[1], nb, nc)), (1, 0, 2))

    return {
        "x_weights": to_genes(dual["weights_dual"]),
        "x_loadings": to_genes(dual["loadings_dual"]),
        "x_scores": xp.permute_dims(dual["x_scores"], (1, 0, 2)),
        "y_loadings": xp.permute_dims(dual["y_loadings"], (1, 0, 2)),
        "varexp_x": dual["varexp_x"],
        "varexp_y": dual["varexp_y"],
    }


def pls_bootstrap_moments(A, Y, counts, reference_projection, *, n_components=1):
    """Moments of sign-aligned bootstrap PLS weights, in the region representation.

    Parameters
    ----------
    A : (N, N) array
        ``X Xᵀ`` of the (z-scored) expression.
    Y : (N, M) array
        Responses.
    counts : (B, N) array
        How often each region is drawn in each bootstrap resample.
    reference_projection : (N, C) array
        ``X (w - mean(w))`` for the original weights ``w (G, C)``; a
        resample's component is flipped when its correlation with the
        original weights (``= sign of dual · reference_projection``) is
        negative.

    Returns
    -------
    mean : (N, C) array
        Mean dual weights over the batch (mean weights = ``Xᵀ mean``).
    scatter : (C, N, N) array
        ``Σ_b (a_b - mean)(a_b - mean)ᵀ`` per component; the per-gene sum of
        squared deviations of the weights is ``x_gᵀ scatter x_g``.

    Notes
    -----
    Equivalent to the two-GEMM PLS1 bootstrap of METHODS 5.3 (``U = Xᵀ C̃``,
    ``X U``) with the gene-space products moved into the Gram matrix, so a
    batch of B resamples costs O(N² B) and never a (G x B) array.
    """
    xp = namespace(A, Y, counts, reference_projection)
    nb = counts.shape[0]
    Yb = xp.broadcast_to(Y[None, :, :], (nb,) + tuple(Y.shape))
    W = simpls_dual(A, Yb, counts, n_components=n_components)["weights_dual"]  # (N, B, C)
    sign = _sign(xp, xp.sum(W * reference_projection[:, None, :], axis=0))  # (B, C)
    W = W * sign[None, :, :]
    mean = xp.mean(W, axis=1)
    d = xp.permute_dims(W - mean[:, None, :], (2, 0, 1))  # (C, N, B)
    return mean, d @ xp.matrix_transpose(d)


def pls_bootstrap_accumulate(A, Y, counts, use, reference_projection, total, mean, scatter, *, n_components=1):
    """Fold a batch of bootstrap resamples into running moments (a device-resident loop's step).

    Parameters
    ----------
    A, Y, counts, reference_projection
        As :func:`pls_bootstrap_moments`.
    use : (B,) array
        1 for a resample of the batch, 0 for padding (rows that keep the
        batch at one shape; they count toward nothing).
    total : () array
        Resamples folded in so far.
    mean : (N, C) array
        Their mean dual weights.
    scatter : (C, N, N) array
        Their summed outer products of deviations.

    Returns
    -------
    total, mean, scatter
        Updated by Chan's formula with the batch's moments.
    """
    xp = namespace(A, Y, counts, reference_projection)
    nb = counts.shape[0]
    Yb = xp.broadcast_to(Y[None, :, :], (nb,) + tuple(Y.shape))
    W = simpls_dual(A, Yb, counts, n_components=n_components)["weights_dual"]  # (N, B, C)
    sign = _sign(xp, xp.sum(W * reference_projection[:, None, :], axis=0))  # (B, C)
    u = xp.astype(use, W.dtype)[None, :, None]
    W = W * sign[None, :, :]
    nb_b = xp.sum(use)
    b_mean = xp.sum(W * u, axis=1) / nb_b
    d = xp.permute_dims((W - b_mean[:, None, :]) * u, (2, 0, 1))  # (C, N, B)
    b_scatter = d @ xp.matrix_transpose(d)
    delta = b_mean - mean
    tot = total + nb_b
    dc = xp.matrix_transpose(delta)  # (C, N)
    mean = mean + delta * (nb_b / tot)
    scatter = scatter + b_scatter + dc[:, :, None] * dc[:, None, :] * (total * nb_b / tot)
    return tot, mean, scatter


def gene_quadratic_form(X, S):
    """Per-gene ``x_gᵀ S_c x_g`` for ``X (N, G)`` and ``S (C, N, N)``: (G, C)."""
    xp = namespace(X, S)
    return xp.matrix_transpose(xp.sum((S @ X[None, :, :]) * X[None, :, :], axis=1))


def pls1_null_varexp(A, Ynull, *, n_components=1):
    """Cumulative variance of each null map explained by 1..C PLS1 components.

    Parameters
    ----------
    A : (N, N) array
        ``X0 X0ᵀ`` of the centred predictors.
    Ynull : (K, N) array
        Null response maps (one per row).

    Returns
    -------
    (K, C) array
        Column c holds the fraction of each null map's variance explained by
        the first c + 1 components.

    Notes
    -----
    For one response the PLS1 scores span the Krylov space
    ``{A y, A² y, ..., A^C y}``, so the explained variance after c
    components is ``||T_cᵀ y||² / ||y||²`` with ``T_c`` an orthonormal basis
    of that space, built by Lanczos steps with full reorthogonalisation: one
    (N x N) @ (N x K) GEMM per component. For C = 1 this is METHODS 5.3:
    ``(yᵀ A y)² / (||y||² ||A y||²)``.
    """
    xp = namespace(A, Ynull)
    dt = xp.result_type(float_dtype(xp, A), float_dtype(xp, Ynull))
    A = xp.astype(A, dt)
    y = xp.matrix_transpose(xp.astype(Ynull, dt))
    y = y - xp.mean(y, axis=0, keepdims=True)  # (N, K)
    ss = xp.sum(y * y, axis=0)
    basis = []
    explained = xp.zeros_like(ss)
    cumulative = []
    v = y
    for _ in range(n_components):
        v = A @ v
        for _ in range(2):
            for b in basis:
                v = v - b * xp.sum(b * v, axis=0, keepdims=True)
        v = v / xp.sqrt(xp.sum(v * v, axis=0, keepdims=True))
        basis.append(v)
        proj = xp.sum(v * y, axis=0)
        explained = explained + proj * proj
        cumulative.append(explained / ss)
    return xp.stack(cumulative, axis=-1)


def _standardized_ranks(xp, x, method):
    """Rows of ``x (R, N)`` ranked (Spearman) and scaled so that dot products are r."""
    if method == "spearman":
        x = rankdata(x, axis=-1)
    z = zscore(x, axis=-1, ddof=1)
    return z / (x.shape[-1] - 1) ** 0.5


def category_profiles(expression, membership, *, method="spearman"):
    """Mean standardised gene profile of each category.

    Parameters
    ----------
    expression : (G, N) array
        Genes in rows (no NaN).
    membership : (G, C) array
        1 where gene g belongs to category c, else 0.

    Returns
    -------
    (C, N) array
        ``P[c] = mean_{g in c} z(rank x_g)``; the dot product of a
        standardised map with ``P[c]`` is the category's mean gene score.
    """
    xp = namespace(expression, membership)
    z = _standardized_ranks(xp, expression, method)
    m = xp.astype(membership, z.dtype)
    sizes = xp.sum(m, axis=0)
    return (xp.matrix_transpose(m) @ z) / sizes[:, None]


def category_scores(maps, expression, membership, profiles, *, method="spearman", aggregate="mean"):
    """Category scores of a batch of maps.

    Parameters
    ----------
    maps : (K, N) array
        Observed or null maps (no NaN).
    expression : (G, N) array
        Genes in rows; used only when ``aggregate`` is not ``"mean"``.
    membership : (G, C) array
        0/1 category membership.
    profiles : (C, N) array
        :func:`category_profiles` output, used when ``aggregate == "mean"``.
    method : {"spearman", "pearson"}
    aggregate : {"mean", "absmean"}

    Returns
    -------
    scores : (K, C) array
        Mean (or mean absolute) gene score over each category's genes.

    Notes
    -----
    With ``"mean"`` the category score is linear in the standardised map,
    so all K maps cost one (K x N) @ (N x C) product. ``"absmean"`` forms the
    (K x G) gene scores (one GEMM) and multiplies by the membership matrix.
    """
    xp = namespace(maps, expression, membership, profiles)
    zm = _standardized_ranks(xp, maps, method)
    if aggregate == "mean":
        return zm @ xp.matrix_transpose(profiles)
    zg = _standardized_ranks(xp, expression, method)
    r = xp.clip(zm @ xp.matrix_transpose(zg), -1.0, 1.0)
    m = xp.astype(membership, r.dtype)
    return (xp.abs(r) @ m) / xp.sum(m, axis=0)[None, :]


def gene_label_null_scores(gene_scores, permutations, membership, *, aggregate="mean"):
    """Category scores under random gene-label permutations ("random-gene" nulls).

    Parameters
    ----------
    gene_scores : (G,) array
        Observed gene scores.
    permutations : (K, G) int array
        Row k reassigns gene scores: gene g receives ``gene_scores[perm[k, g]]``.
    membership : (G, C) array

    Returns
    -------
    (K, C) array
        Category scores of random gene sets of the categories' sizes.
    """
    xp = namespace(gene_scores, permutations, membership)
    s = xp.take(gene_scores, xp.reshape(permutations, (-1,)), axis=0)
    s = xp.reshape(s, tuple(permutations.shape))
    if aggregate == "absmean":
        s = xp.abs(s)
    m = xp.astype(membership, s.dtype)
    return (s @ m) / xp.sum(m, axis=0)[None, :]
