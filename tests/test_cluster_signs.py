"""Two-sided cluster inference forms clusters on t > h and t < -h separately
(nilearn, FSL, MNE): touching positive and negative elements never merge."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, sparse

import recouple as rc
from recouple.host import labels
from recouple.permutation import Resampling, Spatial


def _touching_pair():
    # a positive blob right next to a negative blob
    stat = np.zeros((1, 6, 5, 3))
    stat[0, 1:3, 1:4, 1] = 3.0
    stat[0, 3:5, 1:4, 1] = -4.0
    return stat


def test_two_sided_volume_clusters_keep_signs_apart():
    labels_, extent, mass, owner = labels.cluster_sizes(_touching_pair(), 2.0, alternative="two-sided")
    assert sorted(extent[1:].tolist()) == [6.0, 6.0]
    assert sorted(mass[1:].tolist()) == [6.0, 12.0]
    assert labels.max_per_map(mass, owner, 1)[0] == 12.0  # |t| merged would give 18


def test_two_sided_graph_clusters_keep_signs_apart():
    # path graph 0-1-2-3: +3, +3, -3, -3
    adj = sparse.diags([np.ones(3), np.ones(3)], [-1, 1], shape=(4, 4))
    stat = np.array([[3.0, 3.0, -3.0, -3.0]])
    _, extent, mass, _ = labels.cluster_sizes(stat, 1.0, adjacency=adj, alternative="two-sided")
    assert extent[1:].tolist() == [2.0, 2.0]
    np.testing.assert_allclose(mass[1:], [4.0, 4.0])


def test_one_sided_clusters_unchanged():
    stat = _touching_pair()
    _, extent, mass, _ = labels.cluster_sizes(stat, 2.0, alternative="greater")
    assert extent[1:].tolist() == [6.0] and mass[1:].tolist() == [6.0]
    _, extent, mass, _ = labels.cluster_sizes(stat, 2.0, alternative="less")
    assert extent[1:].tolist() == [6.0] and mass[1:].tolist() == [12.0]


def test_two_sided_cluster_result_and_null_match_nilearn_measures():
    nl = pytest.importorskip("nilearn.mass_univariate._utils")
    rng = np.random.default_rng(7)
    shape = (7, 6, 4)
    mask = np.ones(shape, bool)
    n = 10
    vols = ndimage.gaussian_filter(rng.normal(size=(n,) + shape), (0, 1.2, 1.2, 1.2)) * 3
    vols[:, 1:3, 1:4, 1:3] += 1.0
    vols[:, 3:5, 1:4, 1:3] -= 1.0
    data = vols[:, mask]
    threshold = 2.0
    res = rc.permutation.one_sample(data, resampling=Resampling(n_perm=60, seed=2, keep_null=True),
                                    spatial=Spatial(cluster_threshold=threshold, mask=mask))
    cl = res.clusters
    struct = ndimage.generate_binary_structure(3, 1)

    def nilearn_max(stat):
        vol = np.zeros(shape + (1,))
        vol[mask, 0] = stat
        size, mass = nl.calculate_cluster_measures(vol, threshold, struct, two_sided_test=True)
        return float(size[0]), float(mass[0])

    size_obs, mass_obs = nilearn_max(res.statistic)
    assert cl.extent.max() == size_obs
    assert cl.mass.max() == pytest.approx(mass_obs, rel=1e-12)
    for k in range(res.n_perm):
        size_k, mass_k = nilearn_max(res.null[k])
        assert cl.null_max_extent[k] == size_k
        assert cl.null_max_mass[k] == pytest.approx(mass_k, rel=1e-12, abs=1e-12)
    # every cluster has one sign
    t = res.statistic
    for c in range(1, cl.extent.size + 1):
        signs = np.unique(np.sign(t[cl.labels == c]))
        assert signs.size == 1
