"""Voxel-to-voxel coupling (Fotiadis 2023): throughput in voxels/s per backend,
the matrix-multiply share of the time, and a per-voxel scipy loop for scale.

One chunk of C voxels: FC rows ``Z_chunk @ Z_all.T / (T-1)`` (the GEMM),
gathered at the CSR structural non-zeros, then masked Spearman per row.
Full size (RECOUPLE_BENCH=full): V = 50,000 voxels, T = 300, C = 1,000,
K = 256 structural non-zeros per row. The scipy loop runs on 50 voxels.

``test_fc_modes``: voxels/s of the dense (GEMM of whole FC rows) and the
sampled (one dot product per structural non-zero) FC paths at structural
densities 0.1%, 0.512% (256 of 50,000), 1%, 10% and 100% of V, through
:func:`recouple.engine.voxel.chunk_coupling` (what a store run calls per
chunk), plus the path ``fc_mode="auto"`` takes. Chunks hold at most 2**21
structural entries (C = 1,000 rows at low densities, fewer at high ones);
voxels/s is per row, so the figures compare across chunk sizes.

Peak memory of a whole store run (V = 50,000, T = 300, 1,000-voxel chunks):
``python bench/bench_voxel.py --rss [--voxels 50000 --timepoints 300 --chunk 1000]``
builds a one-scan store in a temporary folder (in a separate process) and
reports the peak RSS of a second process that runs the analysis.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import size

V = size(5000, 50000)
T = size(100, 300)
C = size(500, 1000)
K = size(64, 256)
N_LOOP = 50


def _csr(v, k, seed=0):
    rng = np.random.default_rng(seed)
    cols = np.sort(rng.integers(0, v, size=(v, k)), axis=1)
    indptr = np.arange(v + 1, dtype=np.int64) * k
    return rng.lognormal(size=v * k), cols.ravel(), indptr


@pytest.fixture(scope="module")
def data():
    from recouple.kernels.voxel import standardize_timeseries

    rng = np.random.default_rng(0)
    x = rng.standard_normal((V, T)) + 0.3 * rng.standard_normal(T)
    z = standardize_timeseries(x)
    values, cols, _ = _csr(V, K)
    rows = np.arange(C)
    return z, values.reshape(V, K)[:C], cols.reshape(V, K)[:C], np.ones((C, K), bool), rows


def _timed(fn, be, repeats=3):
    be.synchronize(fn())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        be.synchronize(fn())
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.benchmark(group="voxel_to_voxel_coupling")
def test_voxel_to_voxel(benchmark, data, backend):
    from recouple.engine.backend import get_backend
    from recouple.kernels.voxel import fc_rows, voxel_to_voxel_coupling

    be = get_backend(backend)
    z, vals, cols, valid, rows = (be.to_device(a) for a in data)
    kernel = be.compile(voxel_to_voxel_coupling, static_argnames=("method", "edges", "min_edges"))
    gemm = be.compile(fc_rows)
    zc = z[:C]

    def run():
        r, n = kernel(zc, z, vals, cols, valid, rows, method="spearman", edges="both_nonzero", min_edges=3)
        return be.synchronize(r)

    run()  # warm up / compile
    gemm_s = _timed(lambda: gemm(zc, z), be)
    benchmark.pedantic(run, rounds=3, iterations=1)
    total = benchmark.stats.stats.min
    benchmark.extra_info.update(
        backend=backend, device=be.device, dtype="float64", n_voxels=V, n_timepoints=T, chunk=C, nnz_per_row=K,
        voxels_per_s=C / total, gemm_s=gemm_s, matmul_share=gemm_s / total,
    )


@pytest.mark.benchmark(group="voxel_to_voxel_coupling")
def test_voxel_to_voxel_scipy_loop(benchmark, data):
    from scipy import stats

    z, vals, cols, _, _ = data

    def loop():
        out = np.empty(N_LOOP)
        for i in range(N_LOOP):
            f = z[i] @ z.T / (T - 1)
            keep = (cols[i] != i) & (f[cols[i]] != 0)
            out[i] = stats.spearmanr(vals[i, keep], f[cols[i]][keep])[0]
        return out

    benchmark.pedantic(loop, rounds=1, iterations=1)
    benchmark.extra_info.update(backend="scipy-loop", n_voxels=V, n_timepoints=T, voxels=N_LOOP,
                                voxels_per_s=N_LOOP / benchmark.stats.stats.min)


DENSITIES = (0.001, 0.00512, 0.01, 0.1, 1.0)  # 0.512%: 256 of V = 50,000
ENTRIES_PER_CHUNK = 2**21


@pytest.fixture(scope="module")
def mode_data():
    from recouple.engine.voxel import synthetic_chunk

    cache = {}

    def get(density):
        if density not in cache:
            cache.clear()  # one density's arrays at a time
            k = max(1, round(density * V))
            c = int(min(C, max(16, ENTRIES_PER_CHUNK // k)))
            cache[density] = synthetic_chunk(V, T, c, density, seed=0)
        return cache[density]

    return get


@pytest.mark.benchmark(group="voxel_fc_modes")
@pytest.mark.parametrize("fc_mode", ["dense", "sampled", "auto"])
@pytest.mark.parametrize("density", DENSITIES)
def test_fc_modes(benchmark, mode_data, backend, density, fc_mode):
    from recouple.engine.voxel import chunk_coupling, fc_rates

    z, vals, cols, valid, rows = mode_data(density)
    c = cols.shape[0]
    taken = []

    def run():
        r, _, mode = chunk_coupling(z[:c], z, vals, cols, valid, rows, method="spearman", edges="both_nonzero",
                                    min_edges=3, fc_mode=fc_mode, backend=backend)
        taken.append(mode)
        return r

    run()  # warm up / compile / measure the rates
    benchmark.pedantic(run, rounds=3 if density < 0.5 else 1, iterations=1)
    dense_rate, sampled_rate = fc_rates(backend, T)
    benchmark.extra_info.update(
        backend=backend, dtype="float64", n_voxels=V, n_timepoints=T, chunk=c, nnz_per_row=cols.shape[1],
        density=density, fc_mode=fc_mode, mode=taken[-1], voxels_per_s=c / benchmark.stats.stats.min,
        dense_rate_mac_s=dense_rate, sampled_rate_mac_s=sampled_rate, crossover_density=sampled_rate / dense_rate,
    )


# ----------------------------------------------------------------------------- peak RSS of a store run

_BUILD = """
import sys, numpy as np, recouple as rc
sys.path.insert(0, {bench!r})
from bench_voxel import _csr
v, t, k, path = {v}, {t}, {k}, {path!r}
scans = {{"scan_id": ["s1"], "subject": ["s1"], "session": ["1"], "group": ["all"]}}
st = rc.store.create(path, scans=scans, labels=["L_a", "R_a"])
mask = np.zeros((64, 64, 64), bool); mask.flat[:v] = True
st.write_voxel_mask(mask, np.eye(4))
rng = np.random.default_rng(0)
st.write_array("voxel/bold", (rng.standard_normal((1, v, t)) + 0.3 * rng.standard_normal(t)).astype(np.float32))
data, indices, indptr = _csr(v, k)
st.write_voxel_sc(0, data, indices, indptr)
st.close()
"""

_RUN = """
import resource, time, json
from recouple.workflows.coupling import cohort_coupling
t0 = time.perf_counter()
res = cohort_coupling({path!r}, level="voxel", chunk_size={chunk}, memory_limit={limit!r})
wall = time.perf_counter() - t0
print(json.dumps({{"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "wall_s": wall, "voxels_per_s": res.coupling.size / wall,
                  "defined": int((~res.undefined).sum())}}))
"""


def measure_rss(voxels=50000, timepoints=300, chunk=1000, nnz=256, memory_limit="4GB"):
    import json
    import os
    import subprocess
    import sys
    import tempfile

    bench = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "voxels.h5")
        subprocess.run([sys.executable, "-c", _BUILD.format(bench=bench, v=voxels, t=timepoints, k=nnz, path=path)],
                       check=True)
        env = dict(os.environ, RECOUPLE_PROGRESS="0")
        out = subprocess.run([sys.executable, "-c", _RUN.format(path=path, chunk=chunk, limit=memory_limit)],
                             check=True, capture_output=True, text=True, env=env)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(voxels=voxels, timepoints=timepoints, chunk=chunk, nnz_per_row=nnz, memory_limit=memory_limit)
    return result


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rss", action="store_true", help="measure peak RSS of a store run")
    p.add_argument("--voxels", type=int, default=50000)
    p.add_argument("--timepoints", type=int, default=300)
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument("--nnz", type=int, default=256)
    p.add_argument("--memory-limit", default="4GB")
    a = p.parse_args()
    if a.rss:
        print(measure_rss(a.voxels, a.timepoints, a.chunk, a.nnz, a.memory_limit))
