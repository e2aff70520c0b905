"""Expression loading and alignment, gene-wise association, tables (GMT, .rnk)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import recouple as rc
from recouple.exceptions import InputError
from recouple.io.tables import read_gmt, read_labelled_table, write_gmt, write_rnk


def _write_expr(path, regions, genes, values):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\ufefflabel,Region," + ",".join(genes) + "\n")
        for i, (r, row) in enumerate(zip(regions, values)):
            fh.write(f"{i + 1},{r}," + ",".join("" if np.isnan(v) else f"{v:.17g}" for v in row) + "\n")


@pytest.fixture
def small_expr(tmp_path, rng):
    regions = [f"L_reg{i}" for i in range(6)] + [f"R_reg{i}" for i in range(6)]
    genes = [f"G{i}" for i in range(8)]
    values = rng.random((12, 8))
    path = tmp_path / "expr.csv"
    _write_expr(path, regions, genes, values)
    return path, np.array(regions), np.array(genes), values


def test_load_expression_csv(small_expr):
    path, regions, genes, values = small_expr
    e = rc.genes.load_expression(path)
    np.testing.assert_array_equal(e.regions, regions)
    np.testing.assert_array_equal(e.genes, genes)
    np.testing.assert_allclose(e.values, values, rtol=1e-15)
    assert list(e.hemisphere[:6]) == ["L"] * 6 and list(e.hemisphere[6:]) == ["R"] * 6


def test_region_keys_across_sources():
    key = rc.genes.region_key
    assert key("L_bankssts") == key("ctx-lh-bankssts") == key("bankssts", "L") == key("lh.BanksSTS") == "l:bankssts"
    assert key("R_insula") == key("insula_R") == key("Right-Insula") == "r:insula"
    assert key("brainstem") == "brainstem" and key("L_insula") != key("R_insula")


def test_align_by_label_not_position(small_expr, rng):
    path, regions, genes, values = small_expr
    e = rc.genes.load_expression(path)
    order = rng.permutation(12)[:10]
    labels = np.array([f"{'lh' if r.startswith('L') else 'rh'}_{r[2:].upper()}" for r in regions[order]])
    al = rc.genes.align(e, np.append(labels, "L_unknownregion"), missing="drop")
    np.testing.assert_allclose(al.expression.values, values[order])
    assert list(al.unmatched_map) == ["L_unknownregion"] and al.unmatched_expression.size == 2
    assert "1 map region(s) without expression" in al.report()
    with pytest.raises(InputError, match="missing='drop'"):
        rc.genes.align(e, np.append(labels, "L_unknownregion"))
    with pytest.raises(InputError, match="same region"):
        rc.genes.align(e, ["L_reg0", "lh_reg0"])


def test_select_and_filter(small_expr):
    path, regions, genes, values = small_expr
    e = rc.genes.load_expression(path)
    assert rc.genes.select_regions(e, hemisphere="L").regions.tolist() == list(regions[:6])
    with pytest.raises(InputError, match="info="):
        rc.genes.select_regions(e, structure="cortex")
    stab = np.linspace(0, 1, 8)
    assert rc.genes.filter_genes(e, stability=stab, threshold=0.5).genes.tolist() == list(genes[4:])
    var = values.var(0)
    top = rc.genes.filter_genes(e, top_variance=3).genes
    assert set(top) == set(genes[np.argsort(-var)[:3]])


def test_bad_expression_input(tmp_path, rng):
    p = tmp_path / "dup.csv"
    _write_expr(p, ["L_a", "L_b", "L_c"], ["G1", "G2", "G1"], rng.random((3, 3)))
    with pytest.raises(InputError, match="duplicate_genes"):
        rc.genes.load_expression(p)
    e = rc.genes.load_expression(p, duplicate_genes="mean")
    raw = read_labelled_table(p).values
    np.testing.assert_allclose(e.values[:, 0], (raw[:, 0] + raw[:, 2]) / 2)
    assert rc.genes.load_expression(p, duplicate_genes="drop").genes.tolist() == ["G2"]
    p2 = tmp_path / "dupreg.csv"
    _write_expr(p2, ["L_a", "lh_a", "L_c"], ["G1", "G2", "G3"], rng.random((3, 3)))
    with pytest.raises(InputError, match="regions must be unique"):
        rc.genes.load_expression(p2)
    vals = rng.random((5, 3))
    vals[1, :] = np.nan
    e = rc.genes.load_expression(vals, regions=[f"L_r{i}" for i in range(5)], genes=["A", "B", "C"])
    with pytest.raises(InputError, match="no expression"):
        rc.genes.align(e, [f"L_r{i}" for i in range(5)])
    vals[1, :] = 1.0
    vals[:, 2] = 0.5
    e = rc.genes.load_expression(vals, regions=[f"L_r{i}" for i in range(5)], genes=["A", "B", "C"])
    with pytest.raises(InputError, match="constant"):
        rc.genes.associate(rng.random(5), e)
    assert rc.genes.filter_genes(e).genes.tolist() == ["A", "B"]
    with pytest.raises(InputError, match="regions= and genes="):
        rc.genes.load_expression(vals)


def _sim(n_genes=60):
    c = rc.simulate.cohort(n_regions=40, n_patients=2, n_controls=2, n_genes=n_genes, n_planted_genes=6, seed=3)
    e = rc.genes.load_expression(c.expression, regions=c.labels, genes=c.genes)
    return c, e


def test_associate_equals_scipy_per_gene():
    c, e = _sim()
    y = c.change_map + 0.3 * np.random.default_rng(0).standard_normal(40)
    res = rc.genes.associate(y, e)
    ref = np.array([stats.spearmanr(y, c.expression[:, g]).statistic for g in range(e.genes.size)])
    np.testing.assert_allclose(res.r[0], ref, atol=1e-12)
    res_p = rc.genes.associate(y, e, method="pearson")
    ref_p = np.array([stats.pearsonr(y, c.expression[:, g]).statistic for g in range(e.genes.size)])
    np.testing.assert_allclose(res_p.r[0], ref_p, atol=1e-12)


def test_associate_nulls_pvalues():
    c, e = _sim()
    y = c.change_map + 0.3 * np.random.default_rng(0).standard_normal(40)
    from recouple.engine.random import permutation_indices

    perms = permutation_indices(5, 39, 40)
    res = rc.genes.associate(y, e, nulls=perms)
    null = np.array([[stats.spearmanr(y[p], c.expression[:, g]).statistic for g in range(e.genes.size)]
                     for p in perms])
    p_ref = (1 + (np.abs(null) >= np.abs(res.r[0]) - 1e-12).sum(0)) / 40
    np.testing.assert_allclose(res.pvalue[0], p_ref)
    np.testing.assert_allclose(res.pvalue_fdr[0], stats.false_discovery_control(p_ref), rtol=1e-12)
    fwer = (1 + (np.abs(null).max(1)[:, None] >= np.abs(res.r[0]) - 1e-12).sum(0)) / 40
    np.testing.assert_allclose(res.pvalue_fwer[0], fwer)
    # planted genes rank on top
    top = set(res.ranked()["gene"][:3]) | set(res.ranked()["gene"][-3:])
    assert top & set(c.planted_genes)
    # same seed via a name => same nulls
    a = rc.genes.associate(y, e, nulls="permutation", n_perm=39, seed=5)
    np.testing.assert_allclose(a.pvalue, res.pvalue)


def test_rnk_and_gmt_roundtrip(tmp_path):
    write_rnk(tmp_path / "x.rnk", ["A", "B", "C"], [0.1, np.nan, 0.5])
    assert (tmp_path / "x.rnk").read_text().splitlines() == ["C\t0.5", "A\t0.1"]
    write_gmt(tmp_path / "s.gmt", {"set1": ["A", "B"], "set2": ["C"]})
    assert read_gmt(tmp_path / "s.gmt") == {"set1": ["A", "B"], "set2": ["C"]}
    (tmp_path / "bad.gmt").write_text("set1 A B\n")
    with pytest.raises(InputError, match="tabs"):
        read_gmt(tmp_path / "bad.gmt")


@pytest.mark.realdata
def test_real_gmt_and_expression(shared_data):
    sets = read_gmt(shared_data / "ahba" / "geneset_LAKE.gmt")
    assert "Ast" in sets and len(sets) == 30
    e = rc.genes.load_expression(shared_data / "ahba" / "gene_expression_data.csv",
                                 info=shared_data / "ahba" / "atlas_regions_info.csv", duplicate_genes="drop")
    ctx_l = rc.genes.select_regions(e, hemisphere="L", structure="cortex")
    assert ctx_l.regions.size == 34 and all(r.startswith("L_") for r in ctx_l.regions)
    labels = np.loadtxt(shared_data / "hcp" / "funcLabels_ctx.csv", delimiter=",", dtype=str)
    al = rc.genes.align(e, labels)
    assert al.map_index.size == 68 and al.unmatched_expression.size == 15
    np.testing.assert_array_equal(al.expression.regions, labels)
