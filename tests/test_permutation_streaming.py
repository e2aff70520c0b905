"""How permutation nulls are run: the fused tiled NumPy kernel, host worker
threads, and the device-resident JAX loop (no implicit transfers, one
compilation per analysis, padding that never counts)."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

import recouple as rc
from recouple.engine import streaming
from recouple.engine.backend import device_put as put
from recouple.kernels import glm as kglm
from recouple.permutation import Resampling
from recouple.permutation.design import prepare


def _problem(rng, *, n=23, v=301, q=2, rank=1, mode="permute", k=53):
    if mode == "signflip" and q == 0:
        design, c = np.ones((n, 1)), np.ones((1, 1))
    else:
        design = np.column_stack([rng.normal(size=(n, rank)), np.ones(n), rng.normal(size=(n, max(q - 1, 0)))])
        c = np.zeros((rank, design.shape[1]))
        c[np.arange(rank), np.arange(rank)] = 1.0
    y = rng.normal(size=(n, v)) + 0.3 * design[:, :1]
    part, scaled, _ = prepare(y, design, c)
    if mode == "permute":
        res = np.argsort(rc.permutation.permutation_matrix(n, n_perm=k, seed=2), axis=1)
    else:
        res = rc.permutation.sign_flip_matrix(n, n_perm=k, seed=2)
    return part, scaled, res


CASES = [
    {"q": 2, "rank": 1, "mode": "permute", "alternative": "two-sided"},
    {"q": 0, "rank": 1, "mode": "signflip", "alternative": "two-sided"},
    {"q": 0, "rank": 1, "mode": "signflip", "alternative": "less"},
    {"q": 3, "rank": 1, "mode": "signflip", "alternative": "greater"},
    {"q": 2, "rank": 2, "mode": "permute", "alternative": "two-sided"},
    {"q": 0, "rank": 3, "mode": "permute", "alternative": "two-sided"},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c.values())))
@pytest.mark.parametrize("tile, sub", [(None, None), (64, 8), (96, 200), (1000, 16)])
def test_fused_numpy_kernel_equals_reference(rng, case, tile, sub):
    case = dict(case)
    alternative = case.pop("alternative")
    part, scaled, res = _problem(rng, **case)
    g = kglm.monotone_statistic(scaled, part.basis_x, part.basis_z, res, mode=case["mode"])
    score = np.asarray(kglm.tail_score(g, alternative=alternative, rank=part.rank))
    thr = np.quantile(score, 0.9, axis=0)
    basis = kglm.stacked_basis(part.basis_x, part.basis_z)
    got = kglm.reduce_block_numpy(scaled, basis, res, thr, rank=part.rank, mode=case["mode"],
                                  alternative=alternative, tile=tile, sub_batch=sub)
    # counts exact; maxima from GEMMs of other shapes: equal up to the last bits
    np.testing.assert_array_equal(got["counts"], (score >= thr).sum(axis=0))
    np.testing.assert_allclose(got["max_score"], score.max(axis=1), rtol=1e-13, atol=1e-15)
    ref = kglm.permutation_batch(scaled, part.basis_x, part.basis_z, res, thr, mode=case["mode"],
                                 alternative=alternative)
    np.testing.assert_array_equal(got["counts"], ref["counts"])


def test_fused_kernel_on_threads_equals_serial(rng):
    part, scaled, res = _problem(rng, v=1000, k=40)
    basis = kglm.stacked_basis(part.basis_x, part.basis_z)
    thr = np.full(scaled.shape[1], 0.3)
    serial = kglm.reduce_block_numpy(scaled, basis, res, thr, rank=1, tile=64, sub_batch=16)
    with streaming.host_workers(threads=3) as (run, workers):
        assert workers == 3
        threaded = kglm.reduce_block_numpy(scaled, basis, res, thr, rank=1, tile=64, sub_batch=16,
                                           workers=workers, run=run)
    np.testing.assert_array_equal(threaded["counts"], serial["counts"])
    np.testing.assert_array_equal(threaded["max_score"], serial["max_score"])


def test_host_workers_pin_blas_to_one_thread_and_restore():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with streaming.host_workers(threads=2) as (run, workers):
        assert workers == 2
        assert run(lambda x: x * 2, [1, 2, 3]) == [2, 4, 6]
        assert all(t == 1 for t in blas_threads())
    assert blas_threads() == before
    seen = []
    worker = threading.Thread(target=lambda: seen.append(streaming.host_workers(threads=4).__enter__()[1]))
    worker.start()
    worker.join()
    assert seen == [1]  # inside a Dask task (off the main thread) the scheduler owns the cores


def test_fused_host_path_equals_jax_device_loop(rng):
    y = rng.normal(size=(14, 40)) + 0.4
    sig = rc.permutation.sign_flip_matrix(14, n_perm=61, seed=3)
    for alternative in ("two-sided", "greater", "less"):
        a = rc.permutation.one_sample(y, alternative=alternative, resampling=Resampling(signs=sig))
        b = rc.permutation.one_sample(y, alternative=alternative,
                                      resampling=Resampling(signs=sig, backend="jax", batch_size=9))
        np.testing.assert_array_equal(a.pvalue, b.pvalue)
        np.testing.assert_array_equal(a.pvalue_fwer, b.pvalue_fwer)
        np.testing.assert_allclose(a.null_max, b.null_max, rtol=1e-12)


def test_device_loop_padding_never_counts():
    pytest.importorskip("jax")
    rc.get_backend("jax")
    # 10 resamples in blocks of 4: the last block has 2 real rows and 2 of padding
    data = np.eye(3)[:, :2].copy()
    basis = np.array([[1.0, 0.0, 0.0]])
    signs = np.ones((10, 3))
    step_calls = []

    def step(data, basis, observed, batch, valid, counts, *, rank, mode, alternative):
        step_calls.append(batch.shape)
        return kglm.streamed_batch(data, basis, batch, valid, observed, counts, rank=rank, mode=mode,
                                   alternative=alternative)

    acc = streaming.stream_on_device(
        step, signs, batch_size=4, backend="jax",
        args=(put(data, "jax"), put(basis, "jax"), put(np.array([0.5, 0.5]), "jax")),
        counts=put(np.zeros(2), "jax"), pad_row=np.ones(3),
        static={"rank": 1, "mode": "signflip", "alternative": "two-sided"}, progress=False,
    )
    assert step_calls == [(4, 3)]  # traced once: every block has one shape
    # element 0 scores 1 >= 0.5 in each of the 10 real resamples, never in padding
    np.testing.assert_array_equal(acc.counts["counts"], [10.0, 0.0])
    np.testing.assert_array_equal(acc.maxima["max_score"], np.ones(10))


def test_device_loop_refuses_implicit_transfers():
    pytest.importorskip("jax")

    def step(data, batch, valid, counts):
        return counts + batch.sum() + data.sum(), batch[:, 0]

    with pytest.raises(Exception, match="(?i)disallowed"):
        # a host array among the step's arguments is an implicit transfer
        streaming.stream_on_device(step, np.ones((5, 2)), batch_size=2, backend="jax", args=(np.ones(2),),
                                   counts=put(np.zeros(1), "jax"), pad_row=np.ones(2), progress=False)
    acc = streaming.stream_on_device(step, np.ones((5, 2)), batch_size=2, backend="jax",
                                     args=(put(np.ones(2), "jax"),), counts=put(np.zeros(1), "jax"),
                                     pad_row=np.ones(2), progress=False)
    assert acc.maxima["max_score"].shape == (5,)


@pytest.fixture
def compilations():
    jax = pytest.importorskip("jax")
    rc.get_backend("jax")
    events = []

    def listener(name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield events
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("test", ["signflip", "glm", "glm_F"])
def test_jax_analysis_is_device_resident(rng, compilations, test):
    """The whole loop runs under transfer_guard("disallow") (device_loop_guard) with
    a padded last block, and an analysis compiles at most twice (the observed
    statistic and the step), whatever the number of blocks."""
    jax = pytest.importorskip("jax")
    n, v = 17, 37 + len(test)  # shapes no other test compiles
    y = rng.normal(size=(n, v)) + 0.3
    if test == "signflip":
        run = lambda r: rc.permutation.one_sample(y, resampling=r)
        k = 47
    else:
        m = np.column_stack([rng.normal(size=n), rng.normal(size=n), np.ones(n), rng.normal(size=n)])
        c = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]) if test == "glm_F" else np.array([1.0, 0, 0, 0])
        run = lambda r: rc.permutation.glm(y, m, c, test="F" if test == "glm_F" else "t", resampling=r)
        k = 45
    assert k % 8 != 0
    compilations.clear()
    with jax.transfer_guard("allow"):
        res = run(Resampling(n_perm=k, seed=4, backend="jax", batch_size=8))
    assert 1 <= len(compilations) <= 2, compilations
    compilations.clear()
    again = run(Resampling(n_perm=k, seed=4, backend="jax", batch_size=8))
    assert len(compilations) == 0  # a second analysis of the same shapes reuses both
    ref = run(Resampling(n_perm=k, seed=4))
    np.testing.assert_array_equal(res.pvalue, ref.pvalue)
    np.testing.assert_array_equal(res.pvalue_fwer, ref.pvalue_fwer)
    np.testing.assert_array_equal(again.pvalue, ref.pvalue)
    np.testing.assert_allclose(res.statistic, ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(res.null_max, ref.null_max, rtol=1e-12)


def test_jax_null_maps_padded_and_equal(rng, compilations):
    y = rng.normal(size=(13, 29)) + 0.2
    a = rc.permutation.one_sample(y, resampling=Resampling(n_perm=21, seed=1, keep_null=True, backend="jax",
                                                           batch_size=6))
    b = rc.permutation.one_sample(y, resampling=Resampling(n_perm=21, seed=1, keep_null=True))
    np.testing.assert_allclose(a.null, b.null, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a.pvalue, b.pvalue)
    assert len(compilations) <= 2


def test_plan_device_batch_keeps_cpu_products_in_cache():
    pytest.importorskip("jax")
    per_product = 8.0 * 5 * 50_000
    bs = streaming.plan_device_batch(5000, 4 * per_product, per_product, backend="jax")
    assert bs == max(8, int(streaming.CPU_DEVICE_PRODUCT_BYTES // per_product))
    assert streaming.plan_device_batch(5000, 1.0, per_product, backend="jax", batch_size=77) == 77
    assert streaming.plan_device_batch(5, 1.0, 1.0, backend="jax") == 5


def test_plan_device_tiles():
    pytest.importorskip("jax")
    bs, tile = streaming.plan_device_tiles(10_000, 79_800, 1, 1.0, backend="jax")
    assert bs == streaming.CPU_DEVICE_TILED_BATCH
    assert tile & (tile - 1) == 0 and tile >= 128  # a power of two
    assert 8 * bs * tile <= streaming.CPU_DEVICE_TILE_BYTES < 2 * 8 * bs * tile
    # more rows per resample: a narrower tile; few elements: one tile of all of them
    assert streaming.plan_device_tiles(10_000, 79_800, 4, 1.0, backend="jax")[1] == tile // 4
    assert streaming.plan_device_tiles(10_000, 50, 4, 1.0, backend="jax")[1] == 50
    assert streaming.plan_device_tiles(30, 79_800, 1, 1.0, backend="jax", batch_size=7)[0] == 7
    assert streaming.plan_device_tiles(5, 79_800, 1, 1.0, backend="jax")[0] == 5
    # a small memory budget bounds the block (2 MB at 64 kB a resample: 32 resamples)
    assert streaming.plan_device_tiles(10_000, 79_800, 1, 2**16, backend="jax", memory_limit=2**21)[0] == 32


@pytest.mark.parametrize("v, tile", [(10, 4), (12, 4), (3, 8), (7, 1)])
def test_tile_columns_round_trip(v, tile):
    x = np.arange(2 * 3 * v, dtype=float).reshape(2, 3, v)
    t = streaming.tile_columns(x, tile)
    n_tiles = -(-v // tile)
    assert t.shape == (n_tiles, 2, 3, tile)
    np.testing.assert_array_equal(streaming.untile_columns(t, v), x)
    # the last tile is filled with copies of the last column (no new values for a maximum)
    np.testing.assert_array_equal(t[-1][..., (v - 1) % tile:], np.repeat(x[..., -1:], tile - (v - 1) % tile, -1))


def test_map_leading_numpy_and_jax_agree():
    pytest.importorskip("jax")
    xs = (np.arange(12.0).reshape(3, 4), np.ones((3, 2)))
    fn = lambda p: (p[0].sum() + p[1][0], p[0] * 2.0)
    a = rc.get_backend("numpy").map_leading(fn, xs)
    be = rc.get_backend("jax")
    b = be.map_leading(fn, tuple(put(x, "jax") for x in xs))
    for u, w in zip(a, b):
        np.testing.assert_array_equal(u, np.asarray(w))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_element_tiles_of_the_jax_loop_equal_numpy(rng, case, monkeypatch, compilations):
    """The JAX step reduces its product one element tile at a time; tiles
    that do not divide V (the last one filled with the last column) give
    NumPy's counts, maxima and p-values for every alternative."""
    monkeypatch.setattr(streaming, "CPU_DEVICE_TILE_BYTES", 8 * 8 * 16 * 8)  # 8 resamples x 16 rows x 128
    n, v = 19, 301
    y = rng.normal(size=(n, v)) + 0.25
    y[:, 5] = -4.0 - rng.random(n)  # an element far in the lower tail, so "less" maxima come from one tile
    if case["mode"] == "signflip" and case["q"] == 0:
        run = lambda r: rc.permutation.one_sample(y, alternative=case["alternative"], resampling=r)
    else:
        rank, q = case["rank"], case["q"]
        m = np.column_stack([rng.normal(size=(n, rank)), np.ones(n), rng.normal(size=(n, max(q - 1, 0)))])
        c = np.zeros((rank, m.shape[1]))
        c[np.arange(rank), np.arange(rank)] = 1.0
        test = "F" if rank > 1 else "t"
        kind = "signflip" if case["mode"] == "signflip" else "permute"
        run = lambda r: rc.permutation.glm(y, m, c if rank > 1 else c[0], test=test,
                                           alternative=case["alternative"] if rank == 1 else "two-sided",
                                           resampling=dataclasses.replace(r, kind=kind))
    ref = run(Resampling(n_perm=37, seed=6))
    res = run(Resampling(n_perm=37, seed=6, backend="jax", batch_size=8))
    assert len(compilations) <= 2
    np.testing.assert_array_equal(res.pvalue, ref.pvalue)
    np.testing.assert_array_equal(res.pvalue_fwer, ref.pvalue_fwer)
    np.testing.assert_allclose(res.null_max, ref.null_max, rtol=1e-12)


