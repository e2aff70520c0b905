"""The permutation tests: one-sample and paired sign-flip tests, two-sample
tests, the GLM with nuisance covariates (Freedman-Lane) and clinical
correlations, with max-statistic FWER, BH-FDR and optional TFCE/cluster
inference (METHODS 3.1-3.11).

Every resample of a block is one matrix product (:mod:`recouple.kernels.glm`);
blocks are streamed (:mod:`.streamed`: the fused cache-tiled kernel on
NumPy, the device-resident loop on JAX/CuPy), keeping only per-resample
maxima and per-element exceedance counts unless ``Resampling(keep_null=True)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

from ..engine.streaming import plan_resample_batch, stream_resamples
from ..exceptions import InputError, ShapeError, describe
from ..host.labels import max_per_map
from ..kernels import glm as _glm
from ..kernels import pvalues as _kp
from ..kernels import stats as _kstats
from ..validation import as_array, check_choice
from .design import (
    check_covariates,
    check_data,
    check_design,
    prepare,
    resolve_kind,
    split_contrasts,
)
from .options import Resampling, Spatial, accepts_legacy_options, fill_doc
from .resamples import Resamples, draw_resamples
from .spatial import (
    ClusterResult,
    SpatialResult,
    cluster_stats,
    make_spatial,
    tfce_scores,
)
from .streamed import null_batches, observed_g, stream_scores
from .tail import gpd_pvalue

__all__ = ["PermutationResult", "one_sample", "paired", "two_sample", "glm", "correlation", "glm_resamples"]


@dataclass(frozen=True)
class PermutationResult:
    """Per-element statistics and permutation p-values.

    Attributes
    ----------
    statistic : (V,) or (n_contrasts, V) t, F or r per element
    pvalue : uncorrected permutation p (+1 convention)
    pvalue_fwer : max-statistic FWER p (across elements; across contrasts too
        when ``fwer_across_contrasts=True``)
    pvalue_fdr : BH q-values of ``pvalue`` across elements
    null_max : (n_perm,) or (n_contrasts, n_perm) max statistic per resample
        (|t| for two-sided tests, -t for ``alternative="less"``)
    n_perm : number of resamples in the null (identity excluded when exhaustive)
    permutations : (n_perm, n) int or None — row-permutation indices used
    signs : (n_perm, n) float or None — sign flips used
    stat : "t", "F" or "r"
    df : residual degrees of freedom
    alternative : the tail
    exhaustive : whether every distinct resample was enumerated
    null : (n_perm, V) full null of the statistic when ``keep_null=True``
    tfce : :class:`SpatialResult` or None
    clusters : :class:`ClusterResult` or None
    params : dict of the options used (method, contrast, design columns, ...)
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    pvalue_fwer: np.ndarray
    pvalue_fdr: np.ndarray
    null_max: np.ndarray
    n_perm: int
    permutations: np.ndarray | None
    signs: np.ndarray | None
    stat: str
    df: int
    alternative: str
    exhaustive: bool
    null: np.ndarray | None = None
    tfce: SpatialResult | None = None
    clusters: ClusterResult | None = None
    params: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- one contrast, streamed
def _bytes_per_resample(n, v, r, q, keep_full):
    # g, scores and the projections: a few (r + q + 4) x V floats per resample.
    per = 8.0 * (v * (r + q + 4) + n * (r + q + 1))
    if keep_full:
        per += 8.0 * v * 4
    return per


