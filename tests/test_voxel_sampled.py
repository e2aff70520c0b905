"""Sampled voxel FC (one dot product per structural non-zero) against the dense
GEMM path and a per-voxel SciPy loop.

Tolerances: FC values of the two paths are the same dot products summed in
another order, so they differ in the last bits (<= 1e-13 here). Spearman
coupling depends on FC only through ranks, so it is byte-identical unless two
FC values of a row lie within rounding of each other; the data below has
exact ties (exact zeros and +-1 from orthogonal +-1 series) and otherwise no
near-ties. Pearson coupling agrees to 1e-13; against SciPy both agree to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from scipy import stats

import recouple as rc
from recouple.engine import voxel as ev
from recouple.workflows.coupling import cohort_coupling
from recouple.engine.planner import plan_fc_mode
from recouple.exceptions import InputError
from recouple.host import voxel as hv
from recouple.kernels import voxel as kv

METHODS = ("spearman", "pearson")
EDGES = kv.VOXEL_EDGES
CASES = ("random", "ties_zero_nan")


def _series(case, v=150, t=17, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((v, t)) + 0.5 * rng.standard_normal((1, t))
    if case == "ties_zero_nan":
        # Walsh rows (+-1, balanced, mutually orthogonal) padded with a 0: with
        # T - 1 = 16 they standardise exactly, so their FC is exactly 0 or +-1
        # in any summation order (ties in FC, zero FC)
        h = scipy.linalg.hadamard(16)[1:]
        w = np.vstack([h, -h[:9]]).astype(float)
        x[:24] = 3.0 + np.hstack([w, np.zeros((24, 1))])
        x[30] = 2.0  # constant series: NaN FC
        x[31, :] = -1.0
    return x


def _sc(case, v=150, density=0.08, seed=1):
    a = sp.random(v, v, density=density, random_state=np.random.RandomState(seed), format="csr")
    a = (a + a.T).tocsr()
    if case == "ties_zero_nan":
        a = a.tolil()
        a[:32, :32] = np.ones((32, 32))  # the exact-FC voxels see each other (and the NaN ones)
        a = a.tocsr()
        a.data = np.ceil(a.data * 3)  # integer streamline counts: ties in SC
    a.sort_indices()
    return a


def _padded(a, rows, width):
    counts = np.diff(a.indptr)[rows]
    pos = np.arange(width)
    valid = pos[None, :] < counts[:, None]
    flat = np.where(valid, a.indptr[rows][:, None] + pos[None, :], 0)
    return np.where(valid, a.data[flat], 0.0), np.where(valid, a.indices[flat], 0), valid


def _chunk(case):
    x, a = _series(case), _sc(case)
    z = kv.standardize_timeseries(x)
    rows = np.arange(x.shape[0])
    width = int(np.ceil(np.diff(a.indptr).max() / 8) * 8) + 8  # padding at the end of every row
    vals, cols, valid = _padded(a, rows, width)
    return x, a, z, vals, cols, valid, rows


def _reference(x, a, *, edges, method, min_edges=3):
    with np.errstate(invalid="ignore", divide="ignore"):  # constant series: NaN rows
        fc = np.corrcoef(x)
    dense = a.toarray()
    out = np.full(x.shape[0], np.nan)
    f = stats.spearmanr if method == "spearman" else stats.pearsonr
    for i in range(x.shape[0]):
        keep = (dense[i] != 0) & (np.arange(x.shape[0]) != i) & ~np.isnan(fc[i])
        if edges == "both_nonzero":
            keep &= fc[i] != 0
        if keep.sum() >= min_edges and np.ptp(dense[i, keep]) > 0 and np.ptp(fc[i, keep]) > 0:
            out[i] = f(dense[i, keep], fc[i, keep])[0]
    return out


@pytest.mark.parametrize("case", CASES)
def test_data_has_exact_zero_fc_ties_and_nan(case):
    _, _, z, vals, cols, valid, _ = _chunk(case)
    f = np.take_along_axis(kv.fc_rows(z, z), cols, -1)
    if case == "ties_zero_nan":
        sub = kv.fc_rows(z[:24], z[:24])
        assert set(np.unique(sub)) <= {-1.0, 0.0, 1.0} and (sub == 0).sum() > 100
        assert np.isnan(f[valid]).any()
        assert len(np.unique(vals[valid])) < valid.sum() // 4


@pytest.mark.parametrize("case", CASES)
def test_host_sampled_fc_matches_dense_gather(case):
    _, _, z, _, cols, valid, _ = _chunk(case)
    dense = np.take_along_axis(kv.fc_rows(z, z), cols, -1)
    out = hv.sampled_fc(z, z, cols, valid)
    np.testing.assert_array_equal(np.isnan(out), valid & np.isnan(dense))
    np.testing.assert_allclose(out[valid], dense[valid], rtol=0, atol=1e-13, equal_nan=True)
    assert (out[~valid] == 0).all()
    if case == "ties_zero_nan":  # exact values stay exact
        np.testing.assert_array_equal(out[:24][valid[:24] & (cols[:24] < 24)],
                                      dense[:24][valid[:24] & (cols[:24] < 24)])


def test_host_sampled_fc_does_not_depend_on_the_chunk():
    _, _, z, _, cols, valid, _ = _chunk("random")
    whole = hv.sampled_fc(z, z, cols, valid)
    for a, b in ((0, 1), (7, 40), (100, 150)):
        part = hv.sampled_fc(z[a:b], z, cols[a:b], valid[a:b])
        assert part.tobytes() == whole[a:b].tobytes()
    # one pair's value does not depend on the other pairs of its row
    single = hv.sampled_fc(z[5:6], z, cols[5:6, :1], valid[5:6, :1])
    assert single[0, 0] == whole[5, 0]


def test_host_sampled_fc_rejects_bad_indices():
    z = kv.standardize_timeseries(np.random.default_rng(0).standard_normal((10, 8)))
    cols = np.array([[1, 12]])
    with pytest.raises(InputError, match="sc_indices"):
        hv.sampled_fc(z[:1], z, cols, np.array([[True, True]]))
    # padding is never read
    out = hv.sampled_fc(z[:1], z, cols, np.array([[True, False]]))
    assert out[0, 1] == 0.0


def test_kernel_sampled_fc_matches_dense(xp):
    _, _, z, _, cols, _, _ = _chunk("ties_zero_nan")
    dense = np.take_along_axis(kv.fc_rows(z, z), cols, -1)
    for block in (1, 7, None):
        f = xp.jit(kv.sampled_fc, block_rows=block)(xp.asarray(z), xp.asarray(z), xp.asarray(cols))
        f = xp.to_numpy(f)
        np.testing.assert_array_equal(np.isnan(f), np.isnan(dense))
        np.testing.assert_allclose(f, dense, rtol=0, atol=1e-13, equal_nan=True)


def _kernel(xp, z, vals, cols, valid, rows, **static):
    fn = xp.jit(kv.voxel_to_voxel_coupling, **static)
    r, n = fn(xp.asarray(z), xp.asarray(z), xp.asarray(vals), xp.asarray(cols), xp.asarray(valid), xp.asarray(rows))
    return xp.to_numpy(r), xp.to_numpy(n)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("edges", EDGES)
@pytest.mark.parametrize("method", METHODS)
def test_sampled_equals_dense_and_scipy(xp, case, edges, method):
    x, a, z, vals, cols, valid, rows = _chunk(case)
    static = {"method": method, "edges": edges, "min_edges": 3}
    rd, nd = _kernel(xp, z, vals, cols, valid, rows, fc_mode="dense", **static)
    rs, ns = _kernel(xp, z, vals, cols, valid, rows, fc_mode="sampled", block_rows=16, **static)
    rh, nh, mode = ev.chunk_coupling(z, z, vals, cols, valid, rows, fc_mode="sampled", **static)
    assert mode == "sampled"
    np.testing.assert_array_equal(ns, nd)
    np.testing.assert_array_equal(nh, nd)
    if method == "spearman":
        # same ranks -> same arithmetic -> same bytes
        assert rs.tobytes() == rd.tobytes()
        if xp.name == "numpy":
            assert rh.tobytes() == rd.tobytes()
    else:
        np.testing.assert_allclose(rs, rd, rtol=0, atol=1e-13, equal_nan=True)
        np.testing.assert_allclose(rh, rd, rtol=0, atol=1e-13, equal_nan=True)
    ref = _reference(x, a, edges=edges, method=method)
    np.testing.assert_array_equal(np.isnan(rs), np.isnan(ref))
    np.testing.assert_allclose(rs, ref, rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(rh, ref, rtol=0, atol=1e-12, equal_nan=True)
    assert np.isfinite(ref).sum() > 100


def test_jax_sampled_matches_numpy():
    pytest.importorskip("jax")
    _, _, z, vals, cols, valid, rows = _chunk("ties_zero_nan")
    for method in METHODS:
        rn, nn, _ = ev.chunk_coupling(z, z, vals, cols, valid, rows, method=method, fc_mode="sampled",
                                      backend="numpy")
        rj, nj, _ = ev.chunk_coupling(z, z, vals, cols, valid, rows, method=method, fc_mode="sampled",
                                      backend="jax")
        np.testing.assert_array_equal(nj, nn)
        np.testing.assert_allclose(rj, rn, rtol=0, atol=1e-12, equal_nan=True)


def test_sampled_without_compiled_loops_uses_the_kernel(monkeypatch):
    _, _, z, vals, cols, valid, rows = _chunk("random")
    r1, _, _ = ev.chunk_coupling(z, z, vals, cols, valid, rows, fc_mode="sampled")
    monkeypatch.setenv("RECOUPLE_JIT", "0")
    r0, _, mode = ev.chunk_coupling(z, z, vals, cols, valid, rows, fc_mode="sampled")
    assert mode == "sampled"
    assert r0.tobytes() == r1.tobytes()  # spearman: same ranks


def test_device_path_trims_padding_to_the_chunk():
    pytest.importorskip("jax")
    _, _, z, vals, cols, valid, rows = _chunk("random")
    wide = 4 * cols.shape[1]
    pad = ((0, 0), (0, wide - cols.shape[1]))
    vals_w, cols_w, valid_w = np.pad(vals, pad), np.pad(cols, pad), np.pad(valid, pad)
    need = int(valid.sum(axis=1).max())
    assert ev._trim_width(vals_w, cols_w, valid_w)[1].shape[1] == max(8, 1 << (need - 1).bit_length())
    r, n, _ = ev.chunk_coupling(z, z, vals, cols, valid, rows, fc_mode="dense", backend="numpy")
    rw, nw, _ = ev.chunk_coupling(z, z, vals_w, cols_w, valid_w, rows, fc_mode="sampled", backend="jax")
    np.testing.assert_array_equal(nw, n)
    np.testing.assert_allclose(rw, r, rtol=0, atol=1e-12, equal_nan=True)
    none = np.zeros_like(valid_w)
    assert ev._trim_width(vals_w, cols_w, none)[1].shape[1] == 8


def test_plan_fc_mode_cost_model():
    kw = {"n_rows": 1000, "n_voxels": 50000, "n_timepoints": 300, "dense_rate": 4e10, "sampled_rate": 2e9}
    assert plan_fc_mode("auto", nnz=1000 * 256, **kw) == "sampled"  # 0.5% < 5% crossover
    assert plan_fc_mode("auto", nnz=1000 * 50000, **kw) == "dense"
    assert plan_fc_mode("auto", nnz=1000 * 2400, **kw) == "sampled"
    assert plan_fc_mode("auto", nnz=1000 * 2600, **kw) == "dense"
    assert plan_fc_mode("dense", nnz=1, **kw) == "dense"
    assert plan_fc_mode("sampled", nnz=1000 * 50000, **kw) == "sampled"
    with pytest.raises(InputError, match="fc_mode"):
        plan_fc_mode("sparse", nnz=1, **kw)


def test_auto_chooses_by_density():
    dense_rate, sampled_rate = ev.fc_rates("numpy", 17)
    assert dense_rate > 0 and sampled_rate > 0
    assert ev.fc_rates("numpy", 17) == (dense_rate, sampled_rate)  # measured once
    crossover = ev.crossover_density("numpy", 17)
    _, _, z, vals, cols, valid, rows = _chunk("random")
    density = valid.sum() / (valid.shape[0] * z.shape[0])
    _, _, mode = ev.chunk_coupling(z, z, vals, cols, valid, rows)
    assert mode == ("sampled" if density < crossover else "dense")
    none = np.zeros_like(valid)
    assert ev.chunk_coupling(z, z, vals, cols, none, rows)[2] == "sampled"


def test_throughput_reports_both_paths():
    data = ev.synthetic_chunk(400, 20, 50, 0.05)
    for mode in ("dense", "sampled"):
        rec = ev.throughput(0.05, mode, data=data, repeats=1)
        assert rec["mode"] == mode and rec["voxels_per_s"] > 0 and rec["nnz_per_row"] == 20
    full = ev.synthetic_chunk(100, 10, 10, 1.0)
    assert full[2].shape == (10, 100) and (full[2] == np.arange(100)).all()


@pytest.mark.parametrize("fc_mode", ["dense", "sampled"])
def test_store_analysis_in_both_modes(tmp_path, fc_mode):
    cohort = rc.simulate.cohort(n_regions=10, n_patients=1, n_controls=0, seed=0)
    path = tmp_path / "vox.h5"
    st = rc.store.from_simulated(cohort, path)
    v = 150
    mask = np.zeros((8, 8, 8), bool)
    mask.flat[:v] = True
    st.write_voxel_mask(mask, np.eye(4))
    xs, mats = [], []
    for k in range(st.n_scans):
        case = CASES[k % 2]
        x, a = _series(case, seed=k), _sc(case, seed=k + 1)
        xs.append(x)
        mats.append(a)
        st.write_voxel_sc(k, a.data, a.indices, a.indptr)
    st.write_array("voxel/bold", np.stack(xs))
    st.close()
    res = cohort_coupling(path, level="voxel", edges="both_nonzero", chunk_size=40, fc_mode=fc_mode)
    assert res.provenance["chunking"]["fc_mode"] == fc_mode
    for k, (x, a) in enumerate(zip(xs, mats)):
        np.testing.assert_allclose(res.coupling[k], _reference(x, a, edges="both_nonzero", method="spearman"),
                                   rtol=0, atol=1e-12, equal_nan=True)
    auto = cohort_coupling(path, level="voxel", edges="both_nonzero", chunk_size=40, name="auto")
    assert auto.coupling.tobytes() == res.coupling.tobytes()


def test_store_analysis_rejects_bad_fc_mode(tmp_path):
    path = tmp_path / "c.h5"
    rc.store.from_simulated(rc.simulate.cohort(n_regions=10, n_patients=1, n_controls=0), path).close()
    with pytest.raises(InputError, match="fc_mode"):
        cohort_coupling(path, level="voxel", fc_mode="sparse")


def test_empty_chunk():
    z = kv.standardize_timeseries(np.random.default_rng(0).standard_normal((10, 8)))
    cols = np.zeros((0, 4), np.int64)
    assert kv.sampled_fc(z[:0], z, cols).shape == (0, 4)
    assert hv.sampled_fc(z[:0], z, cols, np.zeros((0, 4), bool)).shape == (0, 4)


def test_kernel_rejects_bad_fc_mode():
    _, _, z, vals, cols, valid, rows = _chunk("random")
    with pytest.raises(InputError, match="fc_mode"):
        kv.voxel_to_voxel_coupling(z, z, vals, cols, valid, rows, fc_mode="auto")
