"""Communication predictors against netneurotools / bctpy / scipy, across backends, on bad input."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import scipy.linalg

import recouple as rc
from recouple.engine.dispatch import kernel_loop
from recouple.exceptions import InputError, ShapeError
from recouple.host import graph as hg
from recouple.kernels import graph as gk

from conftest import load_hcp


def random_graph(rng, n=24, density=0.35, isolated=(3,), components=False):
    w = rng.random((n, n))
    w = np.triu(w * (rng.random((n, n)) < density), 1)
    w = w + w.T
    if components:  # two blocks that never touch
        h = n // 2
        w[:h, h:] = 0
        w[h:, :h] = 0
    for i in isolated:
        w[i, :] = 0
        w[:, i] = 0
    return w


def same(a, b, tol=1e-8):
    a, b = np.asarray(a), np.asarray(b)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.array_equal(np.isposinf(a), np.isposinf(b))
    fin = np.isfinite(a)
    np.testing.assert_allclose(a[fin], b[fin], rtol=tol, atol=tol * max(1.0, np.abs(b[fin]).max()))


@pytest.mark.peer
@pytest.mark.parametrize("components", [False, True])
def test_shortest_paths_and_search_information_match_netneurotools(rng, components):
    nm = pytest.importorskip("netneurotools.metrics")
    w = random_graph(rng, components=components)
    res = rc.graph.shortest_paths(w, transform="neglog")
    with np.errstate(divide="ignore"):
        length = -np.log(w / (w.max() + 1))
        spl, pred = nm.distance_wei_floyd(length)
        si = nm.search_information(w, length)
    same(res.length, spl)
    assert np.array_equal(res.predecessor, np.where(pred < 0, -1, pred))
    same(rc.graph.search_information(w), si)


@pytest.mark.peer
@pytest.mark.parametrize("transform,bct_transform", [("neglog_raw", "log"), ("inv", "inv")])
def test_shortest_paths_match_bctpy(rng, transform, bct_transform):
    bct = pytest.importorskip("bct")
    w = random_graph(rng)
    res = rc.graph.shortest_paths(w, transform=transform)
    with np.errstate(divide="ignore"):
        spl, hops, _ = bct.distance_wei_floyd(w, transform=bct_transform)
    same(res.length, spl)
    reach = np.isfinite(res.length)
    np.testing.assert_array_equal(res.hops[reach], hops[reach])


@pytest.mark.peer
def test_hop_count_and_binary_search_information(rng):
    bct = pytest.importorskip("bct")
    nm = pytest.importorskip("netneurotools.metrics")
    a = (random_graph(rng) > 0).astype(float)
    same(rc.graph.path_length(a, transform="hops"), bct.distance_bin(a))
    with np.errstate(divide="ignore"):
        ref = nm.search_information(a, np.where(a > 0, 1.0, 0.0))
    # ties between equally short binary paths are broken as scipy's Floyd-Warshall does
    same(rc.graph.search_information(a, transform="hops"), ref)


@pytest.mark.peer
def test_communicability_matches_netneurotools(rng):
    nm = pytest.importorskip("netneurotools.metrics")
    w = random_graph(rng, isolated=(3,))
    keep = np.r_[0:3, 4:w.shape[0]]
    cw = rc.graph.communicability(w)
    same(cw[np.ix_(keep, keep)], nm.communicability_wei(w[np.ix_(keep, keep)]))
    assert np.abs(cw[3]).max() < 1e-12  # an unconnected node communicates with nobody
    a = (w > 0).astype(float)
    same(rc.graph.communicability(a, weighted=False), scipy.linalg.expm(a))
    same(rc.graph.communicability(a, weighted=False, normalize=True), nm.communicability_bin(a, normalize=True))


@pytest.mark.peer
def test_navigation_matches_netneurotools(rng):
    nm = pytest.importorskip("netneurotools.metrics")
    w = random_graph(rng, components=True)
    coords = rng.normal(size=(w.shape[0], 3)) * 30
    dist = rc.graph.euclidean_distance(coords)
    length, hops = rc.graph.navigation(w, coords)
    _, _, ref_len, ref_hop, _ = nm.navigation_wu(dist, w)
    same(length, ref_len)
    same(hops, ref_hop)
    assert np.isinf(length).any()
    eff = rc.graph.navigation_efficiency(w, coords, symmetric=False)
    with np.errstate(divide="ignore"):
        ref_eff = np.where(np.isfinite(ref_len) & (ref_len > 0), 1 / ref_len, 0.0)
    same(eff, ref_eff)


@pytest.mark.peer
def test_diffusion_efficiency_per_component_matches_netneurotools(rng):
    nm = pytest.importorskip("netneurotools.metrics")
    n = 24
    w = rng.random((n, n))
    w = np.triu(w * (rng.random((n, n)) < 0.6), 1)
    w = w + w.T
    h = n // 2
    w[:h, h:] = 0
    w[h:, :h] = 0
    w[5, :] = 0
    w[:, 5] = 0
    mfpt = rc.graph.mean_first_passage_time(w)
    eff = rc.graph.diffusion_efficiency(w)
    for block in (np.r_[0:5, 6:h], np.arange(h, n)):
        sub = np.ix_(block, block)
        same(mfpt[sub], nm.mean_first_passage_time(w[sub]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            same(eff[sub], nm.diffusion_efficiency(w[sub])[1])
    assert np.isinf(mfpt[0, h]) and eff[0, h] == 0 and np.all(eff[5] == 0)


def _hops_by_walking(pred):
    """Edges on each predecessor path, walked one node at a time."""
    n = pred.shape[-1]
    hops = np.full((n, n), np.inf)
    for i in range(n):
        for j in range(n):
            if i == j:
                hops[i, j] = 0
                continue
            k, count = j, 0
            while k != i and k >= 0:
                k, count = pred[i, k], count + 1
            if k == i:
                hops[i, j] = count
    return hops


@pytest.mark.parametrize("routes", ["portable", "numpy"])
@pytest.mark.parametrize("transform", ["neglog", "hops"])
def test_floyd_warshall_track_options(rng, transform, routes):
    from scipy.sparse.csgraph import floyd_warshall as scipy_fw

    kw = rc.graph.kernel_routes("numpy") if routes == "numpy" else {}
    w = np.stack([random_graph(rng, components=True), random_graph(rng, n=24, density=0.2)])
    length = gk.weight_to_length(w, transform=transform)
    d_all, h_all, p_all = gk.floyd_warshall(length, track="all", **kw)
    d_len, h_len, p_len = gk.floyd_warshall(length, track="length", **kw)
    d_pred, h_pred, p_pred = gk.floyd_warshall(length, track="predecessor", **kw)
    assert h_len is None and p_len is None and h_pred is None
    assert np.array_equal(d_len, d_all) and np.array_equal(d_pred, d_all)
    assert np.array_equal(p_pred, p_all)
    np.testing.assert_array_equal(gk.path_lengths(w, transform=transform, **kw), d_all)
    for s in range(2):
        ref_d, ref_p = scipy_fw(np.where(np.isfinite(length[s]), length[s], 0), return_predecessors=True)
        same(d_all[s], ref_d, tol=1e-12)
        assert np.array_equal(p_all[s], np.where(ref_p < 0, -1, ref_p))
        np.testing.assert_array_equal(h_all[s], _hops_by_walking(p_all[s]))
    with pytest.raises(ValueError, match="track"):
        gk.floyd_warshall(length, track="hops")


@pytest.mark.parametrize("transform", ["neglog", "hops", "inv"])
def test_compiled_floyd_warshall_equals_pivot_loop(rng, transform, monkeypatch):
    # NumPy runs Floyd-Warshall compiled: the host loop (numba) or, with
    # RECOUPLE_JIT=0, SciPy's routine one matrix at a time; both must keep
    # exactly the lengths and predecessors of the batched pivot steps, ties
    # (hop counts) and unreachable pairs included
    w = np.stack([random_graph(rng, n=30, components=True), random_graph(rng, n=30, density=0.15)])
    length = gk.weight_to_length(w, transform=transform)
    assert hg._floyd_warshall_compiled(length, True) is not None
    runs = {}
    for name, jit in (("host loop", "1"), ("scipy", "0")):
        monkeypatch.setenv("RECOUPLE_JIT", jit)
        runs[name] = [gk.floyd_warshall(length, track=t, pivots=hg.floyd_warshall_pivots)
                      for t in ("length", "predecessor")]
    monkeypatch.setattr(hg, "_floyd_warshall_compiled", lambda d, p: None)
    runs["numpy buffers"] = [gk.floyd_warshall(length, track=t, pivots=hg.floyd_warshall_pivots)
                             for t in ("length", "predecessor")]
    slow = [gk.floyd_warshall(length, track=t) for t in ("length", "predecessor")]  # portable pivot steps
    for fast in runs.values():
        np.testing.assert_array_equal(fast[0][0], slow[0][0])
        np.testing.assert_array_equal(fast[1][0], slow[1][0])
        np.testing.assert_array_equal(fast[1][2], slow[1][2])


@pytest.mark.parametrize("jit", ["1", "0"])
def test_zero_length_edges_count_as_edges(rng, monkeypatch, jit):
    # SciPy reads zeros in a dense matrix as absent edges (so without the host
    # loop they take the pivot loop); lengths of exactly 0 (w == 1 under
    # -log w) must still count as edges
    monkeypatch.setenv("RECOUPLE_JIT", jit)
    w = random_graph(rng, n=12, density=0.5, isolated=())
    w = w / w.max()
    i, j = np.argwhere(np.triu(w, 1) > 0)[0]
    w[i, j] = w[j, i] = 1.0
    length = gk.weight_to_length(w, transform="neglog_raw")
    assert length[i, j] == 0 and hg._floyd_warshall_compiled(length, True) is None
    d, _, p = gk.floyd_warshall(length, track="predecessor", pivots=hg.floyd_warshall_pivots)
    assert d[i, j] == 0 and p[i, j] == i


def test_search_information_reuses_paths(rng):
    w = np.stack([random_graph(rng) for _ in range(3)])
    for transform in ("neglog", "inv"):
        paths = rc.graph.shortest_paths(w, transform=transform)
        np.testing.assert_array_equal(rc.graph.search_information(w, paths=paths, batch_size=2),
                                      rc.graph.search_information(w, transform=transform))
    np.testing.assert_array_equal(rc.graph.path_length(w, transform="inv", batch_size=2), paths.length)
    with pytest.raises(InputError, match="ShortestPaths"):
        rc.graph.search_information(w, paths=paths.predecessor)
    with pytest.raises(InputError, match="transform must match"):
        rc.graph.search_information(w, paths=paths, transform="neglog")
    with pytest.raises(ShapeError, match="predecessor"):
        rc.graph.search_information(w[:2], paths=paths)


def test_euclidean_distance_matches_scipy(rng):
    from scipy.spatial.distance import cdist

    c = rng.normal(size=(2, 15, 3))
    d = rc.graph.euclidean_distance(c)
    np.testing.assert_allclose(d[1], cdist(c[1], c[1]), atol=1e-12)


def test_batched_equals_one_by_one(rng):
    w = np.stack([random_graph(rng) for _ in range(3)])
    coords = rng.normal(size=(24, 3))
    for fn in (rc.graph.path_length, rc.graph.search_information, rc.graph.communicability,
               rc.graph.diffusion_efficiency, lambda x, **k: rc.graph.navigation(x, coords, **k)[0]):
        whole = fn(w, batch_size=2)
        for s in range(3):
            same(whole[s], fn(w[s]), tol=1e-12)


def test_kernels_agree_across_backends(xp, rng):
    w = np.stack([random_graph(rng, n=16) for _ in range(2)])
    coords = rng.normal(size=(16, 3))
    dist = gk.euclidean_distance(coords)
    loop = kernel_loop("jax") if xp.name == "jax" else None

    def all_predictors(w, dist, loop=None):
        d, h, p = gk.shortest_paths(w, transform="neglog", loop=loop)
        d_len = gk.path_lengths(w, transform="hops", loop=loop)
        d_pred, _, p_pred = gk.shortest_paths(w, transform="inv", track="predecessor", loop=loop)
        return (d, h, d_len, d_pred, gk.search_information(w, p_pred), gk.communicability(w),
                gk.communicability(w, weighted=False, normalize=True), gk.navigation(w, dist, loop=loop)[0],
                gk.diffusion_efficiency(w))

    ref = all_predictors(w, dist)
    all_predictors = functools.partial(all_predictors, loop=loop)
    out = xp.jit(all_predictors)(xp.asarray(w), xp.asarray(dist))
    for a, b in zip(out, ref):
        same(xp.to_numpy(a), b, tol=1e-10)


@pytest.mark.realdata
@pytest.mark.peer
@pytest.mark.parametrize("parc", ["ctx", "ctx_schaefer_100"])
def test_predictors_on_hcp_match_peers(shared_data, parc):
    nm = pytest.importorskip("netneurotools.metrics")
    bct = pytest.importorskip("bct")
    sc, _, _ = load_hcp(shared_data, parc)
    w = np.clip(sc, 0, None)  # a few log-transformed Schaefer weights are negative
    with np.errstate(divide="ignore"):
        length = -np.log(w / (w.max() + 1))
        spl, _ = nm.distance_wei_floyd(length)
        si = nm.search_information(w, length)
    same(rc.graph.path_length(w), spl)
    same(rc.graph.search_information(w), si)
    a = (w > 0).astype(float)
    same(rc.graph.path_length(a, transform="hops"), bct.distance_bin(a))
    same(rc.graph.communicability(w), nm.communicability_wei(w))
    same(rc.graph.communicability(a, weighted=False), scipy.linalg.expm(a))
    same(rc.graph.mean_first_passage_time(w), nm.mean_first_passage_time(w))


def test_bad_input():
    w = np.ones((4, 4)) - np.eye(4)
    with pytest.raises(ShapeError, match="square"):
        rc.graph.path_length(np.ones((3, 4)))
    with pytest.raises(InputError, match="finite"):
        rc.graph.path_length(np.where(np.eye(4) > 0, np.nan, w))
    asym = w.copy()
    asym[0, 1] = 5
    with pytest.raises(InputError, match="symmetric"):
        rc.graph.communicability(asym)
    with pytest.raises(InputError, match="non-negative"):
        rc.graph.search_information(-w)
    with pytest.raises(InputError, match="transform"):
        rc.graph.path_length(w, transform="log")
    with pytest.raises(InputError, match="<= 1"):
        rc.graph.path_length(w * 2, transform="neglog_raw")
    with pytest.raises(ShapeError, match="coords"):
        rc.graph.navigation(w, np.zeros((3, 3)))
    with pytest.raises(InputError, match="normalize"):
        rc.graph.communicability(w, normalize=True)
