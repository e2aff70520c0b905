"""TFCE and cluster statistics against direct reference implementations."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from scipy import ndimage, sparse

import recouple as rc
from recouple.host import labels as clusters
from recouple.permutation import Resampling, Spatial


def _neighbours(connectivity):
    offs = []
    for d in np.ndindex(3, 3, 3):
        o = np.array(d) - 1
        k = np.abs(o).sum()
        if k == 0:
            continue
        if (connectivity == 6 and k == 1) or (connectivity == 18 and k <= 2) or connectivity == 26:
            offs.append(o)
    return offs


def _component_size(active, start, offs):
    seen = {start}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for o in offs:
            w = tuple(np.array(v) + o)
            if all(0 <= w[i] < active.shape[i] for i in range(3)) and active[w] and w not in seen:
                seen.add(w)
                queue.append(w)
    return len(seen)


def _tfce_direct(stat, connectivity=6, H=2.0, E=0.5, n_steps=100, multiply_dh=True):
    """The definition, voxel by voxel: sum_h e(h)^E h^H dh with a BFS per voxel and height."""
    offs = _neighbours(connectivity)
    out = np.zeros_like(stat)
    for sign in (1.0, -1.0):
        s = sign * stat
        top = np.abs(stat).max()
        dh = top / n_steps
        heights = [dh * j for j in range(1, n_steps)] + [top]
        for h in heights:
            active = s >= h
            for v in zip(*np.nonzero(active)):
                e = _component_size(active, v, offs)
                out[v] += sign * e**E * h**H * (dh if multiply_dh else 1.0)
    return out


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_tfce_equals_direct_definition(connectivity):
    rng = np.random.default_rng(connectivity)
    stat = ndimage.gaussian_filter(rng.normal(size=(6, 5, 4)), 1.0) * 5
    got = clusters.tfce(stat[None], structure=clusters.volume_structure(connectivity), n_steps=20)[0]
    ref = _tfce_direct(stat, connectivity, n_steps=20)  # 20 steps keep the BFS reference quick
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8)


def test_tfce_batch_equals_single_maps():
    rng = np.random.default_rng(0)
    maps = ndimage.gaussian_filter(rng.normal(size=(3, 8, 8, 6)), (0, 1, 1, 1)) * 4
    batch = clusters.tfce(maps)
    for i in range(3):
        np.testing.assert_allclose(batch[i], clusters.tfce(maps[i : i + 1])[0], rtol=1e-12)


@pytest.mark.peer
def test_tfce_matches_nilearn_fslmaths_convention():
    utils = pytest.importorskip("nilearn.mass_univariate._utils")
    rng = np.random.default_rng(1)
    stat = ndimage.gaussian_filter(rng.normal(size=(10, 9, 8)), 1.2) * 6
    ref = utils.calculate_tfce(stat[..., None], bin_struct=ndimage.generate_binary_structure(3, 1),
                               two_sided_test=True)[..., 0]
    got = clusters.tfce(stat[None], multiply_dh=False)[0]
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_graph_tfce_equals_volume_tfce_on_a_grid():
    rng = np.random.default_rng(2)
    shape = (6, 5, 4)
    stat = ndimage.gaussian_filter(rng.normal(size=shape), 1.0) * 5
    idx = np.arange(np.prod(shape)).reshape(shape)
    rows, cols = [], []
    for ax in range(3):
        a = np.moveaxis(idx, ax, 0)
        rows.append(a[:-1].ravel())
        cols.append(a[1:].ravel())
    r, c = np.concatenate(rows), np.concatenate(cols)
    adj = sparse.coo_matrix((np.ones(r.size), (r, c)), shape=(idx.size,) * 2)
    adj = adj + adj.T
    vol = clusters.tfce(stat[None])[0].ravel()
    graph = clusters.tfce(stat.reshape(1, -1), adjacency=adj)[0]
    np.testing.assert_allclose(graph, vol, rtol=1e-12)
    weighted = clusters.tfce(stat.reshape(1, -1), adjacency=adj, weights=np.full(idx.size, 2.0), extent=1.0)[0]
    np.testing.assert_allclose(weighted, 2 * clusters.tfce(stat[None], extent=1.0)[0].ravel(), rtol=1e-12)


def test_cluster_sizes_match_ndimage():
    rng = np.random.default_rng(3)
    stat = ndimage.gaussian_filter(rng.normal(size=(2, 9, 9, 7)), (0, 1, 1, 1)) * 5
    labels, extent, mass, owner = clusters.cluster_sizes(stat, 1.0)
    for b in range(2):
        ref, n = ndimage.label(stat[b] > 1.0)
        ref_sizes = sorted(np.bincount(ref.ravel())[1:].tolist())
        mine = sorted(extent[owner == b].tolist())
        assert mine == ref_sizes
        ref_mass = sorted(ndimage.sum(stat[b] - 1.0, ref, index=np.arange(1, n + 1)).tolist())
        np.testing.assert_allclose(sorted(mass[owner == b].tolist()), ref_mass, rtol=1e-12)
    np.testing.assert_allclose(clusters.max_per_map(extent, owner, 2), [extent[owner == b].max() for b in range(2)])


def test_tfce_in_one_sample_permutation():
    rng = np.random.default_rng(4)
    shape = (6, 6, 5)
    mask = np.ones(shape, bool)
    mask[0, 0, 0] = False
    n = 9
    vols = ndimage.gaussian_filter(rng.normal(size=(n,) + shape), (0, 1, 1, 1))
    vols[:, 2:4, 2:4, 1:3] += 0.8
    data = vols[:, mask]
    res = rc.permutation.one_sample(data, resampling=Resampling(n_perm=40, seed=1, keep_null=True),
                                    spatial=Spatial(tfce=True, mask=mask))
    tf = res.tfce
    vol_t = np.zeros(shape)
    vol_t[mask] = res.statistic
    np.testing.assert_allclose(tf.statistic, clusters.tfce(vol_t[None])[0][mask], rtol=1e-12)
    k = 7
    vol_k = np.zeros(shape)
    vol_k[mask] = res.null[k]
    assert tf.null_max[k] == pytest.approx(np.abs(clusters.tfce(vol_k[None])[0]).max(), rel=1e-12)
    np.testing.assert_allclose(tf.pvalue_fwer, (1 + (tf.null_max[:, None] >= np.abs(tf.statistic)).sum(0)) / 41)
    cl = rc.permutation.one_sample(data, resampling=Resampling(n_perm=40, seed=1),
                                   spatial=Spatial(cluster_threshold=2.5, mask=mask)).clusters
    assert cl.extent.size == cl.pvalue_extent.size and (cl.labels > 0).sum() == cl.extent.sum()


def test_tfce_needs_neighbourhood():
    with pytest.raises(rc.InputError, match="neighbourhood"):
        rc.permutation.one_sample(np.random.default_rng(0).normal(size=(8, 5)), resampling=Resampling(n_perm=10),
                                  spatial=Spatial(tfce=True))
    with pytest.raises(rc.exceptions.ShapeError, match="one True voxel per data column"):
        rc.permutation.one_sample(np.random.default_rng(0).normal(size=(8, 5)), resampling=Resampling(n_perm=10),
                                  spatial=Spatial(tfce=True, mask=np.ones((2, 2, 2), bool)))
