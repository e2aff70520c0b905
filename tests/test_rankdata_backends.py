"""Average ranks on every backend equal scipy.stats.rankdata exactly (ranks are
integers or half-integers), for ties, constant rows, masks, NaN, 1-element and
empty rows; and the two orderings behind the array-API path (packed integer
keys, used on JAX and CuPy; a stable argsort elsewhere) agree on NumPy arrays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import array_api_compat.numpy as anp
import numpy as np
import pytest
import scipy.stats as ss
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import recouple as rc
from recouple.kernels import coupling as KC
from recouple.kernels import stats as K


def _reference(x, valid):
    out = np.full(x.shape, np.nan)
    for idx in np.ndindex(x.shape[:-1]):
        v = valid[idx]
        out[idx + (v,)] = ss.rankdata(x[idx][v])
    return out


def _hard_rows(rng, n, dtype=np.float64):
    """Rows that stress ranking: ties, a constant row, -0.0 against 0.0,
    neighbours one ulp apart, extreme magnitudes, NaN and -inf."""
    x = rng.integers(-3, 4, size=(9, n)).astype(dtype)
    fi = np.finfo(dtype)
    one = dtype(1)
    x[1] = 2.5  # all equal
    x[2, ::2] = -0.0  # ties with the 0.0 entries
    x[3] = np.nextafter(one, dtype(2)) ** (np.arange(n) % 3)  # 1, 1 + ulp, 1 + 2 ulp (low key bits only)
    x[4] = x[4] * np.array([fi.tiny, fi.max / 4, -fi.smallest_normal, fi.smallest_subnormal,
                            -fi.smallest_subnormal], dtype=dtype)[np.arange(n) % 5]
    x[5, ::3] = np.nan
    x[6, : n // 2] = -np.inf
    x[7] = rng.standard_normal(n)
    x[8] = -x[3]
    return x


SIZES = [1, 2, 3, 7, 83, 300]


@pytest.mark.parametrize("n", SIZES)
def test_ranks_equal_scipy_exactly(xp, rng, n):
    x = _hard_rows(rng, n)
    mask = rng.random(x.shape) < 0.7
    mask[1] = True
    for m in (None, mask):
        got = xp.to_numpy(xp.jit(K.rankdata, axis=-1)(xp.asarray(x), mask=None if m is None else xp.asarray(m)))
        valid = ~np.isnan(x) & (True if m is None else m)
        np.testing.assert_array_equal(got, _reference(x, valid))


def test_float32_ranks_equal_scipy_exactly(xp, rng):
    x = _hard_rows(rng, 40, np.float32)
    mask = rng.random(x.shape) < 0.7
    got = xp.to_numpy(xp.jit(K.rankdata, axis=-1)(xp.asarray(x), mask=xp.asarray(mask)))
    valid = ~np.isnan(x) & mask
    np.testing.assert_array_equal(got, _reference(x.astype(np.float64), valid))


def test_empty_and_fully_masked_rows(xp):
    for shape in [(0,), (3, 0), (0, 5)]:
        got = xp.to_numpy(xp.jit(K.rankdata, axis=-1)(xp.asarray(np.zeros(shape))))
        assert got.shape == shape
    x = np.array([[1.0, 2.0, 2.0], [np.nan, np.nan, np.nan], [3.0, 1.0, 2.0]])
    mask = np.array([[False, False, False], [True, True, True], [True, False, True]])
    got = xp.to_numpy(xp.jit(K.rankdata, axis=-1)(xp.asarray(x), mask=xp.asarray(mask)))
    np.testing.assert_array_equal(got, [[np.nan] * 3, [np.nan] * 3, [2.0, np.nan, 1.0]])


def test_other_axes_equal_scipy(xp, rng):
    x = rng.integers(0, 4, size=(6, 5, 4)).astype(float)
    for axis in (0, 1):
        got = xp.to_numpy(xp.jit(K.rankdata, axis=axis)(xp.asarray(x)))
        np.testing.assert_array_equal(got, ss.rankdata(x, axis=axis))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_packed_and_argsort_orderings_agree(rng, n, dtype):
    # the packed-key ordering (JAX, CuPy) run on NumPy arrays, with the
    # sort-based inverse that CuPy takes, against the argsort ordering and scipy
    x = _hard_rows(rng, n, dtype)
    x[0, ::4] = np.inf
    valid = ~np.isnan(x) & (rng.random(x.shape) < 0.8)
    ref = _reference(x.astype(np.float64), valid)
    np.testing.assert_array_equal(K._ranks_last_axis(anp, x, valid, packed=True), ref)
    np.testing.assert_array_equal(K._ranks_last_axis(anp, x, valid, packed=False), ref)


@pytest.mark.parametrize("packed", [True, False])
def test_excluded_entries_never_tie_with_valid_inf(packed):
    # the array-API orderings sort excluded entries after +inf
    x = np.array([[np.inf, 1.0, np.inf, 0.5, np.inf]])
    valid = np.array([[True, True, False, True, True]])
    got = K._ranks_last_axis(anp, x, valid, packed=packed)
    np.testing.assert_array_equal(got, [[3.5, 2.0, np.nan, 1.0, 3.5]])


def test_jax_ranks_and_couplings_equal_numpy(rng):
    pytest.importorskip("jax")
    # tied integer weights (streamline counts) take the general rank path on NumPy
    n = 30
    sc = rng.integers(0, 4, size=(3, n, n)).astype(float)
    sc = np.triu(sc, 1) + np.swapaxes(np.triu(sc, 1), -1, -2)
    fc = np.round(rng.standard_normal((3, n, n)), 1)
    fc = (fc + np.swapaxes(fc, -1, -2)) / 2
    for edges in ("sc_nonzero", "offdiag", "both_nonzero"):
        a = rc.coupling.nodal(sc, fc, edges=edges, backend="numpy")
        b = rc.coupling.nodal(sc, fc, edges=edges, backend="jax")
        np.testing.assert_allclose(b.coupling, a.coupling, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(b.n_edges, a.n_edges)
        np.testing.assert_array_equal(b.undefined, a.undefined)
    x = np.round(rng.standard_normal((50, 40)), 1)
    np.testing.assert_array_equal(rc.stats.rankdata(x, backend="jax"), rc.stats.rankdata(x, backend="numpy"))


def test_jax_spearman_kernel_equals_scipy_with_ties(rng):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = pytest.importorskip("jax.numpy")
    a = rng.integers(0, 5, size=(4, 60)).astype(float)
    b = np.round(rng.standard_normal((4, 60)), 1)
    mask = rng.random(a.shape) < 0.7
    r = np.asarray(jax.jit(K.spearman_rows)(jnp.asarray(a), jnp.asarray(b), mask=jnp.asarray(mask)))
    for i in range(4):
        assert abs(r[i] - ss.spearmanr(a[i][mask[i]], b[i][mask[i]])[0]) < 1e-12
    # an SC row with one tie group only (constant weights) is undefined, as on NumPy
    sc = np.ones((1, 6, 6)) - np.eye(6)
    fc = rng.standard_normal((1, 6, 6))
    r, n_edges = jax.jit(KC.nodal_coupling)(jnp.asarray(sc), jnp.asarray(fc))
    assert np.isnan(np.asarray(r)).all() and (np.asarray(n_edges) == 5).all()


def test_jax_without_x64_ranks_float32(tmp_path):
    # without x64 JAX has no 64-bit integers: float32 ranks take the argsort ordering
    pytest.importorskip("jax")
    script = (
        "import jax, jax.numpy as jnp, numpy as np, scipy.stats as ss\n"
        "from recouple.kernels import stats as K\n"
        "assert not jax.config.jax_enable_x64\n"
        "x = np.array([[3.0, 1.0, 3.0, -0.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]], dtype=np.float32)\n"
        "r = np.asarray(jax.jit(K.rankdata)(jnp.asarray(x)))\n"
        "assert r.dtype == np.float32 and np.array_equal(r, ss.rankdata(x, axis=-1)), r\n"
    )
    env = {**os.environ, "JAX_ENABLE_X64": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


_values = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, 1e-300, -5e-324, 5e-324, 1e300, -np.inf, np.inf, np.nan,
                           1.0000000000000002, 0.9999999999999999]) | st.floats(-4, 4)


@settings(max_examples=80, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9), elements=_values),
       st.data())
def test_array_api_orderings_property(x, data):
    # both orderings of the array-API path (packed keys: JAX, CuPy; argsort: the rest) against scipy
    valid = ~np.isnan(x) & data.draw(hnp.arrays(bool, x.shape))
    ref = _reference(x, valid)
    for packed in (True, False):
        np.testing.assert_array_equal(K._ranks_last_axis(anp, x, valid, packed=packed), ref)
        with np.errstate(over="ignore"):  # 1e300 becomes inf in float32
            x32 = x.astype(np.float32)
        valid32 = valid & ~np.isnan(x32)
        np.testing.assert_array_equal(K._ranks_last_axis(anp, x32, valid32, packed=packed),
                                      _reference(x32.astype(np.float64), valid32))