def _fit_contrast(y, design, contrast, *, drawn, alternative, resampling, spatial, tfce_spatial, desc):
    """Observed statistic + streamed null for one contrast."""
    part, scaled, degenerate = prepare(y, design, contrast)
    n, v = y.shape
    rank = part.rank
    backend, keep_null = resampling.backend, resampling.keep_null
    if rank > 1 and alternative != "two-sided":
        raise InputError(
            f"alternative must be 'two-sided' (the default) for an F contrast of rank {rank}; got {alternative!r}. "
            "F statistics are one-sided by construction."
        )
    # F statistics are scored one-sided ("greater") by the package rule.
    tail = alternative if rank == 1 else "greater"
    mode = "signflip" if drawn.kind == "signflip" else "permute"
    g_obs = observed_g(scaled, part, mode=mode, backend=backend)
    g_obs = np.where(degenerate, np.nan, g_obs)
    score_obs = np.asarray(_kp.tail_score(g_obs, tail))
    # NaN scores never count as exceeded; +inf keeps them out of the counts.
    # float32 nulls: the products in float32, ties widened to their rounding bound (the one rule in pvalues).
    rtol = _kp.tie_rtol(resampling.precision, n)
    null_data = scaled.astype(np.float32) if resampling.precision == "float32" else scaled
    score_cmp = np.where(np.isnan(score_obs), np.inf,
                         _kp.tie_threshold(np.asarray(score_obs, dtype=np.float64), rtol=rtol))
    # compared with nulls of the data's dtype without promoting them (same counts)
    score_cmp = np.asarray(_kp.threshold_in(score_cmp, null_data.dtype))
    matrix = drawn.matrix
    resample = matrix if mode == "signflip" else np.argsort(matrix, axis=1)
    k_total = matrix.shape[0]
    need_maps = keep_null or tfce_spatial is not None or spatial is not None
    bs = plan_resample_batch(k_total, _bytes_per_resample(n, v, rank, part.basis_z.shape[0], need_maps),
                             batch_size=resampling.batch_size, memory_limit=resampling.memory_limit)
    null = np.empty((k_total, v)) if keep_null else None
    stat_obs = np.asarray(_glm.statistic_from_monotone(g_obs, df=part.df, rank=rank))
    tf_obs = tf_thr = None
    counts, maxima = {"counts": v}, ["max_score"]
    if tfce_spatial is not None:
        tf_obs = tfce_scores(np.nan_to_num(stat_obs)[None], tfce_spatial, tail)[0]
        tf_score_obs = _kp.tail_score(tf_obs, alternative)
        tf_thr = _kp.tie_threshold(np.asarray(tf_score_obs, dtype=np.float64))
        counts["tfce_counts"] = v
        maxima.append("tfce_max")
    if spatial is not None:
        maxima += ["cluster_max_extent", "cluster_max_mass"]

    if not need_maps:
        acc = stream_scores(null_data, part, resample, score_cmp, mode=mode, alternative=alternative,
                            resampling=resampling, desc=desc)
    else:
        null_batch = null_batches(null_data, part, resample, mode=mode, backend=backend, batch_size=bs)

        def block(start, stop):
            g = np.asarray(null_batch(start, stop), dtype=np.float64)
            score = np.asarray(_glm.tail_score(g, alternative=alternative, rank=rank))
            found = {"counts": np.count_nonzero(score >= score_cmp[None, :], axis=0).astype(np.float64),
                     "max_score": score.max(axis=1)}
            stat_b = np.asarray(_glm.statistic_from_monotone(g, df=part.df, rank=rank))
            stat_b = np.where(degenerate[None, :], 0.0, stat_b)
            if keep_null:
                null[start:stop] = stat_b
            if tfce_spatial is not None:
                sc = _kp.tail_score(tfce_scores(stat_b, tfce_spatial, tail), alternative)
                found["tfce_max"] = sc.max(axis=1)
                found["tfce_counts"] = (sc >= tf_thr[None, :]).sum(axis=0)
            if spatial is not None:
                _, extent, mass, owner = cluster_stats(stat_b, spatial, tail)
                found["cluster_max_extent"] = max_per_map(extent, owner, stop - start)
                found["cluster_max_mass"] = max_per_map(mass, owner, stop - start)
            return found

        acc = stream_resamples(block, k_total, batch_size=bs, counts=counts, maxima=maxima, desc=desc,
                               progress=resampling.progress)
    max_score = acc.maxima["max_score"]
    pvalue = _kp.pvalue_from_counts(acc.counts["counts"], np.full(v, float(k_total)), score_obs)
    max_score = np.asarray(max_score, dtype=np.float64)
    pvalue_fwer = _kp.fwer_pvalue(np.where(np.isnan(score_obs), np.inf, score_obs), max_score, rtol=rtol)
    pvalue_fwer = np.where(np.isnan(score_obs), np.nan, pvalue_fwer)
    null_max = np.asarray(_glm.statistic_from_monotone(max_score, df=part.df, rank=rank))
    if rank == 1 and alternative == "two-sided":
        null_max = np.abs(null_max)
    out = {
        "statistic": np.where(degenerate, np.nan, stat_obs),
        "pvalue": pvalue,
        "pvalue_fwer": pvalue_fwer,
        "null_max": null_max,
        "df": part.df,
        "rank": rank,
        "null": null,
    }
    if tfce_spatial is not None:
        tf_max = acc.maxima["tfce_max"]
        out["tfce"] = SpatialResult(
            statistic=tf_obs,
            pvalue=_kp.pvalue_from_counts(acc.counts["tfce_counts"], np.full(v, float(k_total))),
            pvalue_fwer=_kp.fwer_pvalue(tf_score_obs, tf_max),
            null_max=tf_max,
            params={k: val for k, val in tfce_spatial.params.items() if k != "weights"},
        )
    if spatial is not None:
        cl_max_extent, cl_max_mass = acc.maxima["cluster_max_extent"], acc.maxima["cluster_max_mass"]
        labels, extent, mass, owner = cluster_stats(np.nan_to_num(stat_obs)[None], spatial, tail)
        labels = labels.reshape(1, -1)[0] if spatial.mask is None else labels[0][spatial.mask]
        ext, ms = extent[1:], mass[1:]
        out["clusters"] = ClusterResult(
            labels=labels, extent=ext, mass=ms,
            pvalue_extent=_kp.fwer_pvalue(ext, cl_max_extent),
            pvalue_mass=_kp.fwer_pvalue(ms, cl_max_mass),
            null_max_extent=cl_max_extent, null_max_mass=cl_max_mass,
            threshold=float(spatial.params["threshold"]),
        )
    return out


