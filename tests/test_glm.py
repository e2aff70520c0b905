"""Permutation GLM kernels and the GLM entry point against OLS references."""

from __future__ import annotations

import numpy as np
import pytest

import recouple as rc
from recouple.exceptions import InputError, ShapeError
from recouple.kernels import glm as kglm
from recouple.permutation import Resampling
from recouple.permutation.design import partition as _partition, prepare as _prepare


def _design(rng, n=24, covariates=2):
    return np.column_stack([rng.normal(size=n), np.ones(n), rng.normal(size=(n, covariates))])


def _ols_t(y, m, c):
    beta, *_ = np.linalg.lstsq(m, y, rcond=None)
    resid = y - m @ beta
    df = m.shape[0] - np.linalg.matrix_rank(m)
    s2 = (resid**2).sum(0) / df
    return (c @ beta) / np.sqrt(s2 * (c @ np.linalg.pinv(m.T @ m) @ c))


def _freedman_lane_direct(y, m, c, perm=None, signs=None):
    """Literal Freedman-Lane for one resample: Y* = P R_z Y + H_z Y, then full-model OLS t."""
    part = _partition(m, c[None, :])
    qz = part.basis_z.T
    hz = qz @ qz.T
    rz = np.eye(len(y)) - hz
    e = rz @ y
    e = e[perm] if perm is not None else signs[:, None] * e
    return _ols_t(e + hz @ y, m, c)


def test_observed_t_matches_statsmodels(rng):
    sm = pytest.importorskip("statsmodels.api")
    m = _design(rng)
    y = rng.normal(size=(24, 30)) + 0.5 * m[:, :1]
    res = rc.permutation.glm(y, m, [1, 0, 0, 0], resampling=Resampling(n_perm=20))
    ref = np.array([sm.OLS(y[:, j], m).fit().t_test([1, 0, 0, 0]).tvalue.item() for j in range(30)])
    np.testing.assert_allclose(res.statistic, ref, rtol=0, atol=1e-10)
    assert res.df == 24 - 4


def test_observed_f_matches_statsmodels(rng):
    sm = pytest.importorskip("statsmodels.api")
    m = _design(rng)
    y = rng.normal(size=(24, 12))
    c = np.array([[1.0, 0, 0, 0], [0, 0, 1, -1]])
    res = rc.permutation.glm(y, m, c, test="F", resampling=Resampling(n_perm=20))
    ref = np.array([float(sm.OLS(y[:, j], m).fit().f_test(c).fvalue) for j in range(12)])
    np.testing.assert_allclose(res.statistic, ref, rtol=1e-10)
    assert res.stat == "F"


def test_batched_freedman_lane_equals_direct(rng):
    """METHODS 3.4 batched form == literal FL per permutation (t to 1e-10)."""
    m = _design(rng, n=16)
    y = rng.normal(size=(16, 7)) + m[:, 2:3]
    c = np.array([1.0, 0, 0, 0])
    perms = rc.permutation.permutation_matrix(16, n_perm=12, seed=3)
    res = rc.permutation.glm(y, m, c, resampling=Resampling(permutations=perms, keep_null=True))
    direct = np.array([_freedman_lane_direct(y, m, c, perm=p) for p in perms])
    np.testing.assert_allclose(res.null, direct, atol=1e-10)
    np.testing.assert_allclose(res.null_max, np.abs(direct).max(1), atol=1e-10)


def test_batched_signflip_with_covariates_equals_direct(rng):
    n = 14
    cov = rng.normal(size=(n, 2))
    y = rng.normal(size=(n, 5)) + cov[:, :1]
    signs = rc.permutation.sign_flip_matrix(n, n_perm=9, seed=2)
    res = rc.permutation.one_sample(y, covariates=cov, resampling=Resampling(signs=signs, keep_null=True))
    m = np.column_stack([np.ones(n), cov])
    direct = np.array([_freedman_lane_direct(y, m, np.array([1.0, 0, 0]), signs=s) for s in signs])
    np.testing.assert_allclose(res.null, direct, atol=1e-10)


