"""Network-based statistic against bctpy's nbs_bct (injected permutations) and a direct reference."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

import recouple as rc
from recouple.exceptions import InputError, ShapeError
from recouple.permutation import Resampling


def _groups(seed=0, n_nodes=14, nx=8, ny=7, effect=1.5):
    rng = np.random.default_rng(seed)
    def mats(k, shift):
        a = rng.normal(size=(k, n_nodes, n_nodes))
        a = (a + a.transpose(0, 2, 1)) / 2
        a[:, :5, :5] += shift
        return a
    return mats(nx, effect), mats(ny, 0.0)


def _bct_permutations(seed, k, n):
    rng = np.random.RandomState(seed)
    return np.array([rng.permutation(n) for _ in range(k)])


def _bct_signs(seed, k, n):
    rng = np.random.RandomState(seed)
    return np.array([np.sign(0.5 - rng.rand(1, n))[0] for _ in range(k)])


def _bct_component_edges(adj):
    iu = np.triu_indices(adj.shape[0], 1)
    labels = adj[iu]
    return sorted(tuple(np.flatnonzero(labels == c)) for c in np.unique(labels[labels > 0]))


@pytest.mark.peer
def test_two_sample_nbs_matches_bctpy():
    bct = pytest.importorskip("bct")
    x, y = _groups()
    with contextlib.redirect_stdout(io.StringIO()):
        pval, adj, null = bct.nbs_bct(x.transpose(1, 2, 0), y.transpose(1, 2, 0), 2.0, k=60, seed=11)
    data = np.concatenate([x, y])
    design = np.column_stack([np.r_[np.ones(8), np.zeros(7)], np.ones(15)])
    res = rc.permutation.nbs(data, design, [1, 0], threshold=2.0, alternative="two-sided", plus_one=False,
                             resampling=Resampling(permutations=_bct_permutations(11, 60, 15)))
    np.testing.assert_allclose(res.null_max, null)
    iu = np.triu_indices(14, 1)
    bct_sizes = sorted([int((adj[iu] == c).sum()) for c in np.unique(adj[iu][adj[iu] > 0])], reverse=True)
    np.testing.assert_array_equal(res.component_size, bct_sizes)
    mine = sorted(tuple(np.flatnonzero(res.edge_component == c)) for c in range(1, res.component_size.size + 1))
    assert mine == _bct_component_edges(adj)
    np.testing.assert_allclose(sorted(res.pvalue), sorted(pval))


@pytest.mark.peer
def test_paired_nbs_matches_bctpy():
    bct = pytest.importorskip("bct")
    x, y = _groups(seed=3, nx=9, ny=9, effect=1.2)
    with contextlib.redirect_stdout(io.StringIO()):
        pval, adj, null = bct.nbs_bct(x.transpose(1, 2, 0), y.transpose(1, 2, 0), 2.5, k=50, paired=True, seed=5)
    res = rc.permutation.nbs(x - y, np.ones((9, 1)), [1], threshold=2.5, alternative="two-sided", plus_one=False,
                             resampling=Resampling(signs=_bct_signs(5, 50, 9)))
    np.testing.assert_allclose(res.null_max, null)
    np.testing.assert_allclose(sorted(res.pvalue), sorted(pval))


def _direct_components(stat, n, thr, intensity):
    rows, cols = np.triu_indices(n, 1)
    keep = stat > thr
    a = np.zeros((n, n))
    a[rows[keep], cols[keep]] = 1
    _, lab = connected_components(a + a.T, directed=False)
    sizes = []
    for c in np.unique(lab[rows[keep]]):
        e = keep & (lab[rows] == c)
        sizes.append((stat[e] - thr).sum() if intensity else e.sum())
    return sorted(sizes, reverse=True)


def test_intensity_and_extent_match_direct():
    x, y = _groups(seed=7)
    data = np.concatenate([x, y])
    design = np.column_stack([np.r_[np.ones(8), np.zeros(7)], np.ones(15)])
    for measure in ("extent", "intensity"):
        res = rc.permutation.nbs(data, design, [1, 0], threshold=1.8, measure=measure,
                                 resampling=Resampling(n_perm=30, seed=2))
        np.testing.assert_allclose(res.component_size, _direct_components(res.statistic, 14, 1.8,
                                                                           measure == "intensity"), rtol=1e-12)
        glm = rc.permutation.glm(data[:, *np.triu_indices(14, 1)], design, [1, 0],
                                 resampling=Resampling(permutations=res.permutations, keep_null=True))
        np.testing.assert_allclose(res.statistic, glm.statistic, atol=1e-12)
        k = 4
        ref = _direct_components(glm.null[k], 14, 1.8, measure == "intensity")
        assert res.null_max[k] == pytest.approx(ref[0] if ref else 0.0)
        assert (res.pvalue >= 1 / 31).all()


def test_nbs_bad_input():
    x, y = _groups()
    data = np.concatenate([x, y])
    with pytest.raises(InputError, match="n_nodes"):
        rc.permutation.nbs(data.reshape(15, -1)[:, :91], np.ones((15, 1)), [1], threshold=2)
    with pytest.raises(ShapeError, match="N\\(N-1\\)/2"):
        rc.permutation.nbs(data.reshape(15, -1)[:, :90], np.ones((15, 1)), [1], threshold=2, n_nodes=14)
    with pytest.raises(InputError, match="measure"):
        rc.permutation.nbs(data, np.ones((15, 1)), [1], threshold=2, measure="mass")