def _run(y, design, contrasts, *, drawn, alternative, resampling, spatial, fwer_across_contrasts, stat_name,
         params, convert=None):
    check_choice("alternative", alternative, _kp.ALTERNATIVES)
    n, v = y.shape
    tf_sp, cl_sp = make_spatial(spatial, v)
    fits = []
    for i, c in enumerate(contrasts):
        desc = f"permute c{i + 1}" if len(contrasts) > 1 else "permute"
        fits.append(_fit_contrast(y, design, c, drawn=drawn, alternative=alternative, resampling=resampling,
                                  spatial=cl_sp, tfce_spatial=tf_sp, desc=desc))
    kind, matrix, exhaustive = drawn.kind, drawn.matrix, drawn.exhaustive
    k = matrix.shape[0]
    if resampling.tail_approximation:
        for f in fits:
            f["pvalue_fwer"] = gpd_pvalue(_score(f["statistic"], alternative, f["rank"]), f["null_max"],
                                          threshold_p=resampling.tail_threshold_p, fallback=f["pvalue_fwer"])
    if fwer_across_contrasts and len(fits) > 1:
        if any(f["rank"] > 1 for f in fits):
            raise InputError("fwer_across_contrasts needs t contrasts only; got an F contrast. Test F contrasts "
                             "separately or set fwer_across_contrasts=False.")
        joint = np.max(np.stack([f["null_max"] for f in fits]), axis=0)
        for f in fits:
            f["pvalue_fwer"] = _kp.fwer_pvalue(_score(f["statistic"], alternative, 1), joint)
    single = len(fits) == 1

    def pick(key):
        arrs = [f[key] for f in fits]
        return arrs[0] if single else np.stack(arrs)

    statistic = pick("statistic")
    null = pick("null") if resampling.keep_null else None
    null_max = pick("null_max")
    if convert is not None:
        df = fits[0]["df"]
        statistic = convert(statistic, df)
        null_max = convert(null_max, df)
        null = convert(null, df) if null is not None else None
    pvalue = pick("pvalue")
    precomputed = resampling.permutations is not None or resampling.signs is not None
    return PermutationResult(
        statistic=statistic,
        pvalue=pvalue,
        pvalue_fwer=pick("pvalue_fwer"),
        pvalue_fdr=np.asarray(_kstats.fdr_bh(pvalue, axis=-1)),
        null_max=null_max,
        n_perm=int(k),
        permutations=drawn.permutations,
        signs=drawn.signs,
        stat=stat_name if all(f["rank"] == 1 for f in fits) else "F",
        df=int(fits[0]["df"]),
        alternative=alternative,
        exhaustive=bool(exhaustive),
        null=null,
        tfce=fits[0].get("tfce") if single else None,
        clusters=fits[0].get("clusters") if single else None,
        params={**params, "resampling": kind, "seed": None if precomputed else resampling.seed,
                "precision": resampling.precision, "tie_rtol": _kp.tie_rtol(resampling.precision, n),
                "tfce_by_contrast": None if single else [f.get("tfce") for f in fits],
                "clusters_by_contrast": None if single else [f.get("clusters") for f in fits]},
    )


