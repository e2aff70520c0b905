"""Imaging transcriptomics: PLS bootstrap and gene-category enrichment.

* ``pls_bootstrap``: bootstrap standard errors of PLS1 gene weights,
  83 regions x 15,633 genes x 1,000 resamples at full size, per backend,
  against a per-resample refit loop written the way pyls
  (``pls_regression(..., n_boot=)``) and imaging-transcriptomics refit SIMPLS
  for every resample (a reimplementation of that loop: pyls is not on PyPI).
  The loop is timed on ``N_LOOP`` resamples; ``extra_info["per_resample_s"]``
  gives the linear scaling to the full count.
* ``enrichment``: Fulcher-style ensemble enrichment, 10,000 null maps x
  15,633 genes x 500 categories at full size.

Run ``RECOUPLE_BENCH=full pytest bench/bench_genes.py`` for the issue's sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

import recouple as rc
from recouple.engine.random import bootstrap_indices, permutation_indices

from conftest import size

N_REGIONS = 83
N_GENES = size(2_000, 15_633)
N_BOOT = size(100, 1_000)
N_LOOP = size(20, 100)
N_NULLS = size(1_000, 10_000)
N_CATEGORIES = size(100, 500)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    expr = rng.random((N_REGIONS, N_GENES))
    genes = np.array([f"G{i:05d}" for i in range(N_GENES)])
    e = rc.genes.load_expression(expr, regions=[f"R{i}" for i in range(N_REGIONS)], genes=genes)
    y = rng.standard_normal(N_REGIONS)
    sizes = rng.integers(10, 201, N_CATEGORIES)
    sets = {f"cat{c}": list(rng.choice(genes, s, replace=False)) for c, s in enumerate(sizes)}
    return e, expr, y, sets


def _refit_simpls(X, Y, n_components):
    """One SIMPLS fit from scratch (centre, SVD of the cross-covariance,
    scores, loadings, deflation), as a per-resample loop runs it."""
    X0 = X - X.mean(0)
    Y0 = Y - Y.mean(0)
    cov = X0.T @ Y0
    W = np.zeros((X.shape[1], n_components))
    V = np.zeros((X.shape[1], n_components))
    for i in range(n_components):
        u, s, vt = np.linalg.svd(cov, full_matrices=False)
        t = X0 @ u[:, 0]
        nt = np.linalg.norm(t)
        t /= nt
        W[:, i] = u[:, 0] / nt
        v = X0.T @ t
        v -= V[:, :i] @ (V[:, :i].T @ v)
        V[:, i] = v / np.linalg.norm(v)
        cov = cov - np.outer(V[:, i], V[:, i] @ cov)
    return W


def refit_loop_bootstrap(expr, y, boot, n_components=1):
    """Per-resample refit loop (pyls / imaging-transcriptomics style)."""
    X = (expr - expr.mean(0)) / expr.std(0, ddof=1)
    Y = ((y - y.mean()) / y.std(ddof=1))[:, None]
    W = _refit_simpls(X, Y, n_components)
    ws = np.empty((boot.shape[0],) + W.shape)
    for b, idx in enumerate(boot):
        wb = _refit_simpls(X[idx], Y[idx], n_components)
        flip = np.array([np.corrcoef(wb[:, c], W[:, c])[0, 1] < 0 for c in range(n_components)])
        ws[b] = np.where(flip, -wb, wb)
    return ws.std(axis=0, ddof=1)


@pytest.mark.benchmark(group="pls_bootstrap")
def test_pls_bootstrap_recouple(benchmark, data, backend):
    e, expr, y, _ = data
    boot = bootstrap_indices(0, N_BOOT, N_REGIONS)
    rc.genes.pls(y, e, bootstrap=boot, backend=backend)  # warm up / compile these shapes
    res = benchmark.pedantic(lambda: rc.genes.pls(y, e, bootstrap=boot, backend=backend), rounds=3, iterations=1)
    benchmark.extra_info.update(backend=backend, n_regions=N_REGIONS, n_genes=N_GENES, n_boot=N_BOOT,
                                per_resample_s=benchmark.stats.stats.min / N_BOOT)
    assert np.isfinite(res.zscores).all()


@pytest.mark.benchmark(group="pls_bootstrap")
def test_pls_bootstrap_refit_loop(benchmark, data):
    e, expr, y, _ = data
    boot = bootstrap_indices(0, N_LOOP, N_REGIONS)
    se = benchmark.pedantic(lambda: refit_loop_bootstrap(expr, y, boot), rounds=1, iterations=1)
    per = benchmark.stats.stats.min / N_LOOP
    benchmark.extra_info.update(backend="refit-loop (pyls-style reimplementation)", n_regions=N_REGIONS,
                                n_genes=N_GENES, n_boot=N_LOOP, per_resample_s=per,
                                extrapolated_s_for_n_boot=per * N_BOOT)
    assert np.isfinite(se).all()


@pytest.mark.benchmark(group="enrichment")
def test_enrichment_recouple(benchmark, data, backend):
    e, expr, y, sets = data
    spins = permutation_indices(0, N_NULLS, N_REGIONS)
    rc.genes.enrichment(y, e, sets, nulls=spins, backend=backend)  # warm up / compile these shapes
    res = benchmark.pedantic(lambda: rc.genes.enrichment(y, e, sets, nulls=spins, backend=backend),
                             rounds=3, iterations=1)
    benchmark.extra_info.update(backend=backend, n_regions=N_REGIONS, n_genes=N_GENES, n_nulls=N_NULLS,
                                n_categories=int(res.categories.size))
    assert res.categories.size == N_CATEGORIES


@pytest.mark.benchmark(group="enrichment")
def test_enrichment_recouple_absmean(benchmark, data, backend):
    """The aggregation that forms all (n_nulls x n_genes) gene scores."""
    e, expr, y, sets = data
    spins = permutation_indices(0, N_NULLS, N_REGIONS)
    res = benchmark.pedantic(lambda: rc.genes.enrichment(y, e, sets, nulls=spins, aggregate="absmean",
                                                         backend=backend), rounds=1, iterations=1)
    benchmark.extra_info.update(backend=backend, aggregate="absmean", n_regions=N_REGIONS, n_genes=N_GENES,
                                n_nulls=N_NULLS, n_categories=int(res.categories.size))
    assert res.categories.size == N_CATEGORIES
