"""rc.nulls.compare_maps against per-pair SciPy loops, and its invariances and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import recouple as rc
from recouple.exceptions import InputError, ShapeError


def _corr(method):
    f = stats.pearsonr if method == "pearson" else stats.spearmanr

    def c(a, b):
        ok = ~(np.isnan(a) | np.isnan(b))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(f(a[ok], b[ok])[0])

    return c


def _reference(x, Y, maps, method, alternative):
    c = _corr(method)
    r = np.array([c(x, y) for y in Y])
    null = np.array([[c(m, y) for y in Y] for m in maps])
    p = rc.stats.permutation_pvalue(r, null, alternative=alternative)
    s = {"two-sided": np.abs, "greater": lambda a: a, "less": lambda a: -a}[alternative]
    mx = np.nanmax(s(null), axis=1)
    p_fwer = (1 + (mx[:, None] >= s(r)[None, :]).sum(0)) / (len(maps) + 1)
    return r, null, p, p_fwer


@pytest.fixture
def data(rng):
    n, g, k = 40, 6, 99
    x = rng.standard_normal(n)
    Y = rng.standard_normal((g, n))
    Y[1] += 0.8 * x
    perms = np.stack([rng.permutation(n) for _ in range(k)])
    dup = rng.integers(0, n, size=(k, n))
    return x, Y, perms, dup


@pytest.mark.parametrize("method", ["pearson", "spearman"])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("kind", ["perm", "dup", "surrogate"])
def test_matches_scipy_loop(data, rng, method, alternative, kind):
    x, Y, perms, dup = data
    if kind == "surrogate":
        nulls = rng.standard_normal((50, x.size))
        maps = nulls
    else:
        nulls = perms if kind == "perm" else dup
        maps = x[nulls]
    res = rc.nulls.compare_maps(x, Y, nulls=nulls, method=method, alternative=alternative, store_null=True)
    r, null, p, p_fwer = _reference(x, Y, maps, method, alternative)
    np.testing.assert_allclose(res.r, r, atol=1e-12)
    np.testing.assert_allclose(res.null, null, atol=1e-12)
    np.testing.assert_array_equal(res.pvalue, p)
    np.testing.assert_array_equal(res.pvalue_fwer, p_fwer)
    np.testing.assert_allclose(res.pvalue_fdr, stats.false_discovery_control(p, method="bh"), atol=1e-15)
    assert res.n_perm == len(maps)
    assert np.all(res.pvalue_fwer >= res.pvalue)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_nan_pairwise_complete(data, method):
    x, Y, perms, _ = data
    x = x.copy()
    x[:4] = np.nan
    Y = Y.copy()
    Y[2, 10:13] = np.nan
    idx = perms[:30].copy()
    idx[:, :2] = -1  # dropped parcels
    res = rc.nulls.compare_maps(x, Y, nulls=idx, method=method, store_null=True, batch_size=7)
    maps = rc.nulls.null_maps(x, idx)
    r, null, p, p_fwer = _reference(x, Y, maps, method, "two-sided")
    np.testing.assert_allclose(res.r, r, atol=1e-12)
    np.testing.assert_allclose(res.null, null, atol=1e-12)
    np.testing.assert_array_equal(res.pvalue, p)
    np.testing.assert_array_equal(res.pvalue_fwer, p_fwer)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_block_size_invariance(data, method):
    x, Y, perms, dup = data
    X = np.stack([x, x[::-1]])
    for nulls in (perms, dup):
        a = rc.nulls.compare_maps(X, Y, nulls=nulls, method=method)
        b = rc.nulls.compare_maps(X, Y, nulls=nulls, method=method, batch_size=5, map_batch_size=2)
        np.testing.assert_array_equal(a.pvalue, b.pvalue)
        np.testing.assert_array_equal(a.pvalue_fwer, b.pvalue_fwer)
        np.testing.assert_allclose(a.null_max, b.null_max, atol=1e-14)
        assert a.r.shape == (2, Y.shape[0]) and a.null_max.shape == (2, len(nulls))


def test_many_maps_equal_one_at_a_time(data):
    x, Y, perms, _ = data
    X = np.stack([x, np.sin(x), x**2])
    both = rc.nulls.compare_maps(X, Y, nulls=perms, store_null=True)
    for i, xi in enumerate(X):
        one = rc.nulls.compare_maps(xi, Y, nulls=perms, store_null=True)
        np.testing.assert_allclose(both.r[i], one.r, atol=1e-14)
        np.testing.assert_array_equal(both.pvalue[i], one.pvalue)
        np.testing.assert_allclose(both.null[:, i], one.null, atol=1e-14)


def test_jax_backend_matches_numpy(data):
    pytest.importorskip("jax")
    x, Y, perms, dup = data
    for nulls in (perms, dup):
        a = rc.nulls.compare_maps(x, Y, nulls=nulls, method="spearman")
        b = rc.nulls.compare_maps(x, Y, nulls=nulls, method="spearman", backend="jax", batch_size=40)
        np.testing.assert_allclose(a.r, b.r, atol=1e-12)
        np.testing.assert_array_equal(a.pvalue, b.pvalue)
        np.testing.assert_array_equal(a.pvalue_fwer, b.pvalue_fwer)


def test_constant_target_gives_nan_and_is_left_out(data):
    x, Y, perms, _ = data
    Y = Y.copy()
    Y[3] = 2.0
    res = rc.nulls.compare_maps(x, Y, nulls=perms, store_null=True)
    ref = rc.nulls.compare_maps(x, np.delete(Y, 3, axis=0), nulls=perms)
    assert np.isnan(res.r[3]) and np.isnan(res.pvalue[3]) and np.isnan(res.pvalue_fdr[3])
    assert np.isnan(res.null[:, 3]).all()
    np.testing.assert_array_equal(np.delete(res.pvalue_fdr, 3), ref.pvalue_fdr)
    np.testing.assert_array_equal(np.delete(res.pvalue_fwer, 3), ref.pvalue_fwer)


def test_generator_spec_permutation_is_seeded(data):
    x, Y, _, _ = data
    spec = {"method": "permutation", "n_perm": 49, "seed": 3}
    a = rc.nulls.compare_maps(x, Y, nulls=spec)
    b = rc.nulls.compare_maps(x, Y, nulls=dict(spec))
    np.testing.assert_array_equal(a.pvalue, b.pvalue)
    assert a.n_perm == 49
    assert np.all(a.pvalue >= 1 / 50)


def test_planted_association_is_found(rng):
    n = 80
    x = rng.standard_normal(n)
    Y = rng.standard_normal((20, n))
    Y[5] = x + 0.3 * rng.standard_normal(n)
    res = rc.nulls.compare_maps(x, Y, nulls={"method": "permutation", "n_perm": 199, "seed": 0})
    assert res.pvalue[5] == pytest.approx(1 / 200)
    assert res.pvalue_fwer[5] == pytest.approx(1 / 200)
    assert np.argmax(np.abs(res.r)) == 5


def test_bad_inputs(data):
    x, Y, perms, _ = data
    with pytest.raises(ShapeError, match="same number of regions"):
        rc.nulls.compare_maps(x[:-1], Y, nulls=perms)
    with pytest.raises(InputError, match="constant"):
        rc.nulls.compare_maps(np.ones_like(x), Y, nulls=perms)
    with pytest.raises(ShapeError, match="neuromaps"):
        rc.nulls.compare_maps(x, Y, nulls=perms.T[:, :10])
    with pytest.raises(InputError, match=r"\[-1,"):
        rc.nulls.compare_maps(x, Y, nulls=perms + 1)
    with pytest.raises(InputError, match="method"):
        rc.nulls.compare_maps(x, Y, nulls=perms, method="kendall")
    with pytest.raises(InputError, match="alternative"):
        rc.nulls.compare_maps(x, Y, nulls=perms, alternative="both")
    with pytest.raises(InputError, match="spec"):
        rc.nulls.compare_maps(x, Y, nulls={"method": "magic"})
    with pytest.raises(ShapeError, match="surrogate"):
        rc.nulls.compare_maps(np.stack([x, x + 1]), Y, nulls=np.zeros((5, x.size)))
    with pytest.raises(InputError, match="finite"):
        rc.nulls.compare_maps(np.where(np.arange(x.size) == 0, np.inf, x), Y, nulls=perms)


@pytest.mark.parametrize("method", ["variogram", "burt2018", "moran"])
def test_generator_spec_surrogates(rng, method):
    pts = rng.uniform(0, 100, (40, 3))
    D = rc.nulls.distance(pts)
    x = np.sin(pts[:, 0] / 20) + 0.1 * rng.standard_normal(40)
    Y = rng.standard_normal((3, 40))
    spec = {"method": method, "distance": D, "n_perm": 20, "seed": 0}
    res = rc.nulls.compare_maps(x, Y, nulls=spec)
    gen = {"variogram": rc.nulls.variogram_surrogates, "burt2018": rc.nulls.burt2018_surrogates}.get(method)
    surr = gen(x, D, n_perm=20, seed=0) if gen else rc.nulls.moran(x, rc.nulls.moran_weights(D), n_perm=20, seed=0)
    np.testing.assert_array_equal(res.pvalue, rc.nulls.compare_maps(x, Y, nulls=surr).pvalue)