def _score(stat, alternative, rank):
    # F statistics (rank > 1) are one-sided by construction.
    return _kp.tail_score(stat, alternative if rank == 1 else "greater")


def _first_column_test(y, design, *, default_kind, stat_name, params, resampling, spatial=None, convert=None):
    """:func:`_run` for the one contrast on the design's first column (one-
    and two-sample tests, correlation)."""
    contrast = np.zeros(design.shape[1])
    contrast[0] = 1.0
    check_design(design, contrast, y.shape[0])
    check_choice("alternative", params["alternative"], _kp.ALTERNATIVES)
    kind = resampling.resolved_kind
    drawn = draw_resamples(y.shape[0], resampling, kind=default_kind if kind == "auto" else kind,
                           n_elements=y.shape[1])
    return _run(y, design, [contrast[None, :]], drawn=drawn, alternative=params.pop("alternative"),
                resampling=resampling, spatial=spatial if spatial is not None else Spatial(),
                fwer_across_contrasts=False, stat_name=stat_name, params=params, convert=convert)


def _reject(resampling, function, field_name, instead):
    if getattr(resampling, field_name) is not None:
        raise InputError(f"{function} takes no precomputed {field_name}; got Resampling({field_name}=...). "
                         f"Pass {instead} instead.")


# --------------------------------------------------------------------------- public tests
@accepts_legacy_options()
@fill_doc
def one_sample(data, *, covariates=None, alternative="two-sided", resampling=None,
               spatial=None) -> PermutationResult:
    """One-sample t-test of mean zero per element by sign flipping.

    Parameters
    ----------
    data : (n, V) array
        One row per scan (e.g. post - pre differences), one column per element.
    covariates : (n, c) array, optional
        Nuisance regressors; their effect is removed by Freedman-Lane (the
        reduced-model residuals are sign-flipped).
    %(alternative)s
    %(resampling)s
    %(spatial)s
    %(legacy)s

    Returns
    -------
    :class:`PermutationResult` with ``stat="t"``, ``df = n - 1 - c``.

    Notes
    -----
    t = mean / (sd / sqrt(n)) per column; under sign flips the sum of squares is
    unchanged, so the whole null is one ``(K, n) @ (n, V)`` product.
    Requires symmetric errors (Winkler et al. 2014).

    Examples
    --------
    >>> import numpy as np, recouple as rc
    >>> d = np.random.default_rng(0).normal(size=(12, 5))
    >>> res = rc.permutation.one_sample(d, resampling=rc.permutation.Resampling(n_perm=200, seed=1))
    >>> res.statistic.shape, res.n_perm
    ((5,), 200)
    """
    _reject(resampling, "one_sample", "permutations", "signs= (a one-sample test flips signs)")
    y = check_data(data)
    n = y.shape[0]
    design = np.ones((n, 1))
    if covariates is not None:
        design = np.column_stack([design, check_covariates(covariates, n)])
    return _first_column_test(
        y, design, default_kind="signflip", stat_name="t", resampling=resampling, spatial=spatial,
        params={"test": "one_sample", "method": "freedman-lane" if covariates is not None else "sign-flip",
                "alternative": alternative},
    )


@accepts_legacy_options()
@fill_doc
def paired(pre, post, *, covariates=None, alternative="two-sided", resampling=None,
           spatial=None) -> PermutationResult:
    """Paired test (e.g. ECT post vs pre) by sign flipping the within-subject differences.

    Parameters
    ----------
    pre, post : (n, V) arrays
        Row i of both is the same subject (see :func:`pair_sessions`).
    covariates : (n, c) array, optional
        Nuisance regressors of the difference (Freedman-Lane).
    %(alternative)s
    %(resampling)s
    %(spatial)s
    %(legacy)s

    Returns
    -------
    :class:`PermutationResult` of ``post - pre`` (positive t: increase).
    """
    a = check_data(pre, "pre")
    b = check_data(post, "post")
    if a.shape != b.shape:
        raise ShapeError(
            f"pre and post must have the same shape (one row per subject in the same order); got {a.shape} and "
            f"{b.shape}. Use recouple.permutation.pair_sessions to match the scans."
        )
    res = one_sample(b - a, covariates=covariates, alternative=alternative, resampling=resampling, spatial=spatial)
    return dataclasses.replace(res, params={**res.params, "test": "paired"})


