"""The dense voxel FC path in column blocks (:func:`recouple.kernels.voxel.dense_fc`)
against the whole FC rows it replaces (``take_along(fc_rows(...))``): the same
matrix-product elements, so the same bytes, for every block width; and the
coupling against the per-voxel SciPy loop.

An element of a BLAS product is summed over T the same way whatever the
number of columns, but OpenBLAS sums in another order when it runs a product
on one thread than on several (it goes to one thread below ~2.6e5
multiply-adds) and takes products a few columns wide through other kernels.
The default blocks hold >= 4M products (far above), so they run as the whole
product does; tests of small explicit blocks (>= 15 columns) pin BLAS to one
thread so that the whole product and its blocks are summed alike.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from recouple.engine import voxel as ev
from recouple.exceptions import InputError
from recouple.kernels import voxel as kv

from test_voxel_sampled import CASES, EDGES, METHODS, _chunk, _reference


def _whole_rows(z_rows, z_all, cols):
    return np.take_along_axis(kv.fc_rows(z_rows, z_all), cols, -1)


def _random_chunk(v=700, t=23, c=37, k=29, seed=0):
    rng = np.random.default_rng(seed)
    z = kv.standardize_timeseries(rng.standard_normal((v, t)) + 0.4 * rng.standard_normal(t))
    cols = rng.integers(0, v, size=(c, k))  # unsorted, repeats allowed: any valid index
    return z, cols


@pytest.mark.parametrize("block", [64, 256, 349, 350, 699, 700, 5000, None])
def test_dense_fc_equals_whole_rows_bytes(xp, block):
    z, cols = _random_chunk()
    zr = z[100:137]
    with threadpool_limits(1, user_api="blas"):
        ref = _whole_rows(zr, z, cols)
        f = xp.to_numpy(xp.jit(kv.dense_fc, block_cols=block)(xp.asarray(zr), xp.asarray(z), xp.asarray(cols)))
    if xp.name in ("numpy", "array_api_strict"):
        assert f.tobytes() == ref.tobytes()
    else:  # the device's own whole-row product is the reference there
        whole = xp.to_numpy(xp.jit(kv.dense_fc, block_cols=z.shape[0])(xp.asarray(zr), xp.asarray(z),
                                                                         xp.asarray(cols)))
        assert f.tobytes() == whole.tobytes()
        np.testing.assert_allclose(f, ref, rtol=0, atol=1e-13)


def test_dense_fc_at_bench_scale_equals_whole_rows_bytes():
    # the shapes of `recouple bench` voxel_coupling, cut short in V: several blocks of the default budget
    z, cols = _random_chunk(v=20000, t=300, c=1000, k=256, seed=3)
    b = kv.dense_block_cols(1000, 20000)
    assert b < 20000
    f = kv.dense_fc(z[:1000], z, cols)
    assert f.tobytes() == _whole_rows(z[:1000], z, cols).tobytes()
    assert f.tobytes() == kv.dense_fc(z[:1000], z, cols, block_cols=20000).tobytes()


def test_dense_fc_keeps_exact_values_ties_and_nan():
    _, _, z, _, cols, _, _ = _chunk("ties_zero_nan")
    with threadpool_limits(1, user_api="blas"):
        ref = _whole_rows(z, z, cols)
        for block in (16, 40, 75, 149):
            assert kv.dense_fc(z, z, cols, block_cols=block).tobytes() == ref.tobytes()
    assert np.isnan(ref).any() and (ref == 0).any() and (np.abs(ref) == 1).any()


def test_dense_fc_skips_no_block_a_row_needs():
    # columns only in the first and last blocks: the middle products are skipped, the values unchanged
    z, _ = _random_chunk(v=1000, t=11, c=5, k=4)
    cols = np.array([[0, 999, 3, 998]] * 5)
    assert kv.dense_fc(z[:5], z, cols, block_cols=100).tobytes() == _whole_rows(z[:5], z, cols).tobytes()


def test_dense_fc_rejects_columns_outside_the_voxels():
    z, cols = _random_chunk(v=50, t=9, c=3, k=4)
    with pytest.raises(InputError, match="sc_indices"):
        kv.dense_fc(z[:3], z, np.where(cols == cols[0, 0], 50, cols), block_cols=16)
    # negative columns count from the end, as take_along_axis
    neg = cols - 50
    with threadpool_limits(1, user_api="blas"):
        assert kv.dense_fc(z[:3], z, neg, block_cols=16).tobytes() == _whole_rows(z[:3], z, cols).tobytes()


def test_dense_fc_empty():
    z, _ = _random_chunk(v=50, t=9)
    assert kv.dense_fc(z[:0], z, np.zeros((0, 4), np.int64)).shape == (0, 4)
    assert kv.dense_fc(z[:3], z, np.zeros((3, 0), np.int64), block_cols=16).shape == (3, 0)


def test_dense_block_cols():
    assert kv.dense_block_cols(1000, 50000) * 1000 * 8 <= kv.DENSE_BLOCK_BYTES
    b = kv.dense_block_cols(1000, 50000)
    n = -(-50000 // b)
    assert n > 1 and 50000 - (n - 1) * b > b - n  # equal widths to one column: no sliver of a block
    assert kv.dense_block_cols(41, 50000) == 50000  # one block when it fits
    assert kv.dense_block_cols(10**6, 50000) >= 256 - 1
    assert kv.dense_block_cols(1000, 50000) == kv.dense_block_cols(1000, 50000)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("edges", EDGES)
@pytest.mark.parametrize("method", METHODS)
def test_blocked_dense_coupling_equals_whole_rows_and_scipy(xp, case, edges, method):
    x, a, z, vals, cols, valid, rows = _chunk(case)
    static = {"method": method, "edges": edges, "min_edges": 3, "fc_mode": "dense"}
    args = [xp.asarray(v) for v in (z, z, vals, cols, valid, rows)]
    with threadpool_limits(1, user_api="blas"):
        rw, nw = (xp.to_numpy(r) for r in xp.jit(kv.voxel_to_voxel_coupling, block_cols=z.shape[0], **static)(*args))
        rb, nb = (xp.to_numpy(r) for r in xp.jit(kv.voxel_to_voxel_coupling, block_cols=40, **static)(*args))
    np.testing.assert_array_equal(nb, nw)
    assert rb.tobytes() == rw.tobytes()
    ref = _reference(x, a, edges=edges, method=method)
    np.testing.assert_array_equal(np.isnan(rb), np.isnan(ref))
    np.testing.assert_allclose(rb, ref, rtol=0, atol=1e-12, equal_nan=True)


def test_engine_dense_chunk_equals_whole_rows():
    data = ev.synthetic_chunk(3000, 40, 200, 0.05, seed=2)
    z, vals, cols, valid, rows = data
    for method in METHODS:
        r, n, mode = ev.chunk_coupling(z[:200], z, vals, cols, valid, rows, method=method, fc_mode="dense")
        assert mode == "dense"
        fc = _whole_rows(z[:200], z, cols)
        r0, n0 = kv.coupling_from_fc(fc, vals, cols, valid, rows, method=method)
        np.testing.assert_array_equal(n, n0)
        assert r.tobytes() == r0.tobytes()


def test_crossover_is_nominal_unless_the_machine_is_clearly_unlike_it(monkeypatch):
    nominal = ev.NOMINAL_CROSSOVER["host"]
    margin = ev.CROSSOVER_MARGIN
    for measured, expected in ((nominal, nominal), (nominal * 0.5 * margin, nominal), (nominal / margin, nominal),
                               (nominal * 1.01 * margin, nominal * 1.01 * margin),
                               (nominal / (1.01 * margin), nominal / (1.01 * margin))):
        monkeypatch.setattr(ev, "fc_rates", lambda be, t, m=measured: (1e10, m * 1e10))
        assert ev.crossover_density("numpy", 300) == pytest.approx(expected, rel=1e-12)
    # the same chunk takes the same path whatever the measured rates, within the margin
    modes = set()
    for measured in np.geomspace(nominal / margin, nominal * margin, 9):
        monkeypatch.setattr(ev, "fc_rates", lambda be, t, m=measured: (1e10, m * 1e10))
        modes.add(ev.plan_chunk_mode("auto", nnz=int(0.9 * nominal * 1000 * 5000), n_rows=1000, n_voxels=5000,
                                     n_timepoints=300, backend="numpy"))
    assert modes == {"sampled"}
    assert ev.plan_chunk_mode("auto", nnz=int(1.1 * nominal * 1000 * 5000), n_rows=1000, n_voxels=5000,
                              n_timepoints=300, backend="numpy") == "dense"
    assert ev.plan_chunk_mode("sampled", nnz=10**9, n_rows=1, n_voxels=1, n_timepoints=3) == "sampled"
    with pytest.raises(InputError, match="fc_mode"):
        ev.plan_chunk_mode("sparse", nnz=1, n_rows=1, n_voxels=1, n_timepoints=3)


def test_crossover_kind_follows_the_sampled_path(monkeypatch):
    from recouple.engine.backend import get_backend

    assert ev._sampled_kind(get_backend("numpy")) == "host"
    monkeypatch.setenv("RECOUPLE_JIT", "0")
    assert ev._sampled_kind(get_backend("numpy")) == "cpu"


def test_fc_rates_measure_both_paths_once():
    rates = ev.fc_rates("numpy", 9)
    assert all(r > 0 for r in rates) and ev.fc_rates("numpy", 9) == rates


def test_dense_fc_rows_that_are_a_block_of_the_series():
    # z_rows = z_all[:C] and a block of C columns starting at 0: z_rows @ block.T is A @ A.T, which NumPy
    # hands to syrk, the whole product to gemm; the values must still be the whole product's
    z, cols = _random_chunk(v=2000, t=300, c=500, k=64, seed=4)
    zr = z[:500]
    ref = _whole_rows(zr, z, cols)
    assert kv.dense_fc(zr, z, cols, block_cols=500).tobytes() == ref.tobytes()
