"""Spatial nulls and map-versus-maps association, recouple against its peers.

* ``associate``: 1 map vs G maps (20,000 at full size), 400 parcels, K spins
  (10,000 at full size) per backend; ``gemm`` is the equivalent single
  ``(K, N) x (N, G)`` product; ``neuromaps`` runs
  ``neuromaps.stats.compare_images`` with precomputed nulls on
  ``N_PEER_MAPS`` maps (its time scales linearly with maps and nulls:
  ``extra_info["per_map_s"]`` and ``extrapolated_s`` give the scaling).
* ``spin_vasa`` / ``spin_hungarian``: 400 parcels (Schaefer-400 centroids on
  fsaverage5 when ``../shared/data`` is present), 1,000 rotations at full size.
* ``spin_vertex``: ``alexander_bloch`` vertex spins on fsaverage5 (20,484 vertices).
* ``variogram_base``: 400 parcels; ``variogram_sampled``: 20,484 vertices
  (peak traced memory in ``extra_info["peak_mb"]``).

Peers run on fewer items when a full run would take minutes; the extrapolation
is linear in the number of items and stated in ``extra_info``.
Run ``RECOUPLE_BENCH=full pytest bench/bench_nulls.py`` for the issue's sizes.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import recouple as rc

from conftest import size

N_PARCELS = 400
N_MAPS = size(2_000, 20_000)
N_SPINS = size(1_000, 10_000)
N_PEER_MAPS = size(2, 3)
N_PEER_NULLS = size(200, 1_000)
N_ROT = size(50, 1_000)
N_ROT_PEER = size(20, 100)
N_ROT_VERTEX = size(10, 1_000)
N_ROT_VERTEX_PEER = size(5, 50)
N_SURR = size(50, 1_000)
N_SURR_PEER = size(10, 50)
N_SURR_DENSE = size(5, 100)
N_SURR_DENSE_PEER = size(2, 4)

SHARED = Path(os.environ.get("RECOUPLE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _fsa5():
    from recouple.io import surfaces

    s = SHARED / "surfaces"
    if not s.is_dir():
        rng = np.random.default_rng(0)
        p = rng.standard_normal((20484, 3))
        p = 100 * p / np.linalg.norm(p, axis=1, keepdims=True)
        hemi = np.r_[np.zeros(10242, int), np.ones(10242, int)]
        return p, hemi, rng.integers(1, 401, 20484), "random sphere points"
    lh = surfaces.load_sphere(s / "fsa5_sphere_lh.gii")
    rh = surfaces.load_sphere(s / "fsa5_sphere_rh.gii")
    lab, _ = surfaces.load_labels(SHARED / "parcellations" / "schaefer_400_fsa5.csv")
    return np.vstack([lh, rh]), np.r_[np.zeros(len(lh), int), np.ones(len(rh), int)], lab, "fsaverage5"


@pytest.fixture(scope="module")
def sphere():
    from recouple.io import surfaces

    coords, hemi, lab, source = _fsa5()
    cen, ph, _ = surfaces.parcel_centroids(coords, lab, hemi=hemi)
    return {"coords": coords, "hemi": hemi, "centroids": cen, "parcel_hemi": ph, "source": source}


@pytest.fixture(scope="module")
def assoc_data(sphere):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N_PARCELS)
    Y = rng.standard_normal((N_MAPS, N_PARCELS))
    idx = np.stack([rng.permutation(N_PARCELS) for _ in range(N_SPINS)])
    return x, Y, idx


def _info(benchmark, **kw):
    benchmark.extra_info.update({k: (float(v) if isinstance(v, np.floating) else v) for k, v in kw.items()})


# --------------------------------------------------------------------------- associate
@pytest.mark.benchmark(group="associate")
def test_associate(benchmark, backend, assoc_data):
    x, Y, idx = assoc_data
    rc.nulls.compare_maps(x, Y[:50], nulls=idx[:50], backend=backend)  # warm-up / compile
    res = benchmark.pedantic(lambda: rc.nulls.compare_maps(x, Y, nulls=idx, backend=backend), rounds=2, iterations=1)
    _info(benchmark, backend=backend, n_maps=N_MAPS, n_parcels=N_PARCELS, n_perm=N_SPINS, dtype="float64",
          per_map_s=benchmark.stats.stats.min / N_MAPS, min_p=float(np.nanmin(res.pvalue)))


@pytest.mark.benchmark(group="associate")
def test_associate_gemm_reference(benchmark, assoc_data):
    x, Y, idx = assoc_data
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((N_SPINS, N_PARCELS))
    benchmark.pedantic(lambda: Z @ Y.T, rounds=2, iterations=1)
    _info(benchmark, backend="numpy", what="single (K, N) x (N, G) float64 product", n_maps=N_MAPS,
          n_perm=N_SPINS)


@pytest.mark.benchmark(group="associate")
def test_associate_neuromaps(benchmark, assoc_data):
    nstats = pytest.importorskip("neuromaps.stats")
    x, Y, idx = assoc_data
    nulls = x[idx[:N_PEER_NULLS]].T  # neuromaps orientation (N, n_perm)

    def run():
        return [nstats.compare_images(x, y, nulls=nulls, ignore_zero=False) for y in Y[:N_PEER_MAPS]]

    benchmark.pedantic(run, rounds=1, iterations=1)
    per_map = benchmark.stats.stats.min / N_PEER_MAPS * (N_SPINS / N_PEER_NULLS)
    _info(benchmark, peer="neuromaps.stats.compare_images", maps_run=N_PEER_MAPS, nulls_run=N_PEER_NULLS,
          per_map_s=per_map, extrapolated_s=per_map * N_MAPS,
          extrapolation=f"linear in maps ({N_PEER_MAPS} -> {N_MAPS}) and nulls ({N_PEER_NULLS} -> {N_SPINS})")


# --------------------------------------------------------------------------- parcel spins
@pytest.mark.parametrize("host_loops", ["compiled", "numpy-code"])
@pytest.mark.parametrize("method", ["vasa", "hungarian", "alexander_bloch"])
def test_spin_parcels(benchmark, monkeypatch, method, host_loops, sphere):
    benchmark.group = f"spin_{method}"
    monkeypatch.setenv("RECOUPLE_JIT", "1" if host_loops == "compiled" else "0")
    c, h = sphere["centroids"], sphere["parcel_hemi"]
    rc.nulls.spin_permutations(c, hemi=h, n_perm=2, seed=0, method=method)  # imports, compile, thread pool
    benchmark.pedantic(lambda: rc.nulls.spin_permutations(c, hemi=h, n_perm=N_ROT, seed=0, method=method),
                       rounds=1, iterations=1)
    _info(benchmark, backend="numpy", host_loops=host_loops, n_parcels=len(c), n_rot=N_ROT, data=sphere["source"],
          per_rotation_s=benchmark.stats.stats.min / N_ROT)


@pytest.mark.parametrize("method", ["vasa", "hungarian", "original"])
def test_spin_parcels_neuromaps(benchmark, method, sphere):
    spins = pytest.importorskip("neuromaps.nulls.spins")
    benchmark.group = f"spin_{ {'original': 'alexander_bloch'}.get(method, method)}".replace(" ", "")
    c, h = sphere["centroids"], sphere["parcel_hemi"]
    spins.gen_spinsamples(c, h, n_rotate=1, seed=0, method=method)  # imports
    benchmark.pedantic(lambda: spins.gen_spinsamples(c, h, n_rotate=N_ROT_PEER, seed=0, method=method),
                       rounds=1, iterations=1)
    per = benchmark.stats.stats.min / N_ROT_PEER
    _info(benchmark, peer=f"neuromaps gen_spinsamples(method={method!r})", n_rot_run=N_ROT_PEER,
          per_rotation_s=per, extrapolated_s=per * N_ROT, extrapolation=f"linear in rotations to {N_ROT}")


@pytest.mark.benchmark(group="spin_vertex")
def test_spin_vertex(benchmark, backend, sphere):
    c, h = sphere["coords"], sphere["hemi"]
    rc.nulls.spin_permutations(c, hemi=h, n_perm=2, seed=0, backend=backend)  # index build + compile
    benchmark.pedantic(lambda: rc.nulls.spin_permutations(c, hemi=h, n_perm=N_ROT_VERTEX, seed=0, backend=backend),
                       rounds=1, iterations=1)
    _info(benchmark, backend=backend, n_vertices=len(c), n_rot=N_ROT_VERTEX,
          per_rotation_s=benchmark.stats.stats.min / N_ROT_VERTEX,
          note="grid index built (and cached) in the warm-up call")


@pytest.mark.benchmark(group="spin_vertex")
def test_spin_vertex_numpy_code(benchmark, monkeypatch, sphere):
    """NumPy backend with the compiled host loops off (RECOUPLE_JIT=0)."""
    monkeypatch.setenv("RECOUPLE_JIT", "0")
    c, h = sphere["coords"], sphere["hemi"]
    rc.nulls.spin_permutations(c, hemi=h, n_perm=2, seed=0)  # index build
    benchmark.pedantic(lambda: rc.nulls.spin_permutations(c, hemi=h, n_perm=N_ROT_VERTEX, seed=0), rounds=1,
                       iterations=1)
    _info(benchmark, backend="numpy", host_loops="numpy-code", n_vertices=len(c), n_rot=N_ROT_VERTEX,
          per_rotation_s=benchmark.stats.stats.min / N_ROT_VERTEX)


@pytest.mark.benchmark(group="spin_vertex")
def test_spin_vertex_cold(benchmark, sphere):
    """The same call with the per-sphere grid index built inside the timing
    (what one call in a fresh process costs)."""
    c, h = sphere["coords"], sphere["hemi"]
    rc.nulls.spin_permutations(c[:500], hemi=h[:500], n_perm=1, seed=0)  # imports

    def run():
        rc.nulls._INDEX_CACHE.clear()
        return rc.nulls.spin_permutations(c, hemi=h, n_perm=N_ROT_VERTEX, seed=0)

    benchmark.pedantic(run, rounds=1, iterations=1)
    _info(benchmark, backend="numpy", n_vertices=len(c), n_rot=N_ROT_VERTEX,
          per_rotation_s=benchmark.stats.stats.min / N_ROT_VERTEX,
          note="includes building both hemispheres' index (compiled loops loaded from numba's cache)")


@pytest.mark.benchmark(group="spin_vertex")
def test_spin_vertex_neuromaps(benchmark, sphere):
    spins = pytest.importorskip("neuromaps.nulls.spins")
    c, h = sphere["coords"], sphere["hemi"]
    spins.gen_spinsamples(c, h, n_rotate=1, seed=0)  # imports
    benchmark.pedantic(lambda: spins.gen_spinsamples(c, h, n_rotate=N_ROT_VERTEX_PEER, seed=0), rounds=1,
                       iterations=1)
    per = benchmark.stats.stats.min / N_ROT_VERTEX_PEER
    _info(benchmark, peer="neuromaps gen_spinsamples (alexander_bloch default, check_duplicates=True)",
          n_rot_run=N_ROT_VERTEX_PEER, per_rotation_s=per, extrapolated_s=per * N_ROT_VERTEX,
          extrapolation="linear in rotations (the duplicate check grows with rotations, so this underestimates)")


# --------------------------------------------------------------------------- variogram
@pytest.fixture(scope="module")
def parcel_map(sphere):
    c = sphere["centroids"]
    D = rc.nulls.distance(c)
    x = np.sin(c[:, 0] / 30) + np.cos(c[:, 2] / 40) + 0.2 * np.random.default_rng(0).standard_normal(len(c))
    return x, D


@pytest.mark.benchmark(group="variogram_base")
def test_variogram_base(benchmark, backend, parcel_map):
    x, D = parcel_map
    rc.nulls.variogram_surrogates(x, D, n_perm=4, seed=0, backend=backend)
    benchmark.pedantic(lambda: rc.nulls.variogram_surrogates(x, D, n_perm=N_SURR, seed=0, backend=backend),
                       rounds=1, iterations=1)
    _info(benchmark, backend=backend, n_parcels=len(x), n_surrogates=N_SURR,
          per_surrogate_s=benchmark.stats.stats.min / N_SURR)


@pytest.mark.benchmark(group="variogram_base")
def test_variogram_base_brainsmash(benchmark, parcel_map):
    mapgen = pytest.importorskip("brainsmash.mapgen")
    x, D = parcel_map
    benchmark.pedantic(lambda: mapgen.Base(x, D, seed=0, n_jobs=2)(N_SURR_PEER, batch_size=min(N_SURR_PEER, 50)),
                       rounds=1, iterations=1)
    per = benchmark.stats.stats.min / N_SURR_PEER
    _info(benchmark, peer="brainsmash Base (n_jobs=2)", n_run=N_SURR_PEER, per_surrogate_s=per,
          extrapolated_s=per * N_SURR, extrapolation=f"linear in surrogates to {N_SURR} (includes setup)")


@pytest.fixture(scope="module")
def dense_map(sphere):
    c, h = sphere["coords"], sphere["hemi"]
    x = np.sin(c[:, 0] / 30) + np.cos(c[:, 2] / 40)
    d, idx = rc.nulls.distance(c, knn=1000)
    return x, d, idx


@pytest.mark.benchmark(group="variogram_sampled")
def test_variogram_sampled(benchmark, dense_map):
    x, d, idx = dense_map

    def run():
        tracemalloc.start()
        out = rc.nulls.variogram_surrogates(x, d, index=idx, mode="sampled", n_perm=N_SURR_DENSE, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out, peak

    _, peak = benchmark.pedantic(run, rounds=1, iterations=1)
    _info(benchmark, backend="numpy", n_vertices=len(x), knn=1000, n_surrogates=N_SURR_DENSE,
          per_surrogate_s=benchmark.stats.stats.min / N_SURR_DENSE, peak_mb=peak / 2**20,
          inputs_mb=(d.nbytes + idx.nbytes) / 2**20)


@pytest.mark.benchmark(group="variogram_sampled")
def test_variogram_sampled_brainsmash(benchmark, dense_map, tmp_path):
    mapgen = pytest.importorskip("brainsmash.mapgen")
    x, d, idx = dense_map

    def run():
        tracemalloc.start()
        t0 = time.perf_counter()
        gen = mapgen.Sampled(x, d, idx, seed=0, knn=1000)
        out = gen(N_SURR_DENSE_PEER)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out, peak, time.perf_counter() - t0

    _, peak, _ = benchmark.pedantic(run, rounds=1, iterations=1)
    per = benchmark.stats.stats.min / N_SURR_DENSE_PEER
    _info(benchmark, peer="brainsmash Sampled (same knn=1000 neighbour lists)", n_run=N_SURR_DENSE_PEER,
          per_surrogate_s=per, extrapolated_s=per * N_SURR_DENSE, peak_mb=peak / 2**20,
          extrapolation=f"linear in surrogates to {N_SURR_DENSE}")