@accepts_legacy_options()
@fill_doc
def two_sample(a, b, *, covariates=None, alternative="two-sided", resampling=None,
               spatial=None) -> PermutationResult:
    """Two-sample t-test (mean of ``a`` minus mean of ``b``) by permutation.

    Parameters
    ----------
    a : (n_a, V) array
    b : (n_b, V) array
    covariates : (n_a + n_b, c) array, optional
        Nuisance regressors, rows ``a`` then ``b`` (Freedman-Lane).
    %(alternative)s
    %(resampling)s
    %(spatial)s
    %(legacy)s

    Returns
    -------
    :class:`PermutationResult`; pooled-variance t with ``df = n_a + n_b - 2 - c``.
    Rows of ``permutations`` index the stacked ``[a; b]`` data.
    """
    _reject(resampling, "two_sample", "signs", "permutations= (a two-sample test permutes labels)")
    ya = check_data(a, "a")
    yb = check_data(b, "b")
    if ya.shape[1] != yb.shape[1]:
        raise ShapeError(f"a and b must have the same number of elements (columns); got {ya.shape[1]} and "
                         f"{yb.shape[1]}. Use the same parcellation for both groups.")
    y = np.vstack([ya, yb])
    n = y.shape[0]
    group = np.r_[np.ones(ya.shape[0]), np.zeros(yb.shape[0])]
    design = np.column_stack([group, np.ones(n)])
    if covariates is not None:
        design = np.column_stack([design, check_covariates(covariates, n)])
    return _first_column_test(
        y, design, default_kind="permute", stat_name="t", resampling=resampling, spatial=spatial,
        params={"test": "two_sample", "method": "freedman-lane", "alternative": alternative},
    )


def _contrast_rows(design, contrast, test, n):
    raw = as_array("contrast", contrast)
    m, _ = check_design(design, raw[0] if raw.ndim == 2 else raw, n)
    contrasts = split_contrasts(contrast, test, m.shape[1])
    for c in contrasts:
        check_design(m, c, n)
    return m, contrasts


def glm_resamples(design, contrast, *, test="t", resampling=None) -> Resamples:
    """The resamples :func:`glm` draws for ``design`` and ``contrast`` under ``resampling``.

    For running one analysis in pieces (e.g. element chunks of a cohort
    store) with the same null: pass ``resamples.as_resampling()`` to every
    piece.

    Parameters
    ----------
    design : (n, p) array
    contrast : (p,) or (n_contrasts, p) array
    test : {"t", "F"}
    %(resampling)s

    Returns
    -------
    :class:`~recouple.permutation.Resamples`
    """
    resampling = resampling if resampling is not None else Resampling()
    check_choice("test", test, ("t", "F"))
    m = as_array("design", design)
    n = m.shape[0] if m.ndim else 0
    m, contrasts = _contrast_rows(m, contrast, test, n)
    return draw_resamples(n, resampling, kind=resolve_kind(resampling, m, np.vstack(contrasts)))


glm_resamples = fill_doc(glm_resamples)


