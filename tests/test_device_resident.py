"""Resample loops that stay on the device (JAX): map association, PLS bootstrap
and nulls, the voxel chunk loop.

Each loop runs under ``jax.transfer_guard("disallow")`` in its iterations
(:func:`recouple.engine.dispatch.guard_resident_loops`: an implicit
host<->device copy raises, the explicit ``device_put``/``device_get`` pass),
compiles at most two programs per analysis, and gives NumPy's results.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import recouple as rc
from recouple.engine.dispatch import device_put, guard_resident_loops, pad_leading, resident_body
from recouple.engine.voxel import chunk_coupling, scan_coupling, synthetic_chunk

_PLS = importlib.import_module("recouple.genes.pls")  # the module (rc.genes.pls is the function)
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def jax():
    jax = pytest.importorskip("jax")
    rc.get_backend("jax")  # x64 before any array exists
    return jax


@pytest.fixture
def compiles(jax):
    """List that receives one entry per XLA compilation while the test runs."""
    seen = []

    def listener(name, duration, **kwargs):
        if name == _COMPILE_EVENT:
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listener)


def test_guard_catches_an_implicit_transfer(jax):
    import jax.numpy as jnp

    with guard_resident_loops():
        with resident_body("jax"):
            explicit = device_put(np.ones(3), "jax")  # explicit: allowed
            with pytest.raises(Exception, match="[Dd]isallowed host-to-device"):
                jnp.asarray(np.ones(3))  # implicit: refused
            with pytest.raises(Exception, match="[Dd]isallowed host-to-device"):
                explicit + 1.0  # a Python scalar in an eager op is an implicit copy
    with resident_body("jax"):  # no guard outside guard_resident_loops
        jnp.asarray(np.ones(3))


def test_pad_leading():
    a = np.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(pad_leading(a, 5, -1), [[0, 1], [2, 3], [4, 5], [-1, -1], [-1, -1]])
    np.testing.assert_array_equal(pad_leading(a, 4, a[0]), [[0, 1], [2, 3], [4, 5], [0, 1]])
    assert pad_leading(a, 3, 0) is a


# ----------------------------------------------------------------------------- association


@pytest.fixture
def maps():
    rng = np.random.default_rng(5)
    n, g, k = 48, 13, 101
    x = rng.standard_normal(n)
    Y = rng.standard_normal((g, n))
    Y[2] += 0.9 * x
    Y[5] = 1.0  # constant target: NaN, left out
    perms = np.stack([rng.permutation(n) for _ in range(k)])
    return x, Y, perms, rng


def _assoc_cases(x, Y, perms, rng):
    n = x.size
    dropped = perms[:60].copy()
    dropped[:, :3] = -1
    x_nan = x.copy()
    x_nan[7] = np.nan
    two = np.stack([x, rng.standard_normal(n)])
    return {
        "perm-pearson": (x, Y, dict(nulls=perms)),
        "perm-spearman-less": (x, Y, dict(nulls=perms, method="spearman", alternative="less")),
        "resampled-greater": (x, Y, dict(nulls=rng.integers(0, n, perms.shape), alternative="greater")),
        "surrogates-stored": (x, Y, dict(nulls=rng.standard_normal((70, n)), store_null=True)),
        "pairwise-nan": (x_nan, Y, dict(nulls=dropped, store_null=True)),
        "pairwise-spearman": (x_nan, Y, dict(nulls=dropped, method="spearman")),
        "two-maps-map-blocks-tail": (two, Y, dict(nulls=perms, map_batch_size=5, tail_approximation=True)),
    }


@pytest.mark.parametrize("case", ["perm-pearson", "perm-spearman-less", "resampled-greater", "surrogates-stored",
                                  "pairwise-nan", "pairwise-spearman", "two-maps-map-blocks-tail"])
def test_association_loop_stays_on_device(maps, compiles, case):
    x, Y, kwargs = _assoc_cases(*maps)[case]
    a = rc.nulls.compare_maps(x, Y, batch_size=17, **kwargs)  # 17 does not divide K: a padded last block
    compiles.clear()
    with guard_resident_loops():
        b = rc.nulls.compare_maps(x, Y, batch_size=17, backend="jax", **kwargs)
    assert len(compiles) <= 2
    np.testing.assert_allclose(b.r, a.r, atol=1e-12)
    np.testing.assert_array_equal(np.isnan(b.r), np.isnan(a.r))
    np.testing.assert_allclose(b.null_max, a.null_max, atol=1e-12)
    if kwargs.get("tail_approximation"):
        np.testing.assert_array_equal(b.pvalue_permutation, a.pvalue_permutation)
        np.testing.assert_allclose(b.pvalue, a.pvalue, rtol=1e-9)
    else:
        np.testing.assert_array_equal(b.pvalue, a.pvalue)
        np.testing.assert_array_equal(b.pvalue_fwer, a.pvalue_fwer)
        np.testing.assert_array_equal(b.pvalue_fdr, a.pvalue_fdr)
    if kwargs.get("store_null"):
        np.testing.assert_allclose(b.null, a.null, atol=1e-12)
        np.testing.assert_array_equal(np.isnan(b.null), np.isnan(a.null))


def test_association_padding_counts_nowhere(maps, jax):
    """One block of the whole K and blocks of 1 give the same counts as NumPy."""
    x, Y, perms, _ = maps
    a = rc.nulls.compare_maps(x, Y, nulls=perms)
    for bs in (1, 64, perms.shape[0], 500):
        b = rc.nulls.compare_maps(x, Y, nulls=perms, batch_size=bs, backend="jax")
        np.testing.assert_array_equal(b.pvalue, a.pvalue)
        np.testing.assert_array_equal(b.pvalue_fwer, a.pvalue_fwer)
        assert b.null_max.shape == a.null_max.shape


def test_gene_association_stays_on_device(compiles):
    rng = np.random.default_rng(2)
    n, g = 40, 25
    expr = rng.standard_normal((n, g))
    e = rc.genes.load_expression(expr, regions=[f"R{i}" for i in range(n)], genes=[f"G{i}" for i in range(g)])
    y = expr[:, 0] + rng.standard_normal(n)
    spec = {"method": "permutation", "n_perm": 77, "seed": 3}
    a = rc.genes.associate(y, e, nulls=spec)
    compiles.clear()
    with guard_resident_loops():
        b = rc.genes.associate(y, e, nulls=spec, backend="jax")
    assert len(compiles) <= 2
    np.testing.assert_allclose(b.r, a.r, atol=1e-12)
    np.testing.assert_array_equal(b.pvalue, a.pvalue)


# ----------------------------------------------------------------------------- PLS


@pytest.fixture
def expression():
    rng = np.random.default_rng(9)
    n, g = 36, 80
    expr = rng.standard_normal((n, g))
    e = rc.genes.load_expression(expr, regions=[f"R{i}" for i in range(n)], genes=[f"G{i}" for i in range(g)])
    y = expr[:, :4].sum(axis=1) + rng.standard_normal(n)
    return e, y, np.stack([y, y + rng.standard_normal(n)])


@pytest.mark.parametrize("n_components", [1, 3])
def test_pls_bootstrap_stays_on_device(expression, compiles, n_components):
    e, y, _ = expression
    kw = dict(n_components=n_components, n_boot=47, seed=4, batch_size=10)  # 10 does not divide 47
    a = rc.genes.pls(y, e, **kw)
    rc.genes.pls(y, e, n_components=n_components, backend="jax")  # the fit's kernels, compiled once
    compiles.clear()
    with guard_resident_loops():
        b = rc.genes.pls(y, e, **kw, backend="jax")
    assert len(compiles) <= 2  # the batch step and the per-gene quadratic form
    np.testing.assert_allclose(b.weights, a.weights, atol=1e-12)
    np.testing.assert_allclose(b.se, a.se, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(b.zscores, a.zscores, rtol=1e-10)
    # the padding does not count: any batch size gives the same moments
    c = rc.genes.pls(y, e, **dict(kw, batch_size=47), backend="jax")
    np.testing.assert_allclose(c.se, a.se, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("several", [False, True])
def test_pls_nulls_stay_on_device(expression, compiles, monkeypatch, several):
    e, y, y2 = expression
    maps = y2 if several else y
    kw = dict(n_components=2, nulls="permutation", n_perm=41, seed=1, batch_size=16)
    a = rc.genes.pls(maps, e, **kw)
    in_loop = []
    inner = _PLS._pls_null_resident

    def counted(*args):
        before = len(compiles)
        out = inner(*args)
        in_loop.append(len(compiles) - before)
        return out

    monkeypatch.setattr(_PLS, "_pls_null_resident", counted)
    with guard_resident_loops():
        b = rc.genes.pls(maps, e, **kw, backend="jax")
    assert len(in_loop) == 1 and in_loop[0] <= 1
    np.testing.assert_allclose(b.null_var_explained, a.null_var_explained, atol=1e-12)
    np.testing.assert_array_equal(b.pvalue, a.pvalue)


# ----------------------------------------------------------------------------- voxel chunk loop


@pytest.fixture
def scan():
    z, values, cols, valid, _ = synthetic_chunk(700, 90, 700, 0.06, seed=3)
    valid = valid.copy()
    valid[:, 20:] = np.random.default_rng(1).random((700, cols.shape[1] - 20)) < 0.4  # ragged rows
    return z, values, cols, valid


@pytest.mark.parametrize("fc_mode", ["dense", "sampled"])
@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_voxel_loop_stays_on_device(scan, compiles, fc_mode, method):
    z, values, cols, valid = scan
    kw = dict(rows_per_chunk=96, fc_mode=fc_mode, method=method)  # 96 does not divide 700
    a = scan_coupling(z, values, cols, valid, **kw)
    compiles.clear()
    with guard_resident_loops():
        b = scan_coupling(z, values, cols, valid, **kw, backend="jax")
    assert len(compiles) <= 2
    assert a[2] == b[2] == fc_mode
    np.testing.assert_allclose(b[0], a[0], atol=1e-12)
    np.testing.assert_array_equal(np.isnan(b[0]), np.isnan(a[0]))
    np.testing.assert_array_equal(b[1], a[1])


@pytest.mark.parametrize("fc_mode", ["dense", "sampled"])
def test_scan_coupling_is_the_chunks(scan, fc_mode):
    """NumPy: the loop gives each chunk's :func:`chunk_coupling`, whatever the chunk size."""
    z, values, cols, valid = scan
    r, n, mode = scan_coupling(z, values, cols, valid, rows_per_chunk=250, fc_mode=fc_mode)
    assert mode == fc_mode and r.shape == n.shape == (z.shape[0],)
    rows = np.arange(250, 500)
    rc_, nc, _ = chunk_coupling(z[rows], z, values[rows], cols[rows], valid[rows], rows, fc_mode=fc_mode)
    np.testing.assert_array_equal(r[rows], rc_)
    np.testing.assert_array_equal(n[rows], nc)
    r2, n2, _ = scan_coupling(z, values, cols, valid, rows_per_chunk=700, fc_mode=fc_mode)
    np.testing.assert_allclose(r2, r, atol=1e-12)
    np.testing.assert_array_equal(n2, n)
