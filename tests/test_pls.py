"""PLS (SIMPLS) kernels and rc.genes.pls against a direct SIMPLS reference
(MATLAB plsregress / pyls definitions), on synthetic and real AHBA data."""

from __future__ import annotations

import numpy as np
import pytest

import recouple as rc
from recouple.engine.random import bootstrap_indices
from recouple.exceptions import InputError, ShapeError
from recouple.kernels import genes as kg


def simpls_reference(X, Y, n_components):
    """Direct SIMPLS following MATLAB plsregress: W (stats.W), XS, XL, YL, PCTVAR."""
    X0 = X - X.mean(0)
    Y0 = Y - Y.mean(0)
    n, g = X0.shape
    W = np.zeros((g, n_components))
    T = np.zeros((n, n_components))
    P = np.zeros((g, n_components))
    Q = np.zeros((Y0.shape[1], n_components))
    V = np.zeros((g, n_components))
    cov = X0.T @ Y0
    for i in range(n_components):
        u, s, vt = np.linalg.svd(cov, full_matrices=False)
        ri, ci, si = u[:, 0], vt[0], s[0]
        ti = X0 @ ri
        nt = np.linalg.norm(ti)
        ti = ti / nt
        P[:, i] = X0.T @ ti
        Q[:, i] = si * ci / nt
        T[:, i] = ti
        W[:, i] = ri / nt
        vi = P[:, i].copy()
        for _ in range(2):
            for j in range(i):
                vi = vi - (V[:, j] @ vi) * V[:, j]
        V[:, i] = vi / np.linalg.norm(vi)
        cov = cov - np.outer(V[:, i], V[:, i] @ cov)
    pct = np.vstack([np.sum(P**2, 0) / np.sum(X0**2), np.sum(Q**2, 0) / np.sum(Y0**2)])
    return W, T, P, Q, pct


def _zs(a, axis=0):
    return (a - a.mean(axis, keepdims=True)) / a.std(axis, ddof=1, keepdims=True)


def _oriented(ref_W, ref_T, ref_P, ref_Q):
    s = np.where(ref_Q.sum(0) < 0, -1.0, 1.0)
    return ref_W * s, ref_T * s, ref_P * s, ref_Q * s


@pytest.mark.parametrize("m", [1, 3])
def test_simpls_matches_reference(xp, rng, m):
    X = _zs(rng.standard_normal((25, 60)))
    Y = rng.standard_normal((25, m))
    W, T, P, Q, pct = simpls_reference(X, Y, 4)
    W, T, P, Q = _oriented(W, T, P, Q)
    fit = xp.jit(kg.simpls, n_components=4)(xp.asarray(X), xp.asarray(Y[None]))
    fit = {k: xp.to_numpy(v)[0] for k, v in fit.items()}
    np.testing.assert_allclose(fit["x_weights"], W, atol=1e-10)
    np.testing.assert_allclose(fit["x_scores"], T, atol=1e-10)
    np.testing.assert_allclose(fit["x_loadings"], P, atol=1e-9)
    np.testing.assert_allclose(fit["y_loadings"], Q, atol=1e-9)
    np.testing.assert_allclose(fit["varexp_x"], pct[0], atol=1e-12)
    np.testing.assert_allclose(fit["varexp_y"], pct[1], atol=1e-12)


def test_weighted_simpls_equals_fit_to_resampled_rows(rng):
    X = _zs(rng.standard_normal((20, 40)))
    Y = rng.standard_normal((20, 2))
    idx = bootstrap_indices(3, 2, 20)
    counts = np.stack([np.bincount(i, minlength=20) for i in idx]).astype(float)
    fit = kg.simpls(X, np.stack([Y, Y]), counts, n_components=3)
    for b in range(2):
        W, T, P, Q = _oriented(*simpls_reference(X[idx[b]], Y[idx[b]], 3)[:4])
        pct = simpls_reference(X[idx[b]], Y[idx[b]], 3)[4]
        np.testing.assert_allclose(fit["x_weights"][b], W, atol=1e-10)
        np.testing.assert_allclose(fit["x_scores"][b][idx[b]], T, atol=1e-10)
        np.testing.assert_allclose(fit["varexp_y"][b], pct[1], atol=1e-12)
        np.testing.assert_allclose(fit["varexp_x"][b], pct[0], atol=1e-12)