def test_null_basis_drops_the_constant_for_permutations_only(rng):
    from recouple.permutation.streamed import null_basis

    part, scaled, perms = _problem(rng, n=19, v=60, q=3, k=40)
    full = kglm.stacked_basis(part.basis_x, part.basis_z)
    reduced = null_basis(part, "permute")
    assert reduced.shape == (full.shape[0] - 1, 19)
    np.testing.assert_allclose(reduced @ reduced.T, np.eye(reduced.shape[0]), atol=1e-12)
    np.testing.assert_allclose(reduced @ np.ones(19), 0.0, atol=1e-12)
    np.testing.assert_array_equal(null_basis(part, "signflip"), full)
    # same g for every permutation (the dropped row projects to zero)
    g_full = kglm.null_batch(scaled, full, perms, rank=1, mode="permute")
    g_red = kglm.null_batch(scaled, reduced, perms, rank=1, mode="permute")
    np.testing.assert_allclose(g_red, g_full, rtol=1e-12, atol=1e-13)
    # no intercept in the nuisance space: nothing to drop
    n = 19
    design = np.column_stack([rng.normal(size=n), rng.normal(size=(n, 2))])
    part2, _, _ = prepare(rng.normal(size=(n, 5)), design, np.array([[1.0, 0, 0]]))
    assert null_basis(part2, "permute").shape == (3, n)
