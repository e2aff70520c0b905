"""The null-model kernels on every backend (numpy, array-api-strict, jax jitted)
against plain NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from recouple.kernels import nulls as K


def _sphere(rng, n):
    p = rng.standard_normal((n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def test_gather_nulls(xp, rng):
    x = rng.standard_normal((2, 9))
    idx = rng.integers(-1, 9, size=(4, 9))
    out = xp.to_numpy(xp.jit(K.gather_nulls)(xp.asarray(x), xp.asarray(idx)))
    ref = np.where(idx[None] < 0, np.nan, x[:, np.maximum(idx, 0)])
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_association_block_gemm_and_pairwise(xp, rng, alternative):
    x = rng.standard_normal((2, 3, 12))
    Y = rng.standard_normal((5, 12))
    z = (Y - Y.mean(1, keepdims=True)) / np.linalg.norm(Y - Y.mean(1, keepdims=True), axis=1, keepdims=True)
    r_obs = rng.uniform(-0.5, 0.5, size=(2, 5))
    ref = np.stack([[[np.corrcoef(a, y)[0, 1] for y in Y] for a in xi] for xi in x])  # (2, 3, 5)
    s = {"two-sided": np.abs, "greater": lambda v: v, "less": lambda v: -v}[alternative]
    for mode, tgt in (("gemm", z), ("pairwise", Y)):
        fn = xp.jit(K.association_block, mode=mode, alternative=alternative, store=True)
        out = fn(xp.asarray(x), xp.asarray(tgt), xp.asarray(r_obs))
        np.testing.assert_allclose(xp.to_numpy(out["null"]), ref, atol=1e-12)
        np.testing.assert_array_equal(xp.to_numpy(out["count"]), (s(ref) >= s(r_obs)[:, None, :]).sum(1))
        np.testing.assert_array_equal(xp.to_numpy(out["n_valid"]), np.full((2, 5), 3.0))
        np.testing.assert_allclose(xp.to_numpy(out["null_max"]), s(ref).max(-1), atol=1e-12)


def test_nearest_kernels_match_kdtree(xp, rng):
    pts = _sphere(rng, 150)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3, 3)))
    rots = q * np.sign(np.linalg.det(q))[:, None, None]
    ref = np.stack([cKDTree(pts @ r).query(pts)[1] for r in rots])
    out = xp.to_numpy(xp.jit(K.nearest_on_sphere)(xp.asarray(pts), xp.asarray(rots)))
    np.testing.assert_array_equal(out, ref)
    from recouple.nulls import _SphereIndex

    index = _SphereIndex(pts)
    queries = np.matmul(pts[None], np.transpose(rots, (0, 2, 1)))
    fn = xp.jit(K.nearest_by_candidates, grid=index.grid)
    out = xp.to_numpy(fn(xp.asarray(queries), xp.asarray(pts), xp.asarray(index.table)))
    np.testing.assert_array_equal(out, ref)


def test_variogram_block_reference(xp, rng):
    n, b = 20, 3
    pts = rng.uniform(0, 10, (n, 3))
    D = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    iu, ju = np.triu_indices(n, 1)
    W = rng.uniform(size=(5, iu.size))
    W /= W.sum(1, keepdims=True)
    S = rng.uniform(size=(2, n, n)) * (D[None] < 5)
    S /= S.sum(-1, keepdims=True)
    xp_maps = rng.standard_normal((b, n))
    z = rng.standard_normal((b, n))
    gt = rng.uniform(0.5, 1.0, 5)
    out = xp.jit(K.variogram_block)(*(xp.asarray(a) for a in (xp_maps, z, S, iu, ju, W, gt)))
    maps = xp.to_numpy(out["maps"])
    for k in range(b):
        fits = []
        for t in range(2):
            sm = S[t] @ xp_maps[k]
            g = W @ (0.5 * (sm[iu] - sm[ju]) ** 2)
            beta, alpha = np.polyfit(g, gt, 1)
            fits.append((np.sum((gt - alpha - beta * g) ** 2), alpha, beta, sm))
        t = int(np.argmin([f[0] for f in fits]))
        sse, alpha, beta, sm = fits[t]
        assert int(xp.to_numpy(out["delta_index"])[k]) == t
        np.testing.assert_allclose(maps[k], np.sqrt(abs(beta)) * sm + np.sqrt(abs(alpha)) * z[k], atol=1e-9)


def test_moran_surrogates(xp, rng):
    U, _ = np.linalg.qr(rng.standard_normal((10, 4)))
    c = rng.standard_normal((3, 4))
    out = xp.to_numpy(xp.jit(K.moran_surrogates)(xp.asarray(c), xp.asarray(U), xp.asarray(np.float64(2.0)),
                                                  xp.asarray(np.float64(3.0))))
    np.testing.assert_allclose(out, 2.0 + 3.0 * c @ U.T, atol=1e-12)