def test_pls1_null_varexp_closed_form(xp, rng):
    X = _zs(rng.standard_normal((30, 50)))
    Ynull = rng.standard_normal((7, 30))
    out = xp.to_numpy(xp.jit(kg.pls1_null_varexp, n_components=3)(xp.asarray(X @ X.T), xp.asarray(Ynull)))
    for k in range(7):
        pct = simpls_reference(X, Ynull[k][:, None], 3)[4][1]
        np.testing.assert_allclose(out[k], np.cumsum(pct), atol=1e-10)
    # METHODS 5.3 closed form for the first component
    A = X @ X.T
    y0 = Ynull - Ynull.mean(1, keepdims=True)
    ay = y0 @ A
    closed = np.sum(y0 * ay, 1) ** 2 / (np.sum(y0**2, 1) * np.sum(ay**2, 1))
    np.testing.assert_allclose(out[:, 0], closed, atol=1e-12)


def _loop_bootstrap(X, y, boot, W, n_components):
    """Per-resample refit (reference): sign-align by correlation, SD with ddof=1."""
    ws = []
    for idx in boot:
        wb = simpls_reference(X[idx], y[idx], n_components)[0]
        for c in range(n_components):
            if np.corrcoef(wb[:, c], W[:, c])[0, 1] < 0:
                wb[:, c] = -wb[:, c]
        ws.append(wb)
    return np.std(np.stack(ws), axis=0, ddof=1)


@pytest.mark.parametrize("n_components", [1, 2])
def test_pls_bootstrap_equals_refit_loop(rng, n_components):
    expr = rng.standard_normal((24, 30))
    y = rng.standard_normal(24)
    e = rc.genes.load_expression(expr, regions=[f"R{i}" for i in range(24)], genes=[f"G{i}" for i in range(30)])
    boot = bootstrap_indices(11, 40, 24)
    res = rc.genes.pls(y, e, n_components=n_components, bootstrap=boot, batch_size=15)
    X, yz = _zs(expr), _zs(y)[:, None]
    se = _loop_bootstrap(X, yz, boot, res.weights, n_components)
    np.testing.assert_allclose(res.se, se, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(res.zscores, res.weights / se, rtol=1e-8)
    # batching and seeds: same seed => same draws, any batch size
    a = rc.genes.pls(y, e, n_components=n_components, n_boot=40, seed=11, batch_size=7)
    np.testing.assert_allclose(a.se, res.se, rtol=1e-12)


def test_pls_backends_agree(rng):
    pytest.importorskip("jax")
    expr = rng.standard_normal((20, 25))
    y = rng.standard_normal((2, 20))
    e = rc.genes.load_expression(expr, regions=[f"R{i}" for i in range(20)], genes=[f"G{i}" for i in range(25)])
    a = rc.genes.pls(y, e, n_components=2, n_boot=20, seed=1, nulls="permutation", n_perm=30)
    b = rc.genes.pls(y, e, n_components=2, n_boot=20, seed=1, nulls="permutation", n_perm=30, backend="jax")
    for f in ("weights", "scores", "var_explained", "pvalue", "se", "null_var_explained"):
        np.testing.assert_allclose(getattr(b, f), getattr(a, f), rtol=1e-9, atol=1e-12)


def test_pls_multi_map_null_matches_refit(rng):
    expr = rng.standard_normal((18, 22))
    y = rng.standard_normal((2, 18))
    e = rc.genes.load_expression(expr, regions=[f"R{i}" for i in range(18)], genes=[f"G{i}" for i in range(22)])
    from recouple.engine.random import permutation_indices

    perms = permutation_indices(2, 9, 18)
    res = rc.genes.pls(y, e, n_components=2, nulls=perms)
    X = _zs(expr)
    for k in range(9):
        pct = simpls_reference(X, _zs(y[:, perms[k]], axis=1).T, 2)[4][1]
        np.testing.assert_allclose(res.null_var_explained[k], np.cumsum(pct), atol=1e-10)
    count = (res.null_var_explained >= np.cumsum(res.var_explained)).sum(0)
    np.testing.assert_allclose(res.pvalue, (count + 1) / 10)


def test_pls_sign_convention(rng):
    expr = rng.standard_normal((30, 40))
    y = rng.standard_normal(30)
    e = rc.genes.load_expression(expr, regions=[f"R{i}" for i in range(30)], genes=[f"G{i}" for i in range(40)])
    res = rc.genes.pls(y, e, n_components=3)
    for c in range(3):
        assert np.corrcoef(res.scores[:, c], y)[0, 1] >= 0
    res_neg = rc.genes.pls(-y, e, n_components=1)
    np.testing.assert_allclose(res_neg.weights, -res.weights[:, :1], atol=1e-12)


def test_pls_bad_input(rng):
    e = rc.genes.load_expression(rng.standard_normal((10, 5)), regions=[f"R{i}" for i in range(10)],
                                 genes=[f"G{i}" for i in range(5)])
    with pytest.raises(InputError, match="n_components"):
        rc.genes.pls(rng.standard_normal(10), e, n_components=10)
    with pytest.raises(ShapeError, match="bootstrap"):
        rc.genes.pls(rng.standard_normal(10), e, bootstrap=np.zeros((5, 9), dtype=int))
    with pytest.raises(InputError, match="constant"):
        rc.genes.pls(np.ones(10), e)
    with pytest.raises(ShapeError, match="one value per expression region"):
        rc.genes.pls(rng.standard_normal(9), e)


@pytest.fixture(scope="module")
def ahba_dk(request):
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA}")
    e = rc.genes.load_expression(SHARED_DATA / "ahba" / "gene_expression_data.csv",
                                 info=SHARED_DATA / "ahba" / "atlas_regions_info.csv", duplicate_genes="first")
    return e


