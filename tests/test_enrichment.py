"""Gene-category enrichment with ensemble spatial nulls (Fulcher 2021)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import recouple as rc
from recouple.engine.random import permutation_indices
from recouple.exceptions import InputError
from recouple.kernels import genes as kg


def _smooth_fields(centroids, n, length, rng):
    d = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    k = np.exp(-(d / length) ** 2)
    L = np.linalg.cholesky(k + 1e-6 * np.eye(len(d)))
    return (L @ rng.standard_normal((len(d), n))).T  # (n, N)


def test_category_scores_equal_mean_of_spearman(xp, rng):
    expr = rng.standard_normal((12, 20))  # genes x regions
    mem = (rng.random((12, 3)) < 0.5).astype(float)
    mem[0] = 1.0
    maps = rng.standard_normal((4, 20))
    r = np.array([[stats.spearmanr(m, g).statistic for g in expr] for m in maps])
    ref = (r @ mem) / mem.sum(0)
    ref_abs = (np.abs(r) @ mem) / mem.sum(0)
    a = [xp.asarray(v) for v in (maps, expr, mem)]
    prof = xp.jit(kg.category_profiles, method="spearman")(a[1], a[2])
    out = xp.to_numpy(xp.jit(kg.category_scores, method="spearman", aggregate="mean")(*a, prof))
    out_abs = xp.to_numpy(xp.jit(kg.category_scores, method="spearman", aggregate="absmean")(*a, prof))
    np.testing.assert_allclose(out, ref, atol=1e-12)
    np.testing.assert_allclose(out_abs, ref_abs, atol=1e-12)


def _planted_setup(rng, n=60, n_genes=300):
    cents = rc.simulate.region_centroids(n, seed=1)
    expr = _smooth_fields(cents, n_genes, 25.0, rng).T  # regions x genes
    genes = np.array([f"G{i}" for i in range(n_genes)])
    sets = {f"cat{c}": list(genes[c * 15:(c + 1) * 15]) for c in range(12)}
    return cents, expr, genes, sets


def test_planted_category_ranks_first(rng):
    cents, expr, genes, sets = _planted_setup(rng)
    e = rc.genes.load_expression(expr, regions=[f"R{i}" for i in range(60)], genes=genes)
    idx = [int(g[1:]) for g in sets["cat3"]]
    z = (expr - expr.mean(0)) / expr.std(0)
    y = z[:, idx].mean(1)
    spins = permutation_indices(0, 500, 60)
    res = rc.genes.enrichment(y, e, sets, nulls=spins, min_size=10)
    assert res.ranked()["category"][0] == "cat3"
    i = list(res.categories).index("cat3")
    assert res.pvalue[i] == res.pvalue.min() and res.score[i] == res.score.max()
    # brute force: p from the definition
    null_scores = np.array([[np.mean([stats.spearmanr(y[p], expr[:, int(g[1:])]).statistic for g in sets[c]])
                             for c in res.categories] for p in spins[:40]])
    sub = rc.genes.enrichment(y, e, sets, nulls=spins[:40], min_size=10)
    np.testing.assert_allclose(sub.pvalue, (1 + (null_scores >= sub.score - 1e-12).sum(0)) / 41)
    np.testing.assert_allclose(sub.pvalue_fdr, stats.false_discovery_control(sub.pvalue), rtol=1e-12)


def test_size_limits_and_bad_input(rng):
    cents, expr, genes, sets = _planted_setup(rng)
    e = rc.genes.load_expression(expr, regions=[f"R{i}" for i in range(60)], genes=genes)
    sets = dict(sets, tiny=["G1", "G2", "NOTAGENE"], big=list(genes))
    res = rc.genes.enrichment(rng.standard_normal(60), e, sets, null_type="random-genes", n_perm=50, seed=0,
                              min_size=10, max_size=200)
    assert "tiny" in res.dropped and "big" in res.dropped and res.categories.size == 12
    with pytest.raises(InputError, match="at least one category"):
        rc.genes.enrichment(rng.standard_normal(60), e, {"tiny": ["G1"]}, nulls="permutation")
    with pytest.raises(InputError, match="nulls must be given"):
        rc.genes.enrichment(rng.standard_normal(60), e, sets)


@pytest.mark.slow
def test_false_positive_rate_spatial_vs_random_gene_nulls():
    """Fulcher 2021: on spatially autocorrelated random maps, random-gene nulls
    flag far more categories than the nominal 5%; spatial ensemble nulls stay
    near 5%. Categories are sets of co-expressed genes, as GO categories are."""
    rng = np.random.default_rng(7)
    n, n_genes, n_cat, size = 80, 600, 30, 20
    cents = rc.simulate.region_centroids(n, seed=2)
    # each category shares a smooth spatial module (within-category co-expression)
    modules = _smooth_fields(cents, n_cat, 30.0, rng)
    noise = _smooth_fields(cents, n_genes, 30.0, rng)
    expr = 0.7 * np.repeat(modules, size, axis=0) + 0.7 * noise  # genes x regions
    genes = np.array([f"G{i}" for i in range(n_genes)])
    sets = {f"cat{c}": list(genes[c * size:(c + 1) * size]) for c in range(n_cat)}
    e = rc.genes.load_expression(expr.T, regions=[f"R{i}" for i in range(n)], genes=genes)
    n_maps, k = 20, 500
    maps = _smooth_fields(cents, n_maps + k, 30.0, rng)
    phenotypes, ensemble = maps[:n_maps], maps[n_maps:]
    fp_spatial, fp_genes = [], []
    for y in phenotypes:
        a = rc.genes.enrichment(y, e, sets, nulls=ensemble, alternative="two-sided", min_size=10)
        b = rc.genes.enrichment(y, e, sets, null_type="random-genes", n_perm=k, seed=1,
                                alternative="two-sided", min_size=10)
        fp_spatial.append(np.mean(a.pvalue < 0.05))
        fp_genes.append(np.mean(b.pvalue < 0.05))
    fpr_spatial, fpr_genes = np.mean(fp_spatial), np.mean(fp_genes)
    assert fpr_spatial < 0.12, fpr_spatial
    assert fpr_genes > 0.3, fpr_genes
    assert fpr_genes > 4 * fpr_spatial


@pytest.mark.realdata
def test_real_lake_sets_planted_category(shared_data):
    e = rc.genes.load_expression(shared_data / "ahba" / "gene_expression_data.csv", duplicate_genes="drop")
    sets = rc.genes.load_gene_sets(shared_data / "ahba" / "geneset_LAKE.gmt")
    mem, names, sizes, dropped = rc.genes.membership_matrix(sets, e.genes, min_size=10, max_size=1000)
    assert names.size >= 20
    # a map built from the Oli category's genes
    j = list(names).index("Oli")
    z = (e.values - e.values.mean(0)) / e.values.std(0)
    y = z[:, mem[:, j] > 0].mean(1)
    res = rc.genes.enrichment(y, e, sets, nulls="permutation", n_perm=200, seed=0, max_size=1000)
    assert res.ranked()["category"][0] == "Oli"
