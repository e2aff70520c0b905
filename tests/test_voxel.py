"""Voxel-level coupling kernels and the voxel analysis over the store."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

import recouple as rc
from recouple.workflows.coupling import cohort_coupling
from recouple.kernels import voxel as kv


def _voxel_data(rng, v=120, t=40, density=0.08):
    x = rng.standard_normal((v, t))
    x[:, :] += 0.5 * rng.standard_normal((1, t))  # shared signal: non-trivial FC
    a = sp.random(v, v, density=density, random_state=np.random.RandomState(1), format="csr")
    a = ((a + a.T) / 2).tocsr()
    a.sort_indices()
    return x, a


def _reference_v2v(x, a, *, edges="both_nonzero", method="spearman", min_edges=3):
    # plain loop over voxels, as in Fotiadis et al.'s MATLAB analysis
    fc = np.corrcoef(x)
    dense = a.toarray()
    out = np.full(x.shape[0], np.nan)
    for i in range(x.shape[0]):
        keep = (dense[i] != 0) & (np.arange(x.shape[0]) != i)
        if edges == "both_nonzero":
            keep &= fc[i] != 0
        if keep.sum() >= min_edges:
            f = stats.spearmanr if method == "spearman" else stats.pearsonr
            out[i] = f(dense[i, keep], fc[i, keep])[0]
    return out


def _run_kernel(xp, x, a, rows, width, **static):
    z = kv.standardize_timeseries(xp.asarray(x))
    indptr = a.indptr
    counts = np.diff(indptr)[rows]
    pos = np.arange(width)
    valid = pos[None, :] < counts[:, None]
    flat = np.where(valid, indptr[rows][:, None] + pos[None, :], 0)
    vals = np.where(valid, a.data[flat], 0.0)
    cols = np.where(valid, a.indices[flat], 0)
    fn = xp.jit(kv.voxel_to_voxel_coupling, **static)
    r, n = fn(xp.ns.take(z, xp.asarray(rows), axis=0), z, xp.asarray(vals), xp.asarray(cols), xp.asarray(valid), xp.asarray(rows))
    return xp.to_numpy(r), xp.to_numpy(n)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_voxel_to_voxel_matches_loop(xp, rng, method):
    x, a = _voxel_data(rng)
    rows = np.arange(x.shape[0])
    width = int(np.diff(a.indptr).max())
    r, n = _run_kernel(xp, x, a, rows, width, method=method, edges="both_nonzero", min_edges=3)
    ref = _reference_v2v(x, a, method=method)
    np.testing.assert_array_equal(np.isnan(r), np.isnan(ref))
    np.testing.assert_allclose(r, ref, atol=1e-12, equal_nan=True)
    dense = a.toarray()
    np.fill_diagonal(dense, 0)
    np.testing.assert_array_equal(n, (dense != 0).sum(axis=1))


def test_profile_coupling_matches_scipy(xp, rng):
    sc = np.abs(rng.standard_normal((30, 12))) * (rng.random((30, 12)) < 0.7)
    fc = rng.standard_normal((30, 12))
    r, n = xp.jit(kv.profile_coupling, method="spearman", edges="sc_nonzero", min_edges=3)(xp.asarray(sc), xp.asarray(fc))
    r = xp.to_numpy(r)
    for i in range(30):
        keep = sc[i] != 0
        ref = stats.spearmanr(sc[i, keep], fc[i, keep])[0] if keep.sum() >= 3 else np.nan
        np.testing.assert_allclose(r[i], ref, atol=1e-12, equal_nan=True)


def _voxel_store(tmp_path, rng, n_scans=2, v=150, t=30):
    cohort = rc.simulate.cohort(n_regions=10, n_patients=1, n_controls=n_scans - 2 if n_scans > 2 else 0,
                                control_sessions=1, seed=0)
    path = tmp_path / "vox.h5"
    st = rc.store.from_simulated(cohort, path)
    s = st.n_scans
    mask = np.zeros((8, 8, 8), bool)
    mask.flat[rng.choice(512, v, replace=False)] = True
    st.write_voxel_mask(mask, np.diag([2.0, 2.0, 2.0, 1.0]))
    xs, mats = [], []
    for k in range(s):
        x, a = _voxel_data(np.random.default_rng(k), v=v, t=t)
        xs.append(x)
        mats.append(a)
        st.write_voxel_sc(k, a.data, a.indices, a.indptr)
    st.write_array("voxel/bold", np.stack(xs))
    st.close()
    return path, xs, mats


def test_voxel_analysis_equals_reference_and_is_chunk_stable(tmp_path, rng):
    path, xs, mats = _voxel_store(tmp_path, rng)
    res = cohort_coupling(path, level="voxel", edges="both_nonzero", chunk_size=40)
    assert res.coupling.shape == (len(xs), xs[0].shape[0])
    for k, (x, a) in enumerate(zip(xs, mats)):
        np.testing.assert_allclose(res.coupling[k], _reference_v2v(x, a), atol=1e-12, equal_nan=True)
    other = cohort_coupling(path, level="voxel", edges="both_nonzero", chunk_size=150, name="all_at_once")
    np.testing.assert_allclose(other.coupling, res.coupling, atol=1e-12, equal_nan=True)
    again = cohort_coupling(path, level="voxel", edges="both_nonzero", chunk_size=40)
    assert again.n_computed == 0 and again.coupling.tobytes() == res.coupling.tobytes()
    jx = cohort_coupling(path, level="voxel", edges="both_nonzero", chunk_size=40, backend="jax", name="jx")
    np.testing.assert_allclose(jx.coupling, res.coupling, atol=1e-10, equal_nan=True)


def test_voxel_export_writes_nifti_per_scan(tmp_path, rng):
    import nibabel as nib

    from recouple.cli.export import export_result

    path, xs, _ = _voxel_store(tmp_path, rng)
    res = cohort_coupling(path, level="voxel", chunk_size=64)
    files = export_result(str(path), res.analysis, tmp_path / "maps")
    niftis = [f for f in files if str(f).endswith(".nii.gz")]
    assert len(niftis) == len(xs)
    with rc.store.open(path) as st:
        mask = st.voxel_mask
    vol = np.asarray(nib.load(str(niftis[0])).dataobj)
    np.testing.assert_allclose(vol[mask], res.coupling[0].astype(np.float32), equal_nan=True)
    assert np.isnan(vol[~mask]).all()
    assert files[-1].name.endswith(".provenance.json")


def test_profile_analysis(tmp_path, rng):
    cohort = rc.simulate.cohort(n_regions=10, n_patients=1, n_controls=0, seed=0)
    path = tmp_path / "prof.h5"
    st = rc.store.from_simulated(cohort, path)
    sc = np.abs(rng.standard_normal((2, 50, 9))) * (rng.random((2, 50, 9)) < 0.8)
    fc = rng.standard_normal((2, 50, 9))
    st.write_array("voxel/profiles/sc", sc)
    st.write_array("voxel/profiles/fc", fc)
    st.close()
    res = cohort_coupling(path, level="voxel", chunk_size=16)
    assert res.analysis.startswith("profile_coupling")
    ref, _ = kv.profile_coupling(sc, fc)
    np.testing.assert_allclose(res.coupling, ref, atol=1e-12, equal_nan=True)


def test_voxel_level_without_voxel_data_raises(tmp_path):
    path = tmp_path / "c.h5"
    rc.store.from_simulated(rc.simulate.cohort(n_regions=10, n_patients=1, n_controls=0), path).close()
    with pytest.raises(rc.exceptions.StoreError, match="voxel/bold"):
        cohort_coupling(path, level="voxel")