@pytest.mark.realdata
def test_pls_real_ahba_dk_matches_reference(ahba_dk, shared_data):
    e = ahba_dk
    assert e.shape[0] == 83 and e.shape[1] > 15_600
    # HCP DK coupling map (ENIGMA order), aligned to the AHBA rows by label
    sc = np.loadtxt(shared_data / "hcp" / "strucMatrix_ctx.csv", delimiter=",")
    fc = np.loadtxt(shared_data / "hcp" / "funcMatrix_ctx.csv", delimiter=",")
    labels = np.loadtxt(shared_data / "hcp" / "funcLabels_ctx.csv", delimiter=",", dtype=str)
    cmap = rc.coupling.nodal(sc, fc).coupling
    # a synthetic whole-brain map over all 83 regions as well
    y83 = np.random.default_rng(0).standard_normal(83)
    for values, labs, n in ((cmap, labels, 68), (y83, None, 83)):
        res = rc.genes.pls(values, e, labels=labs, n_components=3)
        aligned = e if labs is None else rc.genes.align(e, labs).expression
        X = _zs(aligned.values)
        yv = values if labs is None else values[rc.genes.align(e, labs).map_index]
        W, T, P, Q = _oriented(*simpls_reference(X, _zs(yv)[:, None], 3)[:4])
        pct = simpls_reference(X, _zs(yv)[:, None], 3)[4]
        assert res.weights.shape == (e.shape[1], 3) and res.scores.shape == (n, 3)
        np.testing.assert_allclose(res.weights, W, atol=1e-8)
        np.testing.assert_allclose(res.scores, T, atol=1e-8)
        np.testing.assert_allclose(res.var_explained, pct[1], atol=1e-8)
        np.testing.assert_allclose(res.var_explained_x, pct[0], atol=1e-8)
    # labels in a different order and case give the same fit
    shuffled = np.random.default_rng(1).permutation(68)
    res2 = rc.genes.pls(cmap[shuffled], e, labels=np.char.lower(labels[shuffled]), n_components=1)
    res1 = rc.genes.pls(cmap, e, labels=labels, n_components=1)
    np.testing.assert_allclose(res2.weights, res1.weights, atol=1e-12)
