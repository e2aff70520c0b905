"""Compiled host loops (numba) against the NumPy code they replace and
against independent references: identical arrays, any thread count."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree, distance_matrix

import recouple as rc
from recouple import nulls
from recouple.exceptions import InputError
from recouple.host import jit as host

pytest.importorskip("numba")


def _sphere(rng, n, radius=100.0):
    p = rng.standard_normal((n, 3))
    return radius * p / np.linalg.norm(p, axis=1, keepdims=True)


def _both(monkeypatch, fn):
    """fn() with the compiled loops, then with the NumPy code (fresh grid indices)."""
    out = []
    for flag in ("1", "0"):
        monkeypatch.setenv("RECOUPLE_JIT", flag)
        nulls._INDEX_CACHE.clear()
        assert host.enabled() is (flag == "1")
        out.append(fn())
    nulls._INDEX_CACHE.clear()
    return out


def test_switch_from_environment(monkeypatch):
    monkeypatch.delenv("RECOUPLE_JIT", raising=False)
    assert host.enabled()
    for bad in ("yes", "2", "off"):
        monkeypatch.setenv("RECOUPLE_JIT", bad)
        with pytest.raises(InputError, match="RECOUPLE_JIT must be 0 or 1"):
            host.enabled()


def test_euclidean_blocks_bitwise_scipy(rng):
    a = rng.standard_normal((37, 3)) * 50
    b = rng.standard_normal((5, 23, 3)) * 50 + 3
    out = host.euclidean_blocks(a.T, np.swapaxes(b, 1, 2))
    assert out.shape == (5, 37, 23)
    for k in range(5):
        np.testing.assert_array_equal(out[k], distance_matrix(a, b[k]))


@pytest.mark.parametrize("n, hemi_split", [(3000, False), (2500, True), (150, True)])  # 150: brute force without the loops
def test_vertex_spins_identical_to_numpy_and_kdtree(monkeypatch, rng, n, hemi_split):
    pts = _sphere(rng, n)
    # one block per hemisphere, or hemispheres interleaved (a gather, not an offset)
    hemi = (pts[:, 0] > 0).astype(int) if hemi_split else np.zeros(n, int)
    R = rc.nulls.rotations(6, seed=5)
    jit, ref = _both(monkeypatch, lambda: rc.nulls.spin_permutations(pts, hemi=hemi, rotations=R))
    np.testing.assert_array_equal(jit, ref)
    for h in np.unique(hemi):
        sel = np.flatnonzero(hemi == h)
        kd = np.stack([cKDTree(pts[sel] @ r).query(pts[sel])[1] for r in R[:, h]])
        np.testing.assert_array_equal(jit[:, sel], sel[kd])


def test_vertex_spins_ties_go_to_the_lowest_index(monkeypatch, rng):
    # every point twice: each query is equally near both copies, the lower
    # index must win on both paths (as in the kernel and the NumPy code)
    base = _sphere(rng, 700)
    pts = np.concatenate([base, base])
    R = rc.nulls.rotations(3, seed=1)[:, 0]
    jit, ref = _both(monkeypatch, lambda: rc.nulls.spin_permutations(pts, rotations=R))
    np.testing.assert_array_equal(jit, ref)
    assert jit.max() < len(base)


@pytest.mark.realdata
def test_vertex_spins_fsaverage5_identical(monkeypatch, shared_data):
    from recouple.io import surfaces

    s = shared_data / "surfaces"
    pts = np.vstack([surfaces.load_sphere(s / "fsa5_sphere_lh.gii"), surfaces.load_sphere(s / "fsa5_sphere_rh.gii")])
    hemi = np.repeat([0, 1], len(pts) // 2)
    jit, ref = _both(monkeypatch, lambda: rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=20, seed=7))
    np.testing.assert_array_equal(jit, ref)


@pytest.mark.parametrize("method", ["vasa", "hungarian"])
def test_parcel_spins_identical_to_numpy(monkeypatch, rng, method):
    pts = _sphere(rng, 120)
    hemi = np.repeat([0, 1], 60)
    jit, ref = _both(monkeypatch, lambda: rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=12, seed=2,
                                                                     method=method))
    np.testing.assert_array_equal(jit, ref)


@pytest.mark.parametrize("threads", ["1", "3"])
def test_same_for_any_thread_count(monkeypatch, rng, threads):
    pts = _sphere(rng, 2000)
    monkeypatch.setenv("RECOUPLE_NUM_THREADS", "2")
    ref = rc.nulls.spin_permutations(pts, n_perm=9, seed=4)
    monkeypatch.setenv("RECOUPLE_NUM_THREADS", threads)
    np.testing.assert_array_equal(rc.nulls.spin_permutations(pts, n_perm=9, seed=4), ref)
    for b in (1, 4):
        np.testing.assert_array_equal(rc.nulls.spin_permutations(pts, n_perm=9, seed=4, batch_size=b), ref)


def test_assignment_is_scipys_including_ties(rng):
    from scipy.optimize import linear_sum_assignment

    mats = []
    for t in range(400):
        n = int(rng.integers(1, 30))
        m = rng.random((n, n))
        if t % 4 == 1:
            m = np.round(m * 3)  # many equal costs: several optimal assignments
        elif t % 4 == 2:
            m = np.round(m * 20) - 7.0  # negative entries (SciPy shifts by the minimum)
        elif t % 4 == 3 and t % 8 == 3:
            m = np.full((n, n), 2.5)  # every assignment optimal
        mats.append(m)
    for m in mats:
        np.testing.assert_array_equal(host.assignment_blocks(m[None])[0], linear_sum_assignment(m)[1])
    # a block of matrices in one call; the input is not modified
    block = rng.random((6, 17, 17))
    keep = block.copy()
    out = host.assignment_blocks(block)
    np.testing.assert_array_equal(block, keep)
    np.testing.assert_array_equal(out, np.stack([linear_sum_assignment(b)[1] for b in block]))


def test_assignment_on_spin_costs(rng):
    from scipy.optimize import linear_sum_assignment

    pts = _sphere(rng, 150)
    R = rc.nulls.rotations(40, seed=8)[:, 0]
    D = np.stack([distance_matrix(pts, pts @ r) for r in R])
    np.testing.assert_array_equal(host.assignment_blocks(D), np.stack([linear_sum_assignment(d)[1] for d in D]))


def _smooth_maps(rng, shape, b=3):
    from scipy import ndimage

    maps = ndimage.gaussian_filter(rng.standard_normal((b,) + shape), sigma=(0,) + (1.5,) * len(shape))
    return maps / maps.std() * 2


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_tfce_volumes_same_with_loops_on_and_off(monkeypatch, rng, connectivity, alternative):
    from recouple.host import labels as clusters

    maps = _smooth_maps(rng, (14, 12, 10))
    maps[0, 3, 4, 5] = np.nan
    maps[2] = 0.0  # nothing above any height
    st = clusters.volume_structure(connectivity)
    for kw in ({}, {"multiply_dh": False, "n_steps": 37}, {"dh": 0.1, "height": 1.5, "extent": 1.0}):
        on, off = _both(monkeypatch, lambda: clusters.tfce(maps, structure=st, alternative=alternative, **kw))
        np.testing.assert_allclose(on, off, rtol=1e-10, atol=1e-10)
        assert np.all(on[2] == 0)


def test_tfce_2d_and_graph_same_with_loops_on_and_off(monkeypatch, rng):
    from scipy import sparse

    from recouple.host import labels as clusters

    maps = _smooth_maps(rng, (20, 17))
    for conn in (4, 8):
        st = clusters.volume_structure(conn, ndim=2)
        on, off = _both(monkeypatch, lambda: clusters.tfce(maps, structure=st))
        np.testing.assert_allclose(on, off, rtol=1e-10, atol=1e-10)
    # a random sparse graph, edges given in one direction only, with node weights
    v = 300
    a = sparse.random(v, v, density=0.01, random_state=3, format="coo")
    a = sparse.coo_matrix((np.ones(a.nnz), (a.row, a.col)), shape=(v, v))
    x = rng.standard_normal((4, v)) * 2
    w = rng.uniform(0.5, 2.0, v)
    on, off = _both(monkeypatch, lambda: clusters.tfce(x, adjacency=a, weights=w, extent=1.0))
    np.testing.assert_allclose(on, off, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_floyd_warshall_same_with_loops_on_and_off(monkeypatch, rng, dtype):
    from recouple.host import graph as hg
    from recouple.kernels import graph as gk

    n = 90
    w = rng.random((3, n, n))
    w = np.triu(w * (w > 0.85), 1)
    w = w + np.transpose(w, (0, 2, 1))
    w[2] = np.round(w[2] * 4) / 4  # few distinct lengths: many equally short paths
    w[1, :10] = 0
    w[1, :, :10] = 0  # a disconnected block
    length = gk.weight_to_length(w, transform="inv").astype(dtype)
    keep = length.copy()
    on, off = _both(monkeypatch, lambda: [gk.floyd_warshall(length, track=t, pivots=hg.floyd_warshall_pivots)
                                          for t in ("length", "all")])
    np.testing.assert_array_equal(length, keep)
    for a, b in zip(on, off):
        for x, y in zip(a, b):
            if x is None:
                assert y is None
            else:
                assert x.dtype == y.dtype
                np.testing.assert_array_equal(x, y)


def _vasa_both(monkeypatch, pts, R):
    from recouple.host import spheres

    return _both(monkeypatch, lambda: spheres.vasa(pts, R, threads=2))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 40, 203])
def test_vasa_loop_identical_to_numpy(monkeypatch, rng, n):
    pts = _sphere(rng, n)
    R = rc.nulls.rotations(25, seed=n)[:, 0]
    jit, ref = _vasa_both(monkeypatch, pts, R)
    np.testing.assert_array_equal(jit, ref)
    np.testing.assert_array_equal(np.sort(jit, axis=1), np.broadcast_to(np.arange(n), jit.shape))


def test_vasa_loop_ties_identical_to_numpy(monkeypatch, rng):
    # every point three times (equal row minima, equal distances in a row),
    # the identity among the rotations (every minimum 0), and a small
    # lattice (many equal distances)
    base = _sphere(rng, 20)
    pts = np.concatenate([base, base, base])
    R = np.concatenate([np.eye(3)[None], rc.nulls.rotations(12, seed=3)[:, 0]])
    jit, ref = _vasa_both(monkeypatch, pts, R)
    np.testing.assert_array_equal(jit, ref)
    lattice = np.array([[x, y, z] for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1) if x or y or z], float)
    lattice /= np.linalg.norm(lattice, axis=1, keepdims=True)
    quarter = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # maps the lattice onto itself
    R = np.stack([np.eye(3), quarter, quarter @ quarter, *rc.nulls.rotations(5, seed=4)[:, 0]])
    jit, ref = _vasa_both(monkeypatch, lattice, R)
    np.testing.assert_array_equal(jit, ref)


def test_vasa_loop_blocks_and_threads(monkeypatch, rng):
    pts = _sphere(rng, 90)
    hemi = np.repeat([0, 1], 45)
    monkeypatch.setenv("RECOUPLE_NUM_THREADS", "1")
    ref = rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=37, seed=6, method="vasa")
    monkeypatch.setenv("RECOUPLE_NUM_THREADS", "3")
    np.testing.assert_array_equal(rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=37, seed=6, method="vasa"), ref)
    monkeypatch.setenv("RECOUPLE_JIT", "0")
    np.testing.assert_array_equal(rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=37, seed=6, method="vasa"), ref)


@pytest.mark.realdata
@pytest.mark.parametrize("parc", ["schaefer_400", "aparc"])
def test_vasa_loop_fsaverage5_parcels_identical(monkeypatch, shared_data, parc):
    from recouple.io import surfaces

    s = shared_data / "surfaces"
    lh, rh = surfaces.load_sphere(s / "fsa5_sphere_lh.gii"), surfaces.load_sphere(s / "fsa5_sphere_rh.gii")
    lab, _ = surfaces.load_labels(shared_data / "parcellations" / f"{parc}_fsa5.csv")
    hemi = np.repeat([0, 1], len(lh))
    cen, ph, _ = surfaces.parcel_centroids(np.vstack([lh, rh]), lab, hemi=hemi)
    jit, ref = _both(monkeypatch, lambda: rc.nulls.spin_permutations(cen, hemi=ph, n_perm=60, seed=9, method="vasa"))
    np.testing.assert_array_equal(jit, ref)
