"""Core statistics kernels against scipy.stats, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import recouple as rc
from recouple.exceptions import InputError, ShapeError
from recouple.kernels import stats as K

TOL = 1e-12


def _ref_rank(row, valid):
    out = np.full(row.shape, np.nan)
    out[valid] = ss.rankdata(row[valid])
    return out


def test_rankdata_ties_mask_nan(xp, rng):
    x = rng.integers(0, 6, size=(4, 7, 25)).astype(float)
    x[0, 0, 3] = np.nan
    mask = rng.random(x.shape) < 0.8
    got = xp.to_numpy(xp.jit(K.rankdata, axis=-1)(xp.asarray(x), mask=xp.asarray(mask)))
    valid = mask & ~np.isnan(x)
    for idx in np.ndindex(x.shape[:-1]):
        np.testing.assert_allclose(got[idx], _ref_rank(x[idx], valid[idx]), atol=TOL, equal_nan=True)


def test_rankdata_axis0(xp, rng):
    x = rng.integers(0, 4, size=(9, 5)).astype(float)
    got = xp.to_numpy(xp.jit(K.rankdata, axis=0)(xp.asarray(x)))
    np.testing.assert_allclose(got, ss.rankdata(x, axis=0), atol=TOL)


def test_pearson_spearman_rows_masked(xp, rng):
    a = rng.standard_normal((3, 6, 40))
    b = 0.5 * a + rng.standard_normal((3, 6, 40))
    b[1, 2, :5] = np.nan
    mask = rng.random(a.shape) < 0.6
    pa = xp.to_numpy(xp.jit(K.pearson_rows, min_count=3)(xp.asarray(a), xp.asarray(b), mask=xp.asarray(mask)))
    sp = xp.to_numpy(xp.jit(K.spearman_rows, min_count=3)(xp.asarray(a), xp.asarray(b), mask=xp.asarray(mask)))
    for idx in np.ndindex(a.shape[:-1]):
        v = mask[idx] & ~np.isnan(b[idx])
        assert abs(pa[idx] - ss.pearsonr(a[idx][v], b[idx][v])[0]) < TOL
        assert abs(sp[idx] - ss.spearmanr(a[idx][v], b[idx][v])[0]) < TOL


def test_rows_undefined_cases(xp):
    a = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, np.nan, np.nan], [0.1, 0.1, 0.1, 0.1]])
    b = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0], [3.0, 1.0, 2.0, 2.0], [4.0, 3.0, 1.0, 2.0]])
    for fn in (K.pearson_rows, K.spearman_rows):
        r = xp.to_numpy(xp.jit(fn, min_count=3)(xp.asarray(a), xp.asarray(b)))
        assert np.isnan(r[0]), "constant row must be undefined"
        assert np.isnan(r[2]), "two valid entries < min_count"
        assert np.isnan(r[3]), "constant row of 0.1 (round-off) must be undefined"
        assert np.isfinite(r[1])


def test_correlate_matches_scipy(xp, rng):
    x = rng.standard_normal((3, 50))
    Y = rng.standard_normal((7, 50)) + x[:1]
    Y[2] = np.round(Y[2])  # ties
    for method, ref in (("pearson", ss.pearsonr), ("spearman", ss.spearmanr)):
        r = xp.to_numpy(xp.jit(K.correlate, method=method)(xp.asarray(x), xp.asarray(Y)))
        assert r.shape == (3, 7)
        for k in range(3):
            for g in range(7):
                assert abs(r[k, g] - ref(x[k], Y[g])[0]) < TOL
        r1 = xp.to_numpy(xp.jit(K.correlate, method=method)(xp.asarray(x[0]), xp.asarray(Y)))
        np.testing.assert_allclose(r1, r[0], atol=TOL)


def test_correlate_pairwise_nan(xp, rng):
    x = rng.standard_normal((4, 30))
    Y = rng.standard_normal((5, 30)) + 0.3 * x[:1]
    x[1, :4] = np.nan
    Y[3, 10:13] = np.nan
    for method, ref in (("pearson", ss.pearsonr), ("spearman", ss.spearmanr)):
        r = xp.to_numpy(xp.jit(K.correlate_pairwise, method=method, min_count=3)(xp.asarray(x), xp.asarray(Y)))
        for k in range(4):
            for g in range(5):
                v = ~np.isnan(x[k]) & ~np.isnan(Y[g])
                assert abs(r[k, g] - ref(x[k][v], Y[g][v])[0]) < TOL


def test_pearson_pairwise_offset_data_is_accurate(xp, rng):
    # large common offsets must not cost precision (centred before the sums)
    x = 1e4 + rng.standard_normal((2, 60))
    Y = 1e4 + rng.standard_normal((3, 60))
    x[0, 0] = np.nan
    r = xp.to_numpy(xp.jit(K.correlate_pairwise, method="pearson", min_count=3)(xp.asarray(x), xp.asarray(Y)))
    v = ~np.isnan(x[0])
    assert abs(r[0, 1] - ss.pearsonr(x[0][v], Y[1][v])[0]) < 1e-11


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_permutation_pvalue(xp, rng, alternative):
    obs = rng.standard_normal(6)
    null = rng.standard_normal((99, 6))
    null[5, 2] = np.nan
    p = xp.to_numpy(xp.jit(K.permutation_pvalue, alternative=alternative)(xp.asarray(obs), xp.asarray(null)))
    for j in range(6):
        col = null[:, j][~np.isnan(null[:, j])]
        if alternative == "two-sided":
            c = np.sum(np.abs(col) >= abs(obs[j]))
        elif alternative == "greater":
            c = np.sum(col >= obs[j])
        else:
            c = np.sum(col <= obs[j])
        assert p[j] == pytest.approx((c + 1) / (col.size + 1), abs=TOL)


def test_permutation_pvalue_floor_and_noplus(xp):
    obs = np.array([10.0])
    null = np.zeros((999, 1))
    p = xp.to_numpy(xp.jit(K.permutation_pvalue, alternative="two-sided")(xp.asarray(obs), xp.asarray(null)))
    assert p[0] == pytest.approx(1 / 1000)
    p0 = xp.to_numpy(
        xp.jit(K.permutation_pvalue, alternative="greater", plus_one=False)(xp.asarray(obs), xp.asarray(null))
    )
    assert p0[0] == 0.0


def test_fdr_bh(xp, rng):
    p = rng.random((3, 200)) ** 3
    p[1, 7] = np.nan
    q = xp.to_numpy(xp.jit(K.fdr_bh, axis=-1)(xp.asarray(p)))
    for i in range(3):
        v = ~np.isnan(p[i])
        np.testing.assert_allclose(q[i][v], ss.false_discovery_control(p[i][v], method="bh"), atol=TOL)
    assert np.isnan(q[1, 7])


# --- property tests (NumPy path and portable path must agree with scipy) ---

finite_rows = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
    elements=st.sampled_from([0.0, 1.0, 2.0, -1.5, 3.25, 1e-3]) | st.floats(-5, 5),
)


@settings(max_examples=60, deadline=None)
@given(finite_rows, st.data())
def test_rankdata_property(x, data):
    mask = data.draw(hnp.arrays(bool, x.shape))
    got = K.rankdata(x, mask=mask)
    import array_api_strict as xs

    got_portable = np.asarray(K.rankdata(xs.asarray(x), mask=xs.asarray(mask))._array)
    for i in range(x.shape[0]):
        ref = _ref_rank(x[i], mask[i])
        np.testing.assert_allclose(got[i], ref, atol=TOL, equal_nan=True)
        np.testing.assert_allclose(got_portable[i], ref, atol=TOL, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(finite_rows)
def test_spearman_rows_property(x):
    y = np.roll(x, 1, axis=-1) + np.arange(x.shape[-1]) % 3
    got = K.spearman_rows(x, y, min_count=3)
    for i in range(x.shape[0]):
        if x.shape[-1] < 3 or np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0:
            assert np.isnan(got[i])
        else:
            assert abs(got[i] - ss.spearmanr(x[i], y[i])[0]) < 1e-12


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1) | st.just(np.nan)))
def test_fdr_property(p):
    q = K.fdr_bh(p)
    v = ~np.isnan(p)
    if v.any():
        np.testing.assert_allclose(q[v], ss.false_discovery_control(p[v]), atol=TOL)
        assert (q[v] >= p[v] - TOL).all()
    assert np.isnan(q[~v]).all()


# --- public wrappers: backends and bad input ---

@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_public_correlate_backends(backend, rng):
    x = rng.standard_normal(40)
    Y = rng.standard_normal((5, 40))
    r = rc.stats.correlate(x, Y, method="spearman", backend=backend)
    np.testing.assert_allclose(r, [ss.spearmanr(x, y)[0] for y in Y], atol=TOL)
    Y2 = Y.copy()
    Y2[0, 0] = np.nan
    r2 = rc.stats.correlate(np.vstack([x, x]), Y2, method="spearman", backend=backend, batch_size=1)
    v = ~np.isnan(Y2[0])
    assert abs(r2[1, 0] - ss.spearmanr(x[v], Y2[0][v])[0]) < TOL
    assert np.isnan(Y2[0, 0]), "input must not be modified"


def test_public_bad_input():
    with pytest.raises(ShapeError, match="same N"):
        rc.stats.correlate(np.zeros(5), np.zeros((3, 6)))
    with pytest.raises(InputError, match="method must be one of"):
        rc.stats.correlate(np.zeros(5), np.zeros((3, 5)), method="kendall")
    with pytest.raises(InputError, match="probabilities"):
        rc.stats.fdr_bh(np.array([0.5, 2.0]))
    with pytest.raises(InputError, match="finite"):
        rc.stats.rankdata(np.array([1.0, np.inf]))
    with pytest.raises(InputError, match="alternative"):
        rc.stats.permutation_pvalue(np.zeros(2), np.zeros((3, 2)), alternative="both")


def test_zscore_matches_scipy(xp, rng):
    x = rng.standard_normal((4, 30)) * 3 + 1
    x[2] = 5.0  # constant row -> NaN
    z = xp.to_numpy(xp.jit(K.zscore, axis=-1, ddof=1)(xp.asarray(x)))
    np.testing.assert_allclose(z[[0, 1, 3]], ss.zscore(x[[0, 1, 3]], axis=-1, ddof=1), atol=TOL)
    assert np.isnan(z[2]).all()
    z0 = xp.to_numpy(xp.jit(K.zscore, axis=0, ddof=0)(xp.asarray(x[:, :5])))
    np.testing.assert_allclose(z0[:, :5], ss.zscore(x[:, :5], axis=0, ddof=0), atol=TOL)