def test_kernel_across_backends(xp, rng):
    m = _design(rng, n=12)
    y = rng.normal(size=(12, 6))
    part, scaled, _ = _prepare(y, m, np.array([[1.0, 0, 0, 0]]))
    perms = rc.permutation.permutation_matrix(12, n_perm=5, seed=1)
    inv = np.argsort(perms, axis=1)
    ref = kglm.monotone_statistic(scaled, part.basis_x, part.basis_z, inv, mode="permute")
    fn = xp.jit(kglm.monotone_statistic, mode="permute")
    got = xp.to_numpy(fn(xp.asarray(scaled), xp.asarray(part.basis_x), xp.asarray(part.basis_z), xp.asarray(inv)))
    np.testing.assert_allclose(got, ref, atol=1e-12)
    signs = rc.permutation.sign_flip_matrix(12, n_perm=4, seed=1)
    fn = xp.jit(kglm.permutation_batch, mode="signflip", alternative="two-sided", keep_null=True)
    out = fn(xp.asarray(scaled), xp.asarray(part.basis_x), xp.asarray(part.basis_z), xp.asarray(signs),
             xp.asarray(np.full(6, 0.3)))
    g = kglm.monotone_statistic(scaled, part.basis_x, part.basis_z, signs, mode="signflip")
    np.testing.assert_allclose(xp.to_numpy(out["max_score"]), np.abs(g).max(1), atol=1e-12)
    np.testing.assert_allclose(xp.to_numpy(out["counts"]), (np.abs(g) >= 0.3).sum(0))


def test_t_from_monotone_roundtrip(rng):
    g = rng.uniform(-0.9, 0.9, size=50)
    t = kglm.statistic_from_monotone(g, df=10)
    np.testing.assert_allclose(t / np.sqrt(t**2 + 10), g, atol=1e-14)


def test_batch_size_and_backend_invariance(rng):
    m = _design(rng, n=20)
    y = rng.normal(size=(20, 9))
    a = rc.permutation.glm(y, m, [1, 0, 0, 0], resampling=Resampling(n_perm=57, seed=5, batch_size=7))
    b = rc.permutation.glm(y, m, [1, 0, 0, 0], resampling=Resampling(n_perm=57, seed=5, batch_size=1000))
    c = rc.permutation.glm(y, m, [1, 0, 0, 0], resampling=Resampling(n_perm=57, seed=5, batch_size=13, backend="jax"))
    np.testing.assert_array_equal(a.permutations, b.permutations)
    np.testing.assert_allclose(a.null_max, b.null_max, atol=1e-12)
    np.testing.assert_array_equal(a.pvalue, b.pvalue)
    np.testing.assert_allclose(a.null_max, c.null_max, atol=1e-10)
    np.testing.assert_array_equal(a.pvalue_fwer, c.pvalue_fwer)


def test_pvalues_use_package_conventions(rng):
    m = _design(rng, n=18)
    y = rng.normal(size=(18, 8))
    res = rc.permutation.glm(y, m, [1, 0, 0, 0], resampling=Resampling(n_perm=99, seed=1, keep_null=True))
    p = rc.stats.permutation_pvalue(res.statistic, res.null)
    np.testing.assert_allclose(res.pvalue, p, atol=1e-12)
    fw = rc.stats.permutation_pvalue(np.abs(res.statistic), np.abs(res.null).max(1)[:, None], alternative="greater")
    np.testing.assert_allclose(res.pvalue_fwer, fw, atol=1e-12)
    np.testing.assert_allclose(res.pvalue_fdr, rc.stats.fdr_bh(res.pvalue), atol=1e-15)
    assert res.pvalue.min() >= 1 / 100


def test_multiple_contrasts_and_fwer_across(rng):
    m = _design(rng, n=22)
    y = rng.normal(size=(22, 10))
    c = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0]])
    res = rc.permutation.glm(y, m, c, fwer_across_contrasts=True, resampling=Resampling(n_perm=60))
    assert res.statistic.shape == (2, 10)
    joint = res.null_max.max(0)
    np.testing.assert_allclose(res.pvalue_fwer[1], (1 + (joint[:, None] >= np.abs(res.statistic[1])).sum(0)) / 61)
    single = rc.permutation.glm(y, m, c[1], resampling=Resampling(n_perm=60))
    np.testing.assert_allclose(single.statistic, res.statistic[1], atol=1e-12)
    assert (res.pvalue_fwer[1] >= single.pvalue_fwer - 1e-15).all()


