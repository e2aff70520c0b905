"""``recouple bench``: time a representative set of operations on every usable
backend and against the peer doing the same job, in one run.

Each operation reports wall time (best of ``repeats``, after one warm-up call
whose time is kept as ``first_call_s``: on JAX it holds the compilation),
throughput, the speed-up over the NumPy baseline (``speedup_vs_numpy``; on
every row of an operation that runs on both, ``jax_vs_numpy`` = NumPy time /
JAX time), the speed-up over the peer (when the peer is installed; peers are
timed on fewer items and scaled linearly, which is stated in the
``peer_note``), and for the matrix-bound kernels the GEMM fraction: their
essential float64 flops / time / this machine's float64 matrix-multiply rate,
timed before and after each repeat of the operation (the median of the
repeats' ratios), so that both meet the same load on a shared machine.

``voxel_fc`` sweeps the voxel FC paths (:func:`recouple.engine.voxel.throughput`):
dense, sampled and auto at structural densities 0.1%, 1%, 10% and 100%.
``float32_option`` times the float32 option of association and the
permutation tests against float64 on the same data. :mod:`.benchreport`
renders a run as text or as the README's speed section.
"""

from __future__ import annotations


import datetime
import multiprocessing
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.stats as ss
from scipy import ndimage

from .. import coupling, genes, graph, nulls, permutation
from .. import store as cohort_store
from ..engine.backend import available_backends, get_backend
from ..engine import voxel as voxel_engine
from ..engine.perf import measure_gemm_gflops
from ..kernels import pvalues as _kp
from ..genes import load_expression
from ..host.jit import describe as describe_host_loops
from ..kernels.coupling import communication_predictors
from ..kernels.voxel import standardize_timeseries, voxel_to_voxel_coupling
from ..simulate import cohort, gene_sets, region_centroids, write_gmt
from ..study import load_config, write_config
from . import pipeline
from .benchreport import _extra_lines, _pct
from .demo import demo_config


@dataclass
class Operation:
    name: str
    setup: Callable[[bool], dict]
    run: Callable[[dict, str], object]
    size: Callable[[dict], str]
    items: Callable[[dict], tuple[float, str]]
    flops: Callable[[dict], float] | None = None
    peer: Callable[[dict], tuple[float, str]] | None = None
    backends: tuple[str, ...] = ("numpy", "jax", "cupy")
    extra: Callable[[dict, str], dict] | None = None  # after timing: details for the row (e.g. per-step times)
    teardown: Callable[[dict], None] | None = None
    warmup: bool = True
    # instead of timing ``run``: (data, backend, repeats) -> one dict per variant with
    # variant, size, time_s, first_call_s, items, unit, flops (or None), extra
    measure: Callable[[dict, str, int], list] | None = None
    # set up, timed and torn down in a fresh process (as `recouple run` is), so that what the
    # operations before it left in this process (caches, threads, a grown heap) does not count
    isolated: bool = False


@dataclass
class BenchRow:
    operation: str
    size: str
    backend: str
    time_s: float
    throughput: float
    unit: str
    speedup_vs_numpy: float | None = None
    speedup_vs_peer: float | None = None
    peer: str | None = None
    peer_note: str | None = None
    gemm_fraction: float | None = None
    extra: dict = field(default_factory=dict)
    variant: str | None = None  # e.g. "dense, density 1%" for voxel_fc
    peer_time_s: float | None = None  # the peer's (scaled) time for the same items
    first_call_s: float | None = None  # the warm-up call (JAX: includes compilation)
    jax_vs_numpy: float | None = None  # NumPy time / JAX time of this operation (variant)


