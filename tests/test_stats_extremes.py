"""Correlation kernels at extreme magnitudes and on empty inputs, on every backend.

The reference values are SciPy's high-precision cases (computed with mpmath at
80 digits in scipy/stats/tests/test_stats.py, TestPearsonr): a naive
``sab / sqrt(saa * sbb)`` overflows near 1e90 (r comes back 0.0) and
overflows or underflows near 1e200 and 1e-200 (NaN).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss

import recouple as rc
from recouple.kernels import stats as K

# (x, y, r) from scipy's test_very_large_input_values, test_extremely_large_input_values,
# test_very_small_input_values
SCIPY_CASES = [
    pytest.param(
        1e90 * np.array([0, 0, 0, 1, 1, 1, 1], dtype=float),
        1e90 * np.arange(7, dtype=float),
        0.8660254037844386,
        id="1e90",
    ),
    pytest.param(
        np.array([2.3e200, 4.5e200, 6.7e200, 8e200]),
        np.array([1.2e199, 5.5e200, 3.3e201, 1.0e200]),
        0.351312332103289,
        id="1e200",
    ),
    pytest.param(
        np.array([0.004434375, 0.004756007, 0.003911996, 0.0038005, 0.003409971]),
        np.array([2.48e-188, 7.41e-181, 4.09e-208, 2.08e-223, 2.66e-245]),
        0.7272930540750450,
        id="1e-200",
    ),
]

RTOL = 1e-13


def _close(got, want):
    got = float(got)
    assert np.isfinite(got), f"expected {want!r}, got {got!r}"
    assert abs(got - want) <= RTOL * abs(want), f"expected {want!r}, got {got!r}"


@pytest.mark.parametrize(("x", "y", "r"), SCIPY_CASES)
def test_pearson_rows_extreme_magnitudes(xp, x, y, r):
    got = xp.to_numpy(xp.jit(K.pearson_rows, min_count=3)(xp.asarray(x), xp.asarray(y)))
    _close(got, r)
    # swapped, batched with an ordinary row, and with a NaN pair dropped
    rng = np.random.default_rng(0)
    a = np.vstack([x, rng.standard_normal(x.size)])
    b = np.vstack([y, rng.standard_normal(x.size)])
    got2 = xp.to_numpy(xp.jit(K.pearson_rows, min_count=3)(xp.asarray(b), xp.asarray(a)))
    _close(got2[0], r)
    assert abs(got2[1] - ss.pearsonr(a[1], b[1])[0]) < 1e-12
    a3 = np.append(x, np.nan)
    b3 = np.append(y, 1e300)
    got3 = xp.to_numpy(xp.jit(K.pearson_rows, min_count=3)(xp.asarray(a3), xp.asarray(b3)))
    _close(got3, r)


@pytest.mark.parametrize(("x", "y", "r"), SCIPY_CASES)
def test_correlate_extreme_magnitudes(xp, x, y, r):
    got = xp.to_numpy(xp.jit(K.correlate, method="pearson")(xp.asarray(x), xp.asarray(y)))
    _close(got, r)
    # many maps of different magnitudes at once (each row scaled on its own)
    X = np.vstack([x, y, np.arange(x.size, dtype=float)])
    got = xp.to_numpy(xp.jit(K.correlate, method="pearson")(xp.asarray(X), xp.asarray(X)))
    _close(got[0, 1], r)
    _close(got[1, 0], r)
    _close(got[0, 0], 1.0)
    _close(got[1, 1], 1.0)
    got = xp.to_numpy(xp.jit(K.correlate_pairwise, method="pearson", min_count=3)(xp.asarray(X), xp.asarray(X)))
    _close(got[0, 1], r)
    _close(got[1, 0], r)
    Xn = np.hstack([X, np.full((3, 1), np.nan)])
    Xn[2, -1] = 5.0
    got = xp.to_numpy(
        xp.jit(K.correlate_pairwise, method="pearson", min_count=3)(xp.asarray(Xn), xp.asarray(Xn))
    )
    _close(got[0, 1], r)
    _close(got[1, 0], r)


@pytest.mark.parametrize(("x", "y", "r"), SCIPY_CASES)
def test_spearman_extreme_magnitudes(xp, x, y, r):
    want = ss.spearmanr(x, y)[0]
    got = xp.to_numpy(xp.jit(K.spearman_rows, min_count=3)(xp.asarray(x[None]), xp.asarray(y[None])))
    assert abs(got[0] - want) < 1e-12
    got = xp.to_numpy(xp.jit(K.correlate, method="spearman")(xp.asarray(x), xp.asarray(y)))
    assert abs(got - want) < 1e-12
    got = xp.to_numpy(xp.jit(K.correlate_pairwise, method="spearman", min_count=3)(xp.asarray(x), xp.asarray(y)))
    assert abs(got - want) < 1e-12


def test_near_float_max_is_not_finite_wrong(xp):
    # sums of the raw values overflow here; r must still be right (scale-free)
    x = np.array([1.7e308, 1.0e308, 0.0, -1.7e308, 3e307])
    y = np.array([1.0, 2.0, 0.5, -3.0, 0.0])
    want = ss.pearsonr(x * 1e-300, y)[0]
    got = xp.to_numpy(xp.jit(K.pearson_rows, min_count=3)(xp.asarray(x), xp.asarray(y)))
    assert abs(got - want) < 1e-13
    got = xp.to_numpy(xp.jit(K.correlate, method="pearson")(xp.asarray(x), xp.asarray(y)))
    assert abs(got - want) < 1e-13
    got = xp.to_numpy(xp.jit(K.correlate_pairwise, method="pearson", min_count=3)(xp.asarray(x), xp.asarray(y)))
    assert abs(got - want) < 1e-13


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_infinite_entries_give_nan_not_a_finite_r(xp):
    # the public functions refuse inf; the kernels must still not invent an r
    x = np.array([1.0, np.inf, 3.0, 4.0])
    y = np.array([1.0, 2.0, 4.0, 3.0])
    for fn in (K.pearson_rows,):
        assert np.isnan(xp.to_numpy(xp.jit(fn, min_count=3)(xp.asarray(x), xp.asarray(y))))
    for fn in (K.correlate, K.correlate_pairwise):
        assert np.isnan(xp.to_numpy(xp.jit(fn, method="pearson")(xp.asarray(x), xp.asarray(y))))


def test_ordinary_data_unchanged_bytes(rng):
    # the row scale is a power of two, so ordinary results keep their bytes;
    # compare with the unscaled formula written out here
    a = rng.standard_normal((5, 33)) * np.array([[1.0], [3.7], [1e-3], [2e5], [0.5]])
    b = 0.3 * a + rng.standard_normal((5, 33))
    da = a - a.mean(axis=-1, keepdims=True)
    db = b - b.mean(axis=-1, keepdims=True)
    want = np.clip((da * db).sum(-1) / np.sqrt((da * da).sum(-1) * (db * db).sum(-1)), -1, 1)
    got = K.pearson_rows(a, b)
    np.testing.assert_array_equal(got, want)


# --- empty inputs ---

EMPTY_FNS = [K.pearson_rows, K.spearman_rows]


@pytest.mark.parametrize("fn", EMPTY_FNS, ids=["pearson", "spearman"])
def test_rows_zero_length_is_nan(xp, fn):
    for shape in [(0,), (3, 0), (2, 3, 0)]:
        a = np.zeros(shape)
        got = xp.to_numpy(xp.jit(fn, min_count=3)(xp.asarray(a), xp.asarray(a)))
        assert got.shape == shape[:-1]
        assert np.isnan(got).all()


@pytest.mark.parametrize("fn", EMPTY_FNS, ids=["pearson", "spearman"])
def test_rows_zero_rows_is_empty(xp, fn):
    for shape in [(0, 5), (0, 0), (2, 0, 4)]:
        a = np.zeros(shape)
        got = xp.to_numpy(xp.jit(fn, min_count=3)(xp.asarray(a), xp.asarray(a)))
        assert got.shape == shape[:-1]


@pytest.mark.parametrize("method", ["pearson", "spearman"])
@pytest.mark.parametrize("fn", [K.correlate, K.correlate_pairwise], ids=["correlate", "pairwise"])
def test_correlate_empty(xp, fn, method):
    cases = [((0, 6), (4, 6), (0, 4)), ((3, 6), (0, 6), (3, 0)), ((3, 0), (4, 0), (3, 4)), ((0,), (2, 0), (2,))]
    for sx, sy, want in cases:
        got = xp.to_numpy(xp.jit(fn, method=method)(xp.asarray(np.ones(sx)), xp.asarray(np.ones(sy))))
        assert got.shape == want
        if 0 in sx[-1:]:
            assert np.isnan(got).all(), "zero-length maps: too few entries"


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_public_empty(method):
    assert rc.stats.pearson_rows(np.zeros((3, 0)), np.zeros((3, 0))).shape == (3,)
    assert np.isnan(rc.stats.spearman_rows(np.zeros((3, 0)), np.zeros((3, 0)))).all()
    assert rc.stats.spearman_rows(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)
    assert rc.stats.correlate(np.zeros((0, 5)), np.ones((3, 5)), method=method).shape == (0, 3)
    x = np.zeros((0, 5))
    Y = np.ones((3, 5))
    Y[0, 0] = np.nan
    assert rc.stats.correlate(x, Y, method=method).shape == (0, 3)
    assert np.isnan(rc.stats.correlate(np.zeros((2, 0)), np.ones((3, 0)), method=method)).all()
