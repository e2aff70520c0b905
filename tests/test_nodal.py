"""Nodal coupling (Baum 2020 default) against a scipy loop, across backends."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss

import recouple as rc
from recouple.exceptions import InputError, ShapeError
from recouple.kernels import coupling as K

from conftest import load_hcp


def scipy_baum(sc, fc):
    n = sc.shape[-1]
    out = np.full(n, np.nan)
    cnt = np.zeros(n, dtype=int)
    for i in range(n):
        j = np.nonzero(sc[i])[0]
        j = j[j != i]
        cnt[i] = j.size
        if j.size >= 3 and np.ptp(sc[i, j]) > 0 and np.ptp(fc[i, j]) > 0:
            out[i] = ss.spearmanr(sc[i, j], fc[i, j])[0]
    return out, cnt


@pytest.fixture(scope="module")
def small_cohort():
    return rc.simulate.cohort(n_regions=40, n_patients=3, n_controls=2, seed=3)


def test_kernel_cross_backend(xp, small_cohort):
    sc, fc = small_cohort.sc[:4], small_cohort.fc[:4]
    r, n = xp.jit(K.nodal_coupling, method="spearman", edges="sc_nonzero", min_edges=3)(
        xp.asarray(sc), xp.asarray(fc)
    )
    r, n = xp.to_numpy(r), xp.to_numpy(n)
    for s in range(4):
        ref, cnt = scipy_baum(sc[s], fc[s])
        np.testing.assert_allclose(r[s], ref, atol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(n[s], cnt)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_public_nodal_batched_equals_loop(backend, small_cohort):
    res = rc.coupling.nodal(small_cohort.sc, small_cohort.fc, backend=backend, batch_size=3)
    assert res.coupling.shape == small_cohort.sc.shape[:2]
    for s in range(small_cohort.n_scans):
        ref, cnt = scipy_baum(small_cohort.sc[s], small_cohort.fc[s])
        np.testing.assert_allclose(res.coupling[s], ref, atol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(res.n_edges[s], cnt)


def test_numpy_and_jax_agree_and_batch_invariant(small_cohort):
    a = rc.coupling.nodal(small_cohort.sc, small_cohort.fc, backend="numpy")
    b = rc.coupling.nodal(small_cohort.sc, small_cohort.fc, backend="jax", batch_size=2)
    np.testing.assert_allclose(a.coupling, b.coupling, atol=1e-10, equal_nan=True)
    c = rc.coupling.nodal(small_cohort.sc, small_cohort.fc, backend="numpy", batch_size=1)
    np.testing.assert_array_equal(a.coupling, c.coupling)


def test_leading_axes_and_fill(small_cohort):
    sc = small_cohort.sc[:4].reshape(2, 2, 40, 40)
    fc = small_cohort.fc[:4].reshape(2, 2, 40, 40)
    res = rc.coupling.nodal(sc, fc)
    assert res.coupling.shape == (2, 2, 40)
    sc2 = small_cohort.sc[0].copy()
    sc2[0, 1:] = sc2[1:, 0] = 0
    sc2[0, 1] = sc2[1, 0] = 1.0  # node 0 keeps one edge -> undefined
    res0 = rc.coupling.nodal(sc2, small_cohort.fc[0], fill_undefined=0.0)
    assert res0.undefined[0] and res0.coupling[0] == 0.0 and res0.n_edges[0] == 1


def test_inputs_not_modified(small_cohort):
    sc = small_cohort.sc[:2].copy()
    fc = small_cohort.fc[:2].copy()
    rc.coupling.nodal(sc, fc, symmetrize=True)
    np.testing.assert_array_equal(sc, small_cohort.sc[:2])
    np.testing.assert_array_equal(fc, small_cohort.fc[:2])


def test_bad_input_messages(small_cohort):
    sc, fc = small_cohort.sc[0], small_cohort.fc[0]
    with pytest.raises(ShapeError, match="square"):
        rc.coupling.nodal(sc[:, :-1], fc[:, :-1])
    with pytest.raises(ShapeError, match="same shape"):
        rc.coupling.nodal(sc, fc[:-1, :-1])
    bad = fc.copy()
    bad[2, 3] = np.nan
    with pytest.raises(InputError, match=r"fc must contain only finite values.*\(2, 3\)"):
        rc.coupling.nodal(sc, bad)
    asym = sc.copy()
    asym[0, 1] += 0.5
    with pytest.raises(InputError, match="symmetrize=True"):
        rc.coupling.nodal(asym, fc)
    neg = sc.copy()
    neg[0, 1] = neg[1, 0] = -0.2
    with pytest.raises(InputError, match="allow_negative=True"):
        rc.coupling.nodal(neg, fc)
    assert rc.coupling.nodal(neg, fc, allow_negative=True).coupling.shape == (40,)
    with pytest.raises(InputError, match="method must be one of"):
        rc.coupling.nodal(sc, fc, method="kendall")
    with pytest.raises(InputError, match="mask must be given"):
        rc.coupling.nodal(sc, fc, edges="mask")


@pytest.mark.realdata
@pytest.mark.parametrize("parc", ["ctx", "ctx_schaefer_400"])
def test_hcp_baum_equals_scipy_loop(shared_data, parc):
    sc, fc, labels = load_hcp(shared_data, parc)
    assert labels.size == sc.shape[0]
    res = rc.coupling.nodal(sc, fc, allow_negative=True, symmetrize=True)
    scs = (sc + sc.T) / 2
    ref, cnt = scipy_baum(scs, fc)
    assert np.nanmax(np.abs(res.coupling - ref)) < 1e-10
    np.testing.assert_array_equal(np.isnan(res.coupling), np.isnan(ref))
    np.testing.assert_array_equal(res.n_edges, cnt)
    stacked = rc.coupling.nodal(np.stack([scs, scs]), np.stack([fc, fc]), allow_negative=True, backend="jax")
    assert np.nanmax(np.abs(stacked.coupling[1] - ref)) < 1e-10


def test_tied_weights_take_the_general_rank_path(small_cohort):
    # integer streamline counts tie often: average ranks must still match scipy
    sc = np.round(small_cohort.sc[:3] * 20)
    fc = np.round(small_cohort.fc[:3], 1)
    res = rc.coupling.nodal(sc, fc)
    for s in range(3):
        ref, cnt = scipy_baum(sc[s], fc[s])
        np.testing.assert_allclose(res.coupling[s], ref, atol=1e-12, equal_nan=True)
