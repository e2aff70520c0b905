"""The simulated ECT cohort: seeded, realistic coupling, planted effects present."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss

import recouple as rc


def test_same_seed_same_cohort():
    a = rc.simulate.cohort(n_regions=30, n_patients=3, n_controls=2, seed=7)
    b = rc.simulate.cohort(n_regions=30, n_patients=3, n_controls=2, seed=7)
    c = rc.simulate.cohort(n_regions=30, n_patients=3, n_controls=2, seed=8)
    np.testing.assert_array_equal(a.sc, b.sc)
    np.testing.assert_array_equal(a.fc, b.fc)
    np.testing.assert_array_equal(a.expression, b.expression)
    assert not np.array_equal(a.fc, c.fc)


def test_structure_and_tables():
    c = rc.simulate.cohort(n_regions=40, n_patients=4, n_controls=3, control_sessions=1, seed=1)
    assert c.sc.shape == (4 * 2 + 3, 40, 40)
    np.testing.assert_allclose(c.sc, np.swapaxes(c.sc, -1, -2))
    assert (c.sc >= 0).all() and (np.diagonal(c.sc, axis1=1, axis2=2) == 0).all()
    density = (c.sc[0] > 0).sum() / (40 * 39)
    assert 0.1 < density < 0.35
    assert set(c.scans["session"]) == {"pre", "post"}
    assert (c.scans["group"] == "control").sum() == 3
    assert len(set(c.scans["scan_id"])) == c.n_scans
    assert c.labels[0].startswith("L_") and c.labels[-1].startswith("R_")
    assert (c.centroids[:20, 0] < 0).all() and (c.centroids[20:, 0] > 0).all()
    assert c.expression.shape == (40, c.genes.size)
    assert set(c.planted_genes) <= set(c.genes)


def test_coupling_in_hcp_range_and_planted_change_recovered():
    c = rc.simulate.cohort(seed=0)
    res = rc.coupling.nodal(c.sc, c.fc)
    assert 0.2 < res.mean() < 0.6
    pre, post = c.select(group="patient", session="pre"), c.select(group="patient", session="post")
    t = ss.ttest_rel(res.coupling[post], res.coupling[pre]).statistic
    planted = np.zeros(c.n_regions, bool)
    planted[c.planted_regions] = True
    assert t[planted].mean() > 2.0
    assert abs(t[~planted].mean()) < 0.7
    # HAMD improvement tracks the coupling change in planted regions
    dh = c.scans["hamd"][pre] - c.scans["hamd"][post]
    dc = (res.coupling[post] - res.coupling[pre])[:, planted].mean(axis=1)
    assert ss.pearsonr(dc, dh)[0] > 0.2


def test_timeseries_mode():
    c = rc.simulate.cohort(n_regions=20, n_patients=2, n_controls=1, n_timepoints=120, seed=2)
    assert c.timeseries.shape == (c.n_scans, 20, 120)
    r = np.corrcoef(c.timeseries[0])
    np.fill_diagonal(r, 0)
    np.testing.assert_allclose(np.tanh(c.fc[0]), r, atol=1e-5)


def test_fsaverage5_parcellation_is_seeded_and_mirrored():
    from recouple.simulate import fsaverage5_parcellation

    a = fsaverage5_parcellation(40, seed=3)
    b = fsaverage5_parcellation(40, seed=3)
    for h in range(2):
        np.testing.assert_array_equal(a.vertex_labels[h], b.vertex_labels[h])
        assert a.sphere[h].shape == (10242, 3)
        names = set(a.vertex_labels[h]) - {""}
        assert len(names) == 20 and all(n.startswith("LR"[h] + "_region") for n in names)
        assert 0.03 < np.mean(a.vertex_labels[h] == "") < 0.2  # the medial wall
    left, right = a.centroids_mm[:20], a.centroids_mm[20:]
    assert (left[:, 0] < 0).all() and (right[:, 0] > 0).all()
    # region i + 20 is the homologue of region i: mirrored positions within a few cm
    assert np.median(np.linalg.norm(left * [-1, 1, 1] - right, axis=1)) < 20


def test_cohort_centroids_argument():
    from recouple.exceptions import InputError
    from recouple.simulate import cohort, region_centroids

    default = cohort(n_regions=12, n_patients=2, n_controls=1, n_genes=10, seed=5)
    again = cohort(n_regions=12, n_patients=2, n_controls=1, n_genes=10, seed=5,
                   centroids=default.centroids)
    np.testing.assert_array_equal(default.sc, again.sc)
    np.testing.assert_array_equal(default.fc, again.fc)
    with pytest.raises(InputError, match="centroids must be a finite"):
        cohort(n_regions=12, n_patients=2, n_controls=1, seed=5, centroids=region_centroids(10))