def _best(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _peer_time(fn, n_items_timed, n_items_full):
    t = _best(fn, 1)
    return t * n_items_full / n_items_timed


# --------------------------------------------------------------------------- operations
# Peer packages (netneurotools, neuromaps, brainsmash, statsmodels, nilearn) are
# optional: each peer timer imports its package lazily and returns None without it.

def _nodal_setup(quick):
    s, n = (16, 100) if quick else (200, 400)
    sim = cohort(n_regions=n, n_patients=s // 2, n_controls=0, seed=0)
    return {"sc": sim.sc[:s], "fc": sim.fc[:s]}


def _nodal_peer(d):
    sc, fc = d["sc"], d["fc"]
    k = 2

    def loop():
        for s in range(k):
            for i in range(sc.shape[1]):
                j = np.nonzero(sc[s, i])[0]
                j = j[j != i]
                ss.spearmanr(sc[s, i, j], fc[s, i, j])

    return _peer_time(loop, k, sc.shape[0]), f"scipy.stats.spearmanr loop, timed on {k} subjects, scaled"


def _graph_setup(quick):
    s, n = (4, 60) if quick else (20, 400)
    sim = cohort(n_regions=n, n_patients=max(1, s // 2), n_controls=0, seed=1)
    return {"sc": sim.sc[:s]}


def _graph_run(d, backend):
    paths = graph.shortest_paths(d["sc"], backend=backend)
    graph.search_information(d["sc"], paths=paths, backend=backend)
    graph.communicability(d["sc"], backend=backend)


def _graph_peer(d):
    try:
        from netneurotools import metrics
    except Exception:
        return None
    sc = d["sc"]

    def one():
        w = sc[0]
        length = -np.log(w / (w.max() + 1), where=w > 0, out=np.full_like(w, np.inf))
        metrics.distance_wei_floyd(length)
        metrics.communicability_wei(w)
        metrics.search_information(w, length)

    return _peer_time(one, 1, sc.shape[0]), "netneurotools.metrics per subject, timed on 1 subject, scaled"


def _voxel_setup(quick):
    v, t, c, k = (4000, 100, 500, 64) if quick else (50000, 300, 1000, 256)
    rng = np.random.default_rng(0)
    z = standardize_timeseries(rng.standard_normal((v, t)) + 0.3 * rng.standard_normal(t))
    cols = np.sort(rng.integers(0, v, size=(c, k)), axis=1)
    return {"z": z, "vals": rng.lognormal(size=(c, k)), "cols": cols, "valid": np.ones((c, k), bool),
            "rows": np.arange(c), "c": c}


def _voxel_run(d, backend):
    be = get_backend(backend)
    fn = be.compile(voxel_to_voxel_coupling, static_argnames=("method", "edges", "min_edges"))
    key = ("dev", backend)
    if key not in d:
        d[key] = tuple(be.to_device(d[k]) for k in ("z", "vals", "cols", "valid", "rows"))
    z, vals, cols, valid, rows = d[key]
    r, _ = fn(z[: d["c"]], z, vals, cols, valid, rows, method="spearman", edges="both_nonzero", min_edges=3)
    return be.synchronize(r)


def _spin_setup(quick):
    # Parcel centroids as on FreeSurfer spheres, where each hemisphere's sphere
    # is a whole sphere: per hemisphere n/2 quasi-uniform points (Fibonacci
    # lattice, jittered) with a medial-wall cap left empty, the right
    # hemisphere mirrored -- the layout of Schaefer-400 centroids on
    # fsaverage (bench/bench_nulls.py uses the real ones when present).
    n, k = (100, 100) if quick else (400, 1000)
    h = n // 2
    v = int(h / 0.9) + 1
    i = np.arange(v) + 0.5
    z = 1 - 2 * i / v
    phi = np.pi * (1 + 5**0.5) * i
    p = np.column_stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z])
    p = p[p[:, 0] < 0.8][:h]  # the medial wall: no parcels in a cap around +x
    p = p + np.random.default_rng(0).normal(scale=0.02, size=p.shape)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return {"coords": np.vstack([p, p * [-1, 1, 1]]), "hemi": np.repeat([0, 1], h), "n_perm": k}


def _spin_run(method):
    def run(d, backend):
        return nulls.spin_permutations(d["coords"], n_perm=d["n_perm"], method=method, hemi=d["hemi"], seed=0,
                                       backend=backend)

    return run


def _spin_peer(method, fraction=20):
    def peer(d):
        try:
            from neuromaps.nulls.spins import gen_spinsamples
        except Exception:
            return None
        k = max(2, d["n_perm"] // fraction)
        gen_spinsamples(d["coords"], d["hemi"], n_rotate=1, method=method, seed=0)  # imports

        def run():
            gen_spinsamples(d["coords"], d["hemi"], n_rotate=k, method=method, seed=0)

        return _peer_time(run, k, d["n_perm"]), f"neuromaps gen_spinsamples(method={method!r}), {k} rotations, scaled"

    return peer


def _vertex_spin_setup(quick):
    # fsaverage5-sized spheres (10,242 vertices a hemisphere) of quasi-uniform
    # points (Fibonacci lattice), radius 100 as FreeSurfer's sphere
    v, k = (2562, 20) if quick else (10242, 1000)
    i = np.arange(v) + 0.5
    z = 1 - 2 * i / v
    phi = np.pi * (1 + 5**0.5) * i
    p = 100 * np.column_stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z])
    return {"coords": np.vstack([p, p * [-1, 1, 1]]), "hemi": np.repeat([0, 1], v), "n_perm": k}


# Voxel FC paths: one chunk of structural rows at each density, V voxels of T
# time points (the standardised series shared by every density), through
# recouple.engine.voxel.throughput -- what a store run calls per chunk. A chunk
# holds at most ``_VOXEL_ENTRIES`` structural entries (C rows at low densities,
# fewer at high ones); voxels/s is per row, so the densities compare.

VOXEL_DENSITIES = (0.001, 0.01, 0.1, 1.0)
VOXEL_MODES = ("dense", "sampled", "auto")


def _voxel_fc_setup(quick):
    v, t, c, entries = (4000, 100, 200, 2**17) if quick else (50000, 300, 1000, 2**21)
    chunks = {}
    z = None
    for density in VOXEL_DENSITIES:
        k = max(1, min(v, round(density * v)))
        zd, vals, cols, valid, rows = voxel_engine.synthetic_chunk(v, t, max(1, min(c, entries // k)), density,
                                                                   seed=0)
        z = zd if z is None else z  # the same seed draws the same series for every density
        chunks[density] = (vals, cols, valid, rows)
    return {"z": z, "chunks": chunks}


def _voxel_fc_measure(d, backend, repeats):
    z = d["z"]
    v, t = z.shape
    out = []
    for density in VOXEL_DENSITIES:
        vals, cols, valid, rows = d["chunks"][density]
        c, k = cols.shape
        times = {}
        for mode in VOXEL_MODES:
            t0 = time.perf_counter()
            res = voxel_engine.throughput(density, mode, backend=backend, repeats=repeats,
                                          data=(z, vals, cols, valid, rows))
            total = time.perf_counter() - t0
            times[mode] = res["seconds"]
            extra = {"density": density, "fc_mode": mode, "path": res["mode"], "nnz_per_row": k, "chunk": c,
                     "n_voxels": v, "n_timepoints": t}
            if mode != "dense":
                extra["vs_dense"] = times["dense"] / res["seconds"]
            out.append({
                "variant": f"{mode}, density {_pct(density)}",
                "size": f"{c} voxels of V = {v}, T = {t}, {k} non-zeros a row (density {_pct(density)})",
                "time_s": res["seconds"], "first_call_s": max(total - repeats * res["seconds"], res["seconds"]),
                "items": c, "unit": "voxels/s",
                # the dense path's essential work: whole FC rows by one GEMM
                "flops": 2.0 * c * v * t if res["mode"] == "dense" else None,
                "extra": extra})
    return out


def _communication_setup(quick):
    s, n = (4, 60) if quick else (20, 400)
    sim = cohort(n_regions=n, n_patients=max(1, s // 2), n_controls=0, seed=2)
    x = communication_predictors(sim.sc[:s], sim.centroids, **graph.kernel_routes("numpy"))
    return {"sc": sim.sc[:s], "fc": sim.fc[:s], "x": x,
            "predictors": {"distance": x[0, 0], "path_length": x[:, 1], "communicability": x[:, 2]}}


def _communication_run(d, backend):
    return coupling.communication(d["sc"], d["fc"], predictors=d["predictors"], backend=backend)


def _communication_peer(d):
    try:
        import statsmodels.api as sm
    except Exception:
        return None
    x, fc = d["x"], d["fc"]
    n = fc.shape[-1]

    def one():
        for i in range(n):
            rows = np.arange(n) != i
            sm.OLS(fc[0, rows, i], sm.add_constant(x[0][:, rows, i].T)).fit().rsquared_adj

    return _peer_time(one, 1, fc.shape[0]), "statsmodels OLS per node (same predictors), timed on 1 subject, scaled"


def _vario_setup(quick):
    n, k = (100, 100) if quick else (400, 1000)
    c = region_centroids(n, seed=0)
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    rng = np.random.default_rng(0)
    x = np.exp(-d / 30) @ rng.standard_normal(n)
    return {"x": x, "dist": d, "n_perm": k}


def _vario_run(d, backend):
    return nulls.variogram_surrogates(d["x"], d["dist"], n_perm=d["n_perm"], seed=0, backend=backend)


def _vario_peer(d):
    try:
        from brainsmash.mapgen.base import Base
    except Exception:
        return None
    k = max(5, d["n_perm"] // 100)
    gen = Base(d["x"], d["dist"], seed=0)
    return _peer_time(lambda: gen(n=k), k, d["n_perm"]), f"brainsmash Base, {k} surrogates, scaled"


def _assoc_setup(quick):
    n, g, k = (100, 500, 500) if quick else (400, 20000, 10000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n)
    idx = np.argsort(rng.random((k, n)), axis=1)
    return {"x": x, "Y": rng.standard_normal((g, n)), "nulls": idx}


def _assoc_run(d, backend):
    return nulls.compare_maps(d["x"], d["Y"], nulls=d["nulls"], method="pearson", backend=backend,
                              precision=d.get("precision", "float64"))


def _assoc_flops(d):
    k, n = d["nulls"].shape
    return 2.0 * k * n * d["Y"].shape[0]


def _assoc_peer(d):
    try:
        from neuromaps.stats import compare_images
    except Exception:
        return None
    m = 2
    null_cols = d["x"][d["nulls"]].T  # neuromaps orientation (N, n_perm)

    def run():
        for g in range(m):
            compare_images(d["x"], d["Y"][g], metric="pearsonr", nulls=null_cols, ignore_zero=False)

    return (_peer_time(run, m, d["Y"].shape[0]),
            f"neuromaps.stats.compare_images with precomputed nulls, {m} maps, scaled")


def _signflip_setup(quick):
    n, e, k = (30, 2000, 500) if quick else (100, 79800, 10000)
    rng = np.random.default_rng(0)
    return {"pre": rng.standard_normal((n, e)), "post": rng.standard_normal((n, e)) + 0.1, "n_perm": k}


def _signflip_run(d, backend):
    return permutation.paired(d["pre"], d["post"],
                              resampling=permutation.Resampling(n_perm=d["n_perm"], seed=0, backend=backend,
                                                                precision=d.get("precision", "float64")))


def _signflip_flops(d):
    n, e = d["pre"].shape
    return 2.0 * d["n_perm"] * n * e


def _signflip_peer(d):
    try:
        from nilearn.mass_univariate import permuted_ols
    except Exception:
        return None
    k = max(50, d["n_perm"] // 50)
    diff = d["post"] - d["pre"]
    n = diff.shape[0]

    def run():
        permuted_ols(np.ones((n, 1)), diff, model_intercept=False, n_perm=k, two_sided_test=True, n_jobs=2,
                     random_state=0, verbose=0)

    return _peer_time(run, k, d["n_perm"]), f"nilearn permuted_ols (n_jobs=2), {k} permutations, scaled"


def _fl_setup(quick):
    n, v, k = (40, 2000, 200) if quick else (200, 50000, 5000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 4))
    y = rng.standard_normal((n, v)) + 0.2 * x[:, :1]
    return {"y": y, "design": np.column_stack([np.ones(n), x]), "n_perm": k}


def _fl_run(d, backend):
    c = np.zeros(d["design"].shape[1])
    c[1] = 1.0
    return permutation.glm(d["y"], d["design"], c,
                           resampling=permutation.Resampling(n_perm=d["n_perm"], seed=0, backend=backend,
                                                             precision=d.get("precision", "float64")))


def _fl_flops(d):
    # Per permutation the t statistic needs the permuted residuals projected on every non-constant
    # column of the full design: the effect (numerator) and each nuisance column (the residual sum
    # of squares of the full model). The intercept's projection is identically zero (the residuals
    # of a model with an intercept sum to zero under any permutation), so it costs nothing.
    n, v = d["y"].shape
    rows = d["design"].shape[1] - 1
    return 2.0 * rows * d["n_perm"] * n * v


PRECISION_TESTS = ("association", "signflip_paired", "freedman_lane_glm")


def _precision_setup(quick):
    # each test's data as its own row sets it up, with the length of its dot products (the tie band's n)
    out = {"association": _assoc_setup(quick), "signflip_paired": _signflip_setup(quick),
           "freedman_lane_glm": _fl_setup(quick)}
    out["association"]["n_terms"] = out["association"]["x"].size
    out["signflip_paired"]["n_terms"] = out["signflip_paired"]["pre"].shape[0]
    out["freedman_lane_glm"]["n_terms"] = out["freedman_lane_glm"]["y"].shape[0]
    return out


def _precision_measure(d, backend, repeats):
    """The float32 option of map association and the permutation tests
    against float64 on the same data and resamples (the rows'
    own run functions with ``precision`` set): time, float32 GEMM
    fraction, and how many p-values moved (by how many null draws)."""
    gemm32 = measure_gemm_gflops(get_backend(backend), n=1024, dtype=np.float32, repeats=3)
    out = []
    for name in PRECISION_TESTS:
        op = next(o for o in OPERATIONS if o.name == name)
        timed = {}
        for precision in ("float64", "float32"):
            data = dict(d[name], precision=precision)
            t0 = time.perf_counter()
            res = op.run(data, backend)
            first = time.perf_counter() - t0
            timed[precision] = (_best(lambda: op.run(data, backend), repeats), first, res)
        (t64, _, r64), (t32, first32, r32) = timed["float64"], timed["float32"]
        k = r64.n_perm
        moved = np.round((r32.pvalue - r64.pvalue) * (k + 1))
        items, unit = op.items(data)
        out.append({
            "variant": name, "size": op.size(data), "time_s": t32, "first_call_s": first32,
            "items": items, "unit": unit, "flops": None,
            "extra": {"float64_s": t64, "float32_over_float64": t64 / t32,
                      "gemm32_fraction": op.flops(data) / t32 / (gemm32 * 1e9), "gemm32_gflops": gemm32,
                      "pvalues_moved": int(np.count_nonzero(moved)), "max_draws_moved": int(moved.max()),
                      "min_draws_moved": int(moved.min()), "n_elements": int(moved.size),
                      "tie_rtol": _kp.tie_rtol("float32", data["n_terms"])}})
    return out


def _tfce_setup(quick):
    shape, n, k = ((20, 24, 20), 12, 20) if quick else ((91, 109, 91), 20, 10)
    rng = np.random.default_rng(0)
    vols = ndimage.gaussian_filter(rng.standard_normal((n,) + shape), sigma=(0, 2, 2, 2))
    mask = np.ones(shape, bool)
    return {"data": vols.reshape(n, -1) + 0.05, "mask": mask, "n_perm": k}


def _tfce_run(d, backend):
    return permutation.one_sample(d["data"], resampling=permutation.Resampling(n_perm=d["n_perm"], seed=0,
                                                                                backend=backend),
                                  spatial=permutation.Spatial(tfce=True, mask=d["mask"]))


def _pls_setup(quick):
    n, g, b = (83, 2000, 100) if quick else (83, 15633, 1000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, g))
    y = x[:, :20].mean(axis=1) + rng.standard_normal(n)
    labels = [f"r{i}" for i in range(n)]
    expr = load_expression(x, regions=labels, genes=[f"G{i}" for i in range(g)])
    return {"expr": expr, "y": y, "labels": labels, "n_boot": b, "x": x}


def _pls_run(d, backend):
    return genes.pls(d["y"], d["expr"], n_components=1, n_boot=d["n_boot"], seed=0, labels=d["labels"],
                     backend=backend)


def _pls_flops(d):
    # the Gram form of the bootstrap (kernels.genes): A = X Xᵀ (N² G), per resample
    # and component two N x N products (the dual fit and the scatter), the
    # per-gene quadratic form (N² G per component); one component here
    n, g = d["x"].shape
    return 2.0 * n * n * g * 2 + 4.0 * n * n * d["n_boot"]


def _pls_peer(d):
    # The per-resample refit loop of pyls / imaging-transcriptomics, written out
    # (pyls itself is not installable from PyPI).
    x, y = d["x"], d["y"]
    k = max(5, d["n_boot"] // 50)
    rng = np.random.default_rng(0)

    def loop():
        for _ in range(k):
            i = rng.integers(0, x.shape[0], x.shape[0])
            xb = (x[i] - x[i].mean(0)) / x[i].std(0, ddof=1)
            yb = (y[i] - y[i].mean()) / y[i].std(ddof=1)
            u, s, vt = np.linalg.svd(xb.T @ yb[:, None], full_matrices=False)
            w = u[:, 0] / np.linalg.norm(xb @ u[:, 0])
            _ = xb @ w

    return _peer_time(loop, k, d["n_boot"]), f"per-resample SIMPLS refit loop (pyls-style), {k} resamples, scaled"


def _enrich_setup(quick):
    n, g, c, k = (83, 2000, 50, 500) if quick else (83, 15633, 500, 10000)
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(g)]
    sets = {f"C{j}": list(rng.choice(genes, size=int(rng.integers(10, 200)), replace=False)) for j in range(c)}
    labels = [f"r{i}" for i in range(n)]
    expr = load_expression(rng.standard_normal((n, g)), regions=labels, genes=genes)
    idx = np.argsort(rng.random((k, n)), axis=1)
    return {"expr": expr, "y": rng.standard_normal(n), "sets": sets, "labels": labels, "nulls": idx}


def _enrich_run(d, backend):
    return genes.enrichment(d["y"], d["expr"], d["sets"], nulls=d["nulls"], labels=d["labels"], backend=backend)


# The whole study (`recouple run`) on a simulated cohort: every step timed by
# the pipeline (StudyResult.timings) and each compute step against its bare
# kernel -- the same public function on the same arrays in memory, without
# the store, the step's bookkeeping (hashes, saved arrays, tables) or config.

def _study_setup(quick):
    if quick:
        n, pat, con, k, nulls_k, g, boot, sets = 60, 12, 4, 200, 100, 300, 50, 20
    else:
        n, pat, con, k, nulls_k, g, boot, sets = 400, 400, 100, 10000, 10000, 15633, 1000, 500
    folder = Path(tempfile.mkdtemp(prefix="recouple-bench-study-"))
    sim = cohort(n_regions=n, n_patients=pat, n_controls=con, n_genes=g, seed=0)
    cohort_store.from_simulated(sim, folder / "cohort.h5", overwrite=True).close()
    write_gmt(folder / "gene_sets.gmt", gene_sets(sim, n_random=sets - 2, seed=0))
    cfg = demo_config(n_perm=k, n_nulls=nulls_k, seed=0, backend="numpy")
    cfg["association"]["pls_bootstrap"] = boot
    return {"folder": folder, "sim": sim, "cfg": cfg, "n_sets": sets, "runs": []}


def _study_run(d, backend):
    cfg = dict(d["cfg"], compute={"backend": backend})
    path = write_config(d["folder"] / f"STUDY-{backend}.toml", cfg)
    res = pipeline.execute(load_config(path), overwrite=True, log=lambda line: None)
    d["runs"].append((backend, dict(res.timings), res))
    return res


def _study_kernels(d, backend):
    """Per-step times of the fastest study run on ``backend`` and each step's bare kernel."""
    runs = [r for r in d["runs"] if r[0] == backend]
    steps, res = min(((t, r) for _, t, r in runs), key=lambda tr: sum(tr[0].values()))
    cfg, sim = d["cfg"], d["sim"]
    cp, perm, ncfg, assoc = cfg["coupling"], cfg["permutation"], cfg["nulls"], cfg["association"]
    coup = res.steps["coupling"]
    scans, cvals, labels, regions = coup["scans"], coup["coupling"], coup["labels"], coup["regions"]
    bare = {}
    t0 = time.perf_counter()
    nodal = coupling.nodal(sim.sc, sim.fc, method=cp["method"], edges=cp["edges"], backend=backend)
    bare["coupling"] = time.perf_counter() - t0
    np.testing.assert_array_equal(nodal.coupling, cvals)  # the same values as the step's
    full = load_config(d["folder"] / f"STUDY-{backend}.toml")
    for c in full["contrasts"]:
        t0 = time.perf_counter()
        pipeline._run_contrast(c, scans, cvals, full["permutation"], backend)
        bare[f"contrast_{c['name']}"] = time.perf_counter() - t0
    clin = full["clinical"]
    pre = np.flatnonzero((scans["group"] == clin["group"]) & (scans["session"] == clin["sessions"][0]))
    post = np.flatnonzero((scans["group"] == clin["group"]) & (scans["session"] == clin["sessions"][1]))
    score = scans[clin["score"]].to_numpy(dtype=float)
    t0 = time.perf_counter()
    permutation.correlation(score[pre] - score[post], cvals[post] - cvals[pre], method=clin["method"],
                            resampling=permutation.Resampling(n_perm=int(perm["n_perm"]), seed=int(perm["seed"]),
                                                              backend=backend))
    bare["clinical"] = time.perf_counter() - t0
    hemi = np.where(regions["hemisphere"].astype(str).str.upper().str.startswith("R"), 1, 0)
    coords = pipeline.sphere_coords(regions[["x", "y", "z"]].to_numpy(dtype=float))
    t0 = time.perf_counter()
    idx = nulls.spin_permutations(coords, hemi=hemi, n_perm=int(ncfg["n_perm"]), seed=int(ncfg["seed"]),
                                  method=ncfg["method"])
    bare["nulls"] = time.perf_counter() - t0
    np.testing.assert_array_equal(idx, res.steps["nulls"]["indices"])
    y = np.asarray(res.steps["contrasts"][assoc["target"]]["statistic"], dtype=float)
    expr = load_expression(sim.expression, regions=list(labels), genes=[str(g) for g in sim.genes])
    t0 = time.perf_counter()
    genes.associate(y, expr, labels=labels, nulls=idx, method=assoc["method"], backend=backend)
    bare["genes:associate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    genes.pls(y, expr, n_components=int(assoc["pls_components"]), n_boot=int(assoc["pls_bootstrap"]), nulls=idx,
              seed=int(ncfg["seed"]), labels=labels, backend=backend)
    bare["genes:pls"] = time.perf_counter() - t0
    bare["genes"] = bare["genes:associate"] + bare["genes:pls"]
    sets = genes.load_gene_sets(d["folder"] / "gene_sets.gmt")
    t0 = time.perf_counter()
    genes.enrichment(y, expr, sets, nulls=idx, labels=labels, min_size=int(cfg["enrichment"]["min_size"]),
                     max_size=int(cfg["enrichment"]["max_size"]), backend=backend)
    bare["enrichment"] = time.perf_counter() - t0
    ratio = {k: steps[k] / bare[k] for k in steps if k in bare and bare[k] > 0}
    return {"steps_s": steps, "bare_s": bare, "step_over_bare": ratio, "study_s": sum(steps.values())}


def _study_size(d):
    sim, cfg = d["sim"], d["cfg"]
    pat = int(np.sum((np.asarray(sim.scans["group"]) == "patient") & (np.asarray(sim.scans["session"]) == "pre")))
    return (f"{sim.n_scans} scans x {sim.n_regions} regions ({pat} patients pre/post + "
            f"{(sim.n_scans - 2 * pat) // 2} controls twice), {len(cfg['contrasts'])} contrasts x "
            f"{cfg['permutation']['n_perm']} permutations, {len(sim.genes)} genes x {cfg['nulls']['n_perm']} "
            f"{cfg['nulls']['method']} spins, PLS {cfg['association']['pls_bootstrap']} bootstraps, "
            f"{d['n_sets']} gene sets")


OPERATIONS: list[Operation] = [
    Operation("nodal_coupling", _nodal_setup,
              lambda d, b: coupling.nodal(d["sc"], d["fc"], backend=b),
              lambda d: f"{d['sc'].shape[0]} subjects x {d['sc'].shape[1]} regions",
              lambda d: (d["sc"].shape[0], "subjects/s"), peer=_nodal_peer),
    Operation("communication_predictors", _graph_setup, _graph_run,
              lambda d: f"{d['sc'].shape[0]} subjects x {d['sc'].shape[1]} regions (SPL + CMC + SRI)",
              lambda d: (d["sc"].shape[0], "subjects/s"), peer=_graph_peer),
    Operation("voxel_coupling", _voxel_setup, _voxel_run,
              lambda d: f"{d['c']} voxels of V = {d['z'].shape[0]}, T = {d['z'].shape[1]}",
              lambda d: (d["c"], "voxels/s"),
              flops=lambda d: 2.0 * d["c"] * d["z"].shape[0] * d["z"].shape[1]),
    Operation("voxel_fc", _voxel_fc_setup, None,
              lambda d: f"V = {d['z'].shape[0]}, T = {d['z'].shape[1]}, densities "
                        + ", ".join(_pct(x) for x in VOXEL_DENSITIES),
              lambda d: (1, "voxels/s"), backends=("numpy", "jax", "cupy"), measure=_voxel_fc_measure),
    Operation("communication_model", _communication_setup, _communication_run,
              lambda d: f"{d['fc'].shape[0]} subjects x {d['fc'].shape[1]} regions, 3 predictors given",
              lambda d: (d["fc"].shape[0], "subjects/s"), peer=_communication_peer),
    Operation("spins_vasa", _spin_setup, _spin_run("vasa"),
              lambda d: f"{d['coords'].shape[0]} parcels x {d['n_perm']} rotations",
              lambda d: (d["n_perm"], "rotations/s"), peer=_spin_peer("vasa"), backends=("numpy",)),
    Operation("spins_hungarian", _spin_setup, _spin_run("hungarian"),
              lambda d: f"{d['coords'].shape[0]} parcels x {d['n_perm']} rotations",
              lambda d: (d["n_perm"], "rotations/s"), peer=_spin_peer("hungarian"), backends=("numpy",)),
    Operation("spins_vertex", _vertex_spin_setup, _spin_run("alexander_bloch"),
              lambda d: f"{d['coords'].shape[0]} vertices x {d['n_perm']} rotations (grid index built in warm-up)",
              lambda d: (d["n_perm"], "rotations/s"), peer=_spin_peer("original", fraction=50)),
    Operation("variogram_surrogates", _vario_setup, _vario_run,
              lambda d: f"{d['x'].size} parcels x {d['n_perm']} surrogates",
              lambda d: (d["n_perm"], "surrogates/s"), peer=_vario_peer),
    Operation("association", _assoc_setup, _assoc_run,
              lambda d: f"1 map vs {d['Y'].shape[0]} maps, {d['x'].size} parcels, {d['nulls'].shape[0]} nulls",
              lambda d: (d["Y"].shape[0], "maps/s"), flops=_assoc_flops, peer=_assoc_peer),
    Operation("signflip_paired", _signflip_setup, _signflip_run,
              lambda d: f"{d['pre'].shape[0]} pairs x {d['pre'].shape[1]} edges x {d['n_perm']} flips",
              lambda d: (d["n_perm"], "permutations/s"), flops=_signflip_flops, peer=_signflip_peer),
    Operation("freedman_lane_glm", _fl_setup, _fl_run,
              lambda d: f"{d['y'].shape[0]} scans x {d['y'].shape[1]} elements x {d['n_perm']} permutations, "
                        "3 nuisance",
              lambda d: (d["n_perm"], "permutations/s"), flops=_fl_flops),
    Operation("float32_option", _precision_setup, None, lambda d: "", lambda d: (1, "permutations/s"),
              backends=("numpy", "jax", "cupy"), measure=_precision_measure),
    Operation("tfce", _tfce_setup, _tfce_run,
              lambda d: f"{'x'.join(map(str, d['mask'].shape))} map, {d['data'].shape[0]} subjects, "
                        f"{d['n_perm']} flips",
              lambda d: (d["n_perm"], "permutations/s"), backends=("numpy", "jax")),
    Operation("pls_bootstrap", _pls_setup, _pls_run,
              lambda d: f"{d['x'].shape[0]} regions x {d['x'].shape[1]} genes, {d['n_boot']} resamples",
              lambda d: (d["n_boot"], "resamples/s"), flops=_pls_flops, peer=_pls_peer),
    Operation("enrichment", _enrich_setup, _enrich_run,
              lambda d: f"{d['nulls'].shape[0]} nulls x {len(d['expr'].genes)} genes x {len(d['sets'])} categories",
              lambda d: (d["nulls"].shape[0], "nulls/s")),
    Operation("study", _study_setup, _study_run, _study_size, lambda d: (1, "studies/s"), backends=("numpy",),
              extra=_study_kernels, teardown=lambda d: shutil.rmtree(d["folder"], ignore_errors=True),
              warmup=False, isolated=True),
]


def run_benchmarks(*, quick=False, backends=None, operations=None, repeats=None, log=None, command=None) -> dict:
    """Run the benchmark table; returns a JSON-ready dict with machine info and rows.

    ``command`` is the command line that produced the run, kept for the
    report's header.
    """
    usable = {n: ok for n, (ok, _) in available_backends().items()}
    names = [b for b in (backends or [n for n, ok in usable.items() if ok]) if usable.get(b)]
    repeats = repeats or (1 if quick else 3)
    gemm_n = 512 if quick else 2048
    # measured before and after the operations, the best of both kept: on a
    # shared machine one measurement can land in a busy moment
    gemm_runs = [{b: measure_gemm_gflops(get_backend(b), n=gemm_n, repeats=5) for b in names}]
    rows: list[BenchRow] = []
    ops = [op for op in OPERATIONS if operations is None or op.name in operations]
    started = datetime.datetime.now().astimezone()
    for op in ops:
        if op.isolated:
            rows += _run_isolated(op, quick, names, repeats, gemm_runs[0], log, gemm_n=gemm_n)
            continue
        data = op.setup(quick)
        try:
            rows += _run_operation(op, data, names, repeats, gemm_runs[0], log, gemm_n=gemm_n)
        finally:
            if op.teardown:
                op.teardown(data)
    gemm_runs.append({b: measure_gemm_gflops(get_backend(b), n=gemm_n, repeats=5) for b in names})
    gemm = {b: max(r[b] for r in gemm_runs) for b in names}
    for row in rows:  # the fractions not measured in pairs: against the best rate
        if row.gemm_fraction is not None and "gemm_paired_gflops" not in row.extra:
            row.gemm_fraction *= gemm_runs[0][row.backend] / gemm[row.backend]
    return {
        "machine": machine_info(names),
        "gemm_gflops": gemm,
        "gemm_gflops_runs": gemm_runs,
        "gemm_size": gemm_n,
        "quick": quick,
        "repeats": repeats,
        "date": started.isoformat(timespec="seconds"),
        "wall_s": (datetime.datetime.now().astimezone() - started).total_seconds(),
        "command": command,
        "operations": [op.name for op in ops],
        "backends": names,
        "rows": [asdict(r) for r in rows],
    }


def machine_info(backends=()) -> dict:
    """Python, cores, CPU model, NumPy's BLAS and each backend's device."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "cpu_model": _cpu_model(),
            "platform": platform.platform(), "numpy": np.__version__, "blas": _blas_name(),
            "devices": {b: get_backend(b).device for b in backends}, "host_loops": describe_host_loops()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_name() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict form of the build configuration
        return "unknown BLAS"


def _run_operation(op, data, names, repeats, gemm, log, *, gemm_n=2048) -> list:
    peer = None
    try:
        peer = op.peer(data) if op.peer else None
    except Exception as exc:  # a peer that breaks must not break the table
        peer = None
        if log:
            log(f"  peer for {op.name} failed: {exc.__class__.__name__}: {exc}")
    rows: list[BenchRow] = []
    for b in names:
        if b not in op.backends:
            continue
        for m in (op.measure(data, b, repeats) if op.measure else [_time_run(op, data, b, repeats, gemm_n)]):
            row = BenchRow(operation=op.name, size=m["size"], backend=b, time_s=m["time_s"],
                           throughput=m["items"] / m["time_s"], unit=m["unit"], variant=m.get("variant"),
                           first_call_s=m.get("first_call_s"), extra=m.get("extra") or {})
            if peer is not None:
                row.peer_time_s = peer[0]
                row.speedup_vs_peer = peer[0] / row.time_s
                row.peer_note = peer[1]
                row.peer = peer[1].split(",")[0]
            if op.extra is not None:
                row.extra = op.extra(data, b)
            if m.get("gemm_fraction") is not None:  # measured in pairs with the reference GEMM
                row.gemm_fraction = m["gemm_fraction"]
                row.extra["gemm_paired_gflops"] = m["gemm_paired_gflops"]
            elif m.get("flops") is not None:
                row.gemm_fraction = m["flops"] / row.time_s / (gemm[b] * 1e9)
            rows.append(row)
            if log:
                label = f"{op.name} [{row.variant}]" if row.variant else op.name
                log(f"  {label:<40} {b:<6} {row.time_s:9.3f} s")
                for line in _extra_lines(row.extra):
                    log("    " + line)
    base = {r.variant: r.time_s for r in rows if r.backend == "numpy"}
    jax = {r.variant: r.time_s for r in rows if r.backend == "jax"}
    for row in rows:
        if row.variant in base:
            row.speedup_vs_numpy = base[row.variant] / row.time_s
        if row.variant in base and row.variant in jax:
            row.jax_vs_numpy = base[row.variant] / jax[row.variant]
    return rows


def _run_isolated(op, quick, names, repeats, gemm, log, *, gemm_n) -> list:
    """:func:`_run_operation` of ``op`` in a fresh (spawned) process: setup, timing and teardown there."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        rows = pool.apply(_isolated_rows, (op.name, quick, names, repeats, gemm, gemm_n))
    if log:
        for row in rows:
            log(f"  {row.operation:<40} {row.backend:<6} {row.time_s:9.3f} s (fresh process)")
            for line in _extra_lines(row.extra):
                log("    " + line)
    return rows


def _isolated_rows(name, quick, names, repeats, gemm, gemm_n) -> list:
    op = next(o for o in OPERATIONS if o.name == name)
    data = op.setup(quick)
    try:
        return _run_operation(op, data, names, repeats, gemm, None, gemm_n=gemm_n)
    finally:
        if op.teardown:
            op.teardown(data)


def _time_run(op, data, backend, repeats, gemm_n=2048) -> dict:
    """One operation on one backend: a warm-up call (imports, compilation, caches), then best of ``repeats``.

    For an operation with a flop count, the reference GEMM is timed before
    and after every repeat, and the GEMM fraction of each repeat is its
    flop rate over the mean of the GEMM rates around it; the row's fraction
    is the median of those. On a shared machine the kernel and its reference
    then meet the same load, which a rate measured minutes away does not.
    """
    first = None
    if op.warmup:
        t0 = time.perf_counter()
        op.run(data, backend)
        first = time.perf_counter() - t0
    items, unit = op.items(data)
    out = {"size": op.size(data), "first_call_s": first, "items": items, "unit": unit,
           "flops": op.flops(data) if op.flops is not None else None}
    if out["flops"] is None:
        out["time_s"] = _best(lambda: op.run(data, backend), repeats)
        return out
    be = get_backend(backend)
    rates = [measure_gemm_gflops(be, n=gemm_n, repeats=1)]
    times = []
    for _ in range(repeats):
        times.append(_best(lambda: op.run(data, backend), 1))
        rates.append(measure_gemm_gflops(be, n=gemm_n, repeats=1))
    paired = [(rates[i] + rates[i + 1]) / 2 for i in range(repeats)]
    out["time_s"] = min(times)
    out["gemm_fraction"] = float(np.median([out["flops"] / t / (g * 1e9) for t, g in zip(times, paired)]))
    out["gemm_paired_gflops"] = float(np.median(paired))
    return out
