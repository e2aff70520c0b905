"""Nodal variants on real data, consistency mask, communication model and SDI against references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

import recouple as rc
from recouple.exceptions import InputError, ShapeError

from conftest import load_hcp

PARCS = ["ctx", "ctx_schaefer_100", "ctx_schaefer_200", "ctx_schaefer_400"]


def scipy_nodal(sc, fc, edges, method):
    n = sc.shape[0]
    out = np.full(n, np.nan)
    for i in range(n):
        j = np.arange(n) != i
        if edges == "sc_nonzero":
            j &= sc[i] != 0
        elif edges == "both_nonzero":
            j &= (sc[i] != 0) & (fc[i] != 0)
        if j.sum() >= 3 and np.ptp(sc[i, j]) > 0 and np.ptp(fc[i, j]) > 0:
            f = stats.spearmanr if method == "spearman" else stats.pearsonr
            out[i] = f(sc[i, j], fc[i, j])[0]
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("parc", PARCS)
def test_every_nodal_variant_matches_scipy_on_hcp(shared_data, parc):
    sc, fc, _ = load_hcp(shared_data, parc)
    for edges in ("sc_nonzero", "offdiag", "both_nonzero"):
        for method in ("spearman", "pearson"):
            res = rc.coupling.nodal(sc, fc, method=method, edges=edges, allow_negative=True)
            ref = scipy_nodal(sc, fc, edges, method)
            np.testing.assert_allclose(res.coupling, ref, atol=1e-10, equal_nan=True)


def test_consistency_mask_matches_direct_ranking(rng):
    s, n = 6, 12
    w = rng.random((s, n, n)) * (rng.random((s, n, n)) < 0.7)
    w = np.triu(w, 1)
    w = w + np.swapaxes(w, 1, 2)
    mask = rc.coupling.consistency_mask(w, fraction=0.4)
    iu = np.triu_indices(n, 1)
    mean = w.mean(0)[iu]
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.where(mean != 0, w.std(0, ddof=1)[iu] / mean, np.inf)
    keep = np.argsort(cv, kind="stable")[: round(0.4 * n * (n - 1) / 2)]
    ref = np.zeros((n, n), bool)
    ref[iu[0][keep], iu[1][keep]] = True
    np.testing.assert_array_equal(mask, ref | ref.T)
    res = rc.coupling.nodal(w, w[::-1], mask=mask)
    assert np.all(res.n_edges <= mask.sum(1))


def statsmodels_r2_adj(x, y):
    sm = pytest.importorskip("statsmodels.api")
    n = y.shape[-1]
    out = np.empty(n)
    for i in range(n):
        rows = np.arange(n) != i
        X = np.column_stack([m[rows, i] for m in x])
        if not np.all(np.isfinite(X)):
            out[i] = np.nan
            continue
        out[i] = sm.OLS(y[rows, i], sm.add_constant(X)).fit().rsquared_adj
    return out


@pytest.mark.parametrize("weighted", [True, False])
def test_communication_matches_statsmodels(weighted):
    coh = rc.simulate.cohort(n_regions=24, n_patients=1, n_controls=1, seed=3)
    names = rc.coupling._k.PREDICTORS
    res = rc.coupling.communication(coh.sc, coh.fc, coords=coh.centroids, predictors=names, weighted=weighted,
                                    batch_size=1)
    x = rc.coupling._k.communication_predictors(coh.sc, coh.centroids, names=names, weighted=weighted)
    for s in range(coh.sc.shape[0]):
        np.testing.assert_allclose(res.r2_adj[s], statsmodels_r2_adj(x[s], coh.fc[s]), atol=1e-8)


def test_dominance_matches_definition():
    sm = pytest.importorskip("statsmodels.api")
    coh = rc.simulate.cohort(n_regions=20, n_patients=1, n_controls=0, seed=4)
    sc, fc = coh.sc[0], coh.fc[0]
    names = ("distance", "path_length", "communicability", "search_information")
    res = rc.coupling.communication(sc, fc, coords=coh.centroids, predictors=names, dominance=True)
    x = rc.coupling._k.communication_predictors(sc, coh.centroids, names=names)
    p = len(names)
    for i in (0, 7):
        rows = np.arange(20) != i
        X = np.column_stack([m[rows, i] for m in x])
        r2 = {(): 0.0}
        for k in range(1, p + 1):
            for sub in itertools.combinations(range(p), k):
                r2[sub] = sm.OLS(fc[rows, i], sm.add_constant(X[:, sub])).fit().rsquared_adj
        total = [np.mean([np.mean([r2[s] - r2[tuple(v for v in s if v != a)]
                                   for s in itertools.combinations(range(p), k + 1) if a in s])
                          for k in range(p)]) for a in range(p)]
        np.testing.assert_allclose(res.dominance[i], total, atol=1e-8)
    np.testing.assert_allclose(res.dominance.sum(-1), res.r2_adj, atol=1e-10)


def test_communication_custom_predictors_and_backends(xp):
    coh = rc.simulate.cohort(n_regions=16, n_patients=1, n_controls=1, seed=5)
    ref = rc.coupling.communication(coh.sc, coh.fc, coords=coh.centroids, dominance=True)
    x = rc.coupling._k.communication_predictors(coh.sc, coh.centroids)
    out = xp.jit(rc.coupling._k.local_regression, dominance=True)(xp.asarray(x), xp.asarray(coh.fc))
    np.testing.assert_allclose(xp.to_numpy(out[1]), ref.r2_adj, atol=1e-10)
    np.testing.assert_allclose(xp.to_numpy(out[2]), ref.dominance, atol=1e-10)
    custom = rc.coupling.communication(coh.sc, coh.fc, predictors={f"p{k}": x[:, k] for k in range(3)})
    np.testing.assert_allclose(custom.r2_adj, ref.r2_adj, atol=1e-12)


@pytest.mark.realdata
@pytest.mark.peer
@pytest.mark.parametrize("parc", ["ctx", "ctx_schaefer_100"])
def test_communication_on_hcp_matches_statsmodels(shared_data, parc):
    sc, fc, _ = load_hcp(shared_data, parc)
    w = np.clip(sc, 0, None)
    names = ("path_length", "communicability", "search_information", "diffusion")
    res = rc.coupling.communication(w, fc, predictors=names)
    x = rc.coupling._k.communication_predictors(w, names=names)
    np.testing.assert_allclose(res.r2_adj, statsmodels_r2_adj(x, fc), atol=1e-8)


def matlab_sdi(sc, ts, signs_informed):
    """Direct transcription of GSP_Laplacian.m / SDI scripts (group SC, z-score, trapz cut-off)."""
    w = sc.mean(0)
    d = w.sum(1)
    lap = np.eye(len(w)) - w / np.sqrt(np.outer(d, d))
    _, u = np.linalg.eigh(lap)
    x = [stats.zscore(t, axis=1, ddof=1) for t in ts]
    psd = np.mean([np.mean((u.T @ t) ** 2, axis=1) for t in x], axis=0)
    total, i, auc = np.trapezoid(psd), 0, 0.0
    while auc < total / 2:
        i += 1
        auc = np.trapezoid(psd[:i])
    lo, hi = u[:, :i], u[:, i:]
    nc = np.array([np.linalg.norm(lo @ lo.T @ t, axis=1) for t in x])
    nd = np.array([np.linalg.norm(hi @ hi.T @ t, axis=1) for t in x])
    surr = np.array([[np.linalg.norm(hi @ hi.T @ u @ np.diag(ph) @ u.T @ t, axis=1)
                      / np.linalg.norm(lo @ lo.T @ u @ np.diag(ph) @ u.T @ t, axis=1)
                      for ph in signs_informed[:, s]] for s, t in enumerate(x)])
    return i, nd / nc, nd.mean(0) / nc.mean(0), surr


def test_sdi_matches_reference_steps():
    coh = rc.simulate.cohort(n_regions=20, n_patients=2, n_controls=2, n_timepoints=50, seed=6)
    signs = np.where(np.random.default_rng(0).random((5, coh.sc.shape[0], 20)) < 0.5, -1.0, 1.0)
    res = rc.coupling.sdi(coh.sc, coh.timeseries, n_surrogates=5, signs={"informed": signs},
                          surrogates=("informed",))
    c, sdi, group, surr = matlab_sdi(coh.sc, coh.timeseries, signs)
    assert res.cutoff == c
    np.testing.assert_allclose(res.sdi, sdi, rtol=1e-8)
    np.testing.assert_allclose(res.group_sdi, group, rtol=1e-8)
    np.testing.assert_allclose(res.surrogates["informed"]["sdi"], surr, rtol=1e-8)
    above = (sdi > surr.max(1)).sum(0)
    np.testing.assert_array_equal(res.surrogates["informed"]["n_above"], above)


def test_sdi_same_seed_same_result_any_batch_and_backend():
    coh = rc.simulate.cohort(n_regions=16, n_patients=2, n_controls=1, n_timepoints=40, seed=7)
    a = rc.coupling.sdi(coh.sc, coh.timeseries, n_surrogates=4, seed=11)
    b = rc.coupling.sdi(coh.sc, coh.timeseries, n_surrogates=4, seed=11, batch_size=2, backend="jax")
    for kind in ("informed", "ignorant"):
        np.testing.assert_allclose(a.surrogates[kind]["sdi"], b.surrogates[kind]["sdi"], rtol=1e-9)
    x = min(k for k in range(101) if stats.binom.sf(k, 100, 0.05) < 0.05 / 360)
    assert rc.coupling.binomial_threshold(100, 360) == x + 1
    assert rc.coupling.binomial_threshold(50, 360) == int(np.floor(0.5 * x)) + 1


def test_bad_input():
    coh = rc.simulate.cohort(n_regions=12, n_patients=1, n_controls=1, n_timepoints=20, seed=8)
    sc, fc = coh.sc, coh.fc
    with pytest.raises(ShapeError, match="same shape"):
        rc.coupling.communication(sc, fc[:, :10, :10], coords=coh.centroids)
    with pytest.raises(InputError, match="coords"):
        rc.coupling.communication(sc, fc)
    with pytest.raises(ShapeError, match="coords"):
        rc.coupling.communication(sc, fc, coords=coh.centroids[:5])
    with pytest.raises(InputError, match="predictors"):
        rc.coupling.communication(sc, fc, coords=coh.centroids, predictors=("distance", "nope"))
    with pytest.raises(InputError, match="non-negative"):
        rc.coupling.communication(-sc, fc, coords=coh.centroids)
    with pytest.raises(InputError, match="finite"):
        rc.coupling.nodal(np.where(sc > 0.5, np.inf, sc), fc)
    with pytest.raises(ShapeError, match="N = 12"):
        rc.coupling.sdi(sc, coh.timeseries[:, :10])
    with pytest.raises(ShapeError, match="subjects"):
        rc.coupling.sdi(sc, coh.timeseries[:1])
    zero_row = sc.copy()
    zero_row[:, 2, :] = 0
    zero_row[:, :, 2] = 0
    with pytest.raises(InputError, match="all-zero"):
        rc.coupling.sdi(zero_row, coh.timeseries)
    with pytest.raises(ShapeError, match="at least 2"):
        rc.coupling.consistency_mask(sc[:1])
    with pytest.raises(InputError, match="fraction"):
        rc.coupling.consistency_mask(sc, fraction=1.5)
    with pytest.raises(InputError, match="symmetric"):
        rc.coupling.nodal(sc + np.triu(np.ones((12, 12)), 1), fc)
    with pytest.raises(InputError, match="mask"):
        rc.coupling.nodal(sc, fc, edges="mask")


@pytest.mark.parametrize("weighted", [True, False])
def test_path_predictors_equal_graph_functions(weighted):
    coh = rc.simulate.cohort(n_regions=24, n_patients=2, n_controls=0, seed=5)
    sc = coh.sc if weighted else (coh.sc != 0).astype(float)
    transform = "neglog" if weighted else "hops"
    for names in (("path_length",), ("search_information", "path_length")):
        x = rc.coupling._k.communication_predictors(sc, names=names, weighted=weighted)
        got = dict(zip(names, np.moveaxis(x, -3, 0)))
        np.testing.assert_array_equal(got["path_length"], rc.graph.path_length(sc, transform=transform))
        if "search_information" in got:
            si = rc.graph.search_information(sc, transform=transform)
            si = np.where(np.isfinite(si), si, 0.0)
            np.testing.assert_array_equal(got["search_information"], (si + np.swapaxes(si, -1, -2)) / 2)


def test_local_regression_nonfinite_columns_and_offsets_match_statsmodels():
    # one predictor far from zero (a cancellation trap for one-pass sums), one
    # holding inf off the diagonal (its columns are undefined), inf on the FC
    # diagonal (Fisher z of 1), which the regression never uses
    coh = rc.simulate.cohort(n_regions=30, n_patients=1, n_controls=0, seed=11)
    x = rc.coupling._k.communication_predictors(coh.sc, coh.centroids)[0]
    x = x.copy()
    x[0] = x[0] + 1e6
    x[1, 4, 7] = np.inf
    fc = coh.fc[0].copy()
    np.fill_diagonal(fc, np.inf)
    r2, r2_adj = rc.coupling._k.local_regression(x, fc)
    ref = statsmodels_r2_adj(x, fc)
    assert np.isnan(ref[7]) and np.isnan(r2_adj[7])
    np.testing.assert_allclose(r2_adj, ref, atol=1e-8, equal_nan=True)
    # the general (masked) path and the all-finite path agree on finite columns
    x[1, 4, 7] = x[1, 7, 4]
    np.testing.assert_allclose(rc.coupling._k.local_regression(x, fc)[1][np.arange(30) != 7],
                               r2_adj[np.arange(30) != 7], atol=1e-12)


def test_local_regression_constant_columns_are_undefined():
    coh = rc.simulate.cohort(n_regions=30, n_patients=1, n_controls=0, seed=11)
    x = rc.coupling._k.communication_predictors(coh.sc, coh.centroids)[0].copy()
    fc = coh.fc[0].copy()
    x[0][:, 5] = 0.1  # a predictor constant over node 5's rows (0.1 is inexact in binary)
    x[1][:, 7] = 123.456789
    fc[:, 9] = -0.3  # a constant response
    r2, r2_adj = rc.coupling._k.local_regression(x, fc)
    assert np.isnan(r2_adj[[5, 7, 9]]).all() and np.isnan(r2[[5, 7, 9]]).all()
    others = np.setdiff1d(np.arange(30), [5, 7, 9])
    np.testing.assert_allclose(r2_adj[others], statsmodels_r2_adj(x, fc)[others], atol=1e-8)