def test_one_sided_alternatives(rng):
    y = rng.normal(size=(15, 6)) + 0.3
    signs = rc.permutation.sign_flip_matrix(15, n_perm=80, seed=0)
    g = rc.permutation.one_sample(y, alternative="greater", resampling=Resampling(signs=signs, keep_null=True))
    ls = rc.permutation.one_sample(y, alternative="less", resampling=Resampling(signs=signs, keep_null=True))
    np.testing.assert_allclose(g.null_max, g.null.max(1), atol=1e-12)
    np.testing.assert_allclose(ls.null_max, (-ls.null).max(1), atol=1e-12)
    np.testing.assert_allclose(g.pvalue, (1 + (g.null >= g.statistic).sum(0)) / 81)
    np.testing.assert_allclose(ls.pvalue, (1 + (ls.null <= ls.statistic).sum(0)) / 81)


def test_constant_column_gives_nan(rng):
    y = rng.normal(size=(12, 4))
    y[:, 2] = 0.0
    res = rc.permutation.one_sample(y, resampling=Resampling(n_perm=30))
    assert np.isnan(res.statistic[2]) and np.isnan(res.pvalue[2]) and np.isnan(res.pvalue_fdr[2])
    assert np.isfinite(res.statistic[[0, 1, 3]]).all() and np.isfinite(res.pvalue_fwer[[0, 1, 3]]).all()


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"design": "rankdef"}, InputError, "full column rank"),
        ({"contrast": [1, 0]}, ShapeError, "one weight per design column"),
        ({"data": "nan"}, InputError, "NaN"),
        ({"design": "nan"}, InputError, "finite"),
        ({"design": "rows"}, ShapeError, "one per data row"),
        ({"contrast": [0, 0, 0, 0]}, InputError, "not all zero"),
    ],
)
def test_bad_input(rng, kwargs, exc, words):
    m = _design(rng, n=20)
    y = rng.normal(size=(20, 5))
    if kwargs.get("design") == "rankdef":
        m = np.column_stack([m, m[:, 0] * 2])
    elif kwargs.get("design") == "nan":
        m[3, 2] = np.nan
    elif kwargs.get("design") == "rows":
        m = m[:-1]
    if kwargs.get("data") == "nan":
        y[4, 1] = np.nan
    c = kwargs.get("contrast", [1.0] + [0.0] * (m.shape[1] - 1))
    with pytest.raises(exc, match=words):
        rc.permutation.glm(y, m, c, resampling=Resampling(n_perm=10))


def test_f_contrast_rejects_one_sided(rng):
    m = _design(rng, n=20)
    with pytest.raises(InputError, match="two-sided"):
        rc.permutation.glm(rng.normal(size=(20, 3)), m, [[1, 0, 0, 0], [0, 0, 1, 0]], test="F", alternative="greater",
                           resampling=Resampling(n_perm=10))


def test_one_row_f_contrast_reports_f_not_t():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((20, 4))
    x = np.column_stack([np.ones(20), rng.standard_normal(20)])
    f = rc.permutation.glm(y, x, np.array([[0.0, 1.0]]), test="F", resampling=Resampling(n_perm=60, seed=1))
    t = rc.permutation.glm(y, x, np.array([0.0, 1.0]), test="t", resampling=Resampling(n_perm=60, seed=1))
    assert f.stat == "F"
    np.testing.assert_allclose(f.statistic, t.statistic ** 2, rtol=1e-12)
    np.testing.assert_array_equal(f.pvalue, t.pvalue)
    np.testing.assert_array_equal(f.pvalue_fwer, t.pvalue_fwer)
    with pytest.raises(rc.InputError, match="two-sided"):
        rc.permutation.glm(y, x, np.array([[0.0, 1.0]]), test="F", alternative="greater",
                           resampling=Resampling(n_perm=60))