@accepts_legacy_options()
@fill_doc
def glm(data, design, contrast, *, test="t", alternative="two-sided", fwer_across_contrasts=False,
        resampling=None, spatial=None) -> PermutationResult:
    """General linear model with permutation inference (Freedman-Lane).

    Parameters
    ----------
    data : (n, V) array
    design : (n, p) array
        Full-rank design (include an intercept column yourself; see
        :func:`recouple.io.design.design_from_table`).
    contrast : (p,) or (n_contrasts, p) array
        With ``test="t"`` each row is a t contrast (statistic ``(n_contrasts, V)``
        when several); with ``test="F"`` the rows form one F contrast.
    test : {"t", "F"}
    %(alternative)s
    fwer_across_contrasts : bool
        Max-statistic FWER over elements *and* t contrasts.
    %(resampling)s
        ``Resampling(kind="auto")``: sign flips when the tested effect is a
        constant column and nothing else is tested (one-sample designs),
        permutations otherwise.
    %(spatial)s
    %(legacy)s

    Returns
    -------
    :class:`PermutationResult`

    Notes
    -----
    With ``Z`` the reduced model under ``C beta = 0`` (``Z = M null(C)``),
    ``E = R_z Y``, every resample ``P_k`` gives ``Y*_k = P_k E + H_z Y`` and the
    full-model t/F of ``Y*_k`` (Freedman & Lane 1983; Winkler et al. 2014).
    Observed t equals OLS ``c'b / sqrt(s^2 c'(M'M)^-1 c)``, ``df = n - rank(M)``.
    """
    y = check_data(data)
    n = y.shape[0]
    check_choice("test", test, ("t", "F"))
    m, contrasts = _contrast_rows(design, contrast, test, n)
    f_of_t = test == "F" and all(np.linalg.matrix_rank(np.atleast_2d(c)) == 1 for c in contrasts)
    if f_of_t and alternative != "two-sided":
        raise InputError(f"alternative must be 'two-sided' for an F test; got {alternative!r}. Use test='t' for "
                         "a one-sided test of a single contrast.")
    check_choice("alternative", alternative, _kp.ALTERNATIVES)
    drawn = draw_resamples(n, resampling, kind=resolve_kind(resampling, m, np.vstack(contrasts)),
                           n_elements=y.shape[1], n_contrasts=len(contrasts))
    return _run(y, m, contrasts, drawn=drawn, alternative=alternative, resampling=resampling, spatial=spatial,
                fwer_across_contrasts=fwer_across_contrasts, stat_name="F" if f_of_t else "t",
                convert=_t_squared if f_of_t else None,
                params={"test": "glm", "method": "freedman-lane", "contrast": np.asarray(contrast).tolist()})


def _t_squared(t, df):
    # A one-row F contrast is the square of its two-sided t (same p-values).
    return None if t is None else np.asarray(t) ** 2


@accepts_legacy_options()
@fill_doc
def correlation(x, data, *, covariates=None, method="pearson", alternative="two-sided",
                resampling=None) -> PermutationResult:
    """Correlation of a clinical variable with every element, tested by permutation.

    E.g. per-region change in coupling (``data``, patients x regions) against
    the change in HAMD (``x``).

    Parameters
    ----------
    x : (n,) array
    data : (n, V) array
    covariates : (n, c) array, optional
        Partial correlation; inference by Freedman-Lane on
        ``data = b x + Z g + e`` (partial r and t are monotone at fixed df).
    method : {"pearson", "spearman"}
        Spearman ranks ``x``, ``data`` and the covariates once.
    %(alternative)s
    %(resampling)s
    %(legacy)s

    Returns
    -------
    :class:`PermutationResult` with ``stat="r"``: ``statistic`` and
    ``null_max`` are (partial) correlations, ``r = t / sqrt(t^2 + df)``.
    """
    _reject(resampling, "correlation", "signs", "permutations=")
    check_choice("method", method, ("pearson", "spearman"))
    y = check_data(data)
    n = y.shape[0]
    xv = as_array("x", x)
    if xv.ndim != 1 or xv.shape[0] != n:
        raise ShapeError(f"x must be a vector with one value per scan ({n}); got {describe(xv)}. "
                         "Pass e.g. the HAMD change per patient.")
    if not np.isfinite(xv).all():
        raise InputError("x must contain only finite values; found NaN/inf. Drop those patients from x and data.")
    cov = check_covariates(covariates, n) if covariates is not None else None
    if method == "spearman":
        xv = rankdata(xv)
        y = rankdata(y, axis=0)
        if cov is not None:
            cov = rankdata(cov, axis=0)
    design = np.column_stack([xv, np.ones(n)] + ([cov] if cov is not None else []))

    def to_r(t, df):
        return t / np.sqrt(t * t + df)

    return _first_column_test(
        y, design, default_kind="permute", stat_name="r", resampling=resampling, convert=to_r,
        params={"test": "correlation", "method": method, "alternative": alternative},
    )
