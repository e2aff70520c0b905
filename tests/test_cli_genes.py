"""End-to-end test of ``recouple genes``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.cli import main
from recouple.engine.random import permutation_indices


@pytest.fixture
def inputs(tmp_path):
    c = rc.simulate.cohort(n_regions=30, n_patients=2, n_controls=2, n_genes=80, n_planted_genes=6, seed=1)
    expr = pd.DataFrame(c.expression, columns=c.genes)
    expr.insert(0, "label", c.labels)
    expr.to_csv(tmp_path / "expr.csv", index=False)
    order = np.random.default_rng(0).permutation(30)  # map table in a different region order
    maps = pd.DataFrame({"label": c.labels[order], "change": c.change_map[order],
                         "noise": np.random.default_rng(1).standard_normal(30)})
    maps.to_csv(tmp_path / "maps.csv", index=False)
    np.save(tmp_path / "nulls.npy", permutation_indices(0, 50, 30))
    sets = {f"set{i}": list(c.genes[i * 10:(i + 1) * 10]) for i in range(8)}
    with open(tmp_path / "sets.gmt", "w") as fh:
        for k, v in sets.items():
            fh.write("\t".join([k, "NA", *v]) + "\n")
    return tmp_path, c


def test_cli_genes_end_to_end(inputs):
    tmp, c = inputs
    out = tmp / "out"
    rc_ = main(["genes", str(tmp / "maps.csv"), "--expression", str(tmp / "expr.csv"), "--nulls",
                str(tmp / "nulls.npy"), "--pls", "2", "--n-boot", "30", "--gene-sets", str(tmp / "sets.gmt"),
                "--out", str(out), "--no-progress"])
    assert rc_ == 0
    ranked = pd.read_csv(out / "genes_change.csv")
    assert list(ranked.columns) == ["rank", "gene", "r", "pvalue", "pvalue_fdr", "pvalue_fwer"]
    assert ranked["r"].is_monotonic_decreasing and len(ranked) == 80
    table = pd.read_csv(tmp / "maps.csv")  # nulls index the map table's own region order
    direct = rc.genes.associate(table["change"].to_numpy(), rc.genes.load_expression(c.expression, regions=c.labels,
                                                                                     genes=c.genes),
                                labels=table["label"].to_numpy(), nulls=np.load(tmp / "nulls.npy"))
    got = ranked.set_index("gene").loc[direct.genes, "pvalue"].to_numpy()
    np.testing.assert_allclose(got, direct.pvalue[0], rtol=1e-9)
    assert (out / "genes_noise.rnk").read_text().count("\n") == 80
    var = pd.read_csv(out / "pls_variance.csv")
    assert list(var["component"]) == [1, 2] and "pvalue_cumulative" in var
    weights = pd.read_csv(out / "pls_weights.csv")
    assert {"gene", "weight_1", "z_1", "se_2"} <= set(weights.columns)
    assert len(pd.read_csv(out / "pls_scores.csv")) == 30
    enr = pd.read_csv(out / "enrichment_change.csv")
    assert len(enr) == 8 and enr["pvalue"].between(0, 1).all()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["analysis"] == "genes" and prov["parameters"]["pls"] == 2


def test_cli_genes_bad_input(inputs, capsys):
    tmp, _ = inputs
    code = main(["genes", str(tmp / "maps.csv"), "--expression", str(tmp / "missing.csv"), "--out", str(tmp / "o")])
    assert code == 2 and "existing file" in capsys.readouterr().err
    code = main(["genes", str(tmp / "maps.csv"), "--expression", str(tmp / "expr.csv"), "--nulls", "spin",
                 "--out", str(tmp / "o")])
    assert code == 2 and "coords" in capsys.readouterr().err


def test_cli_genes_labelled_nulls_sizes_and_duplicates(inputs, capsys):
    from recouple.nulls import spec

    tmp, c = inputs
    table = pd.read_csv(tmp / "maps.csv")
    nul = np.load(tmp / "nulls.npy")  # in the map table's order; write it in the expression's order, labelled
    pos = {lab: i for i, lab in enumerate(table["label"])}
    perm = np.array([pos[lab] for lab in c.labels])
    inv = np.argsort(perm)
    spec.save_nulls(tmp / "lab.npy", inv[nul[:, perm]], c.labels)
    code = main(["genes", str(tmp / "maps.csv"), "--expression", str(tmp / "expr.csv"), "--nulls",
                 str(tmp / "lab.npy"), "--gene-sets", str(tmp / "sets.gmt"), "--min-size", "5", "--max-size", "20",
                 "--out", str(tmp / "o1"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "spearman correlation" in out
    assert "left out by the size bounds" not in out  # every set kept: no line
    ranked = pd.read_csv(tmp / "o1" / "genes_change.csv")
    direct = rc.genes.associate(table["change"].to_numpy(), rc.genes.load_expression(tmp / "expr.csv"),
                                labels=table["label"].to_numpy(), nulls=nul)
    np.testing.assert_allclose(ranked.set_index("gene").loc[direct.genes, "pvalue"].to_numpy(), direct.pvalue[0])
    # size bounds: a one-line report of what was dropped, and --max-size none keeps large sets
    with open(tmp / "sets2.gmt", "w") as fh:
        fh.write("\t".join(["all", "NA", *c.genes]) + "\n")
        fh.write("\t".join(["some", "NA", *c.genes[:20]]) + "\n")
    assert main(["genes", str(tmp / "maps.csv"), "--expression", str(tmp / "expr.csv"), "--nulls",
                 str(tmp / "lab.npy"), "--gene-sets", str(tmp / "sets2.gmt"), "--max-size", "50",
                 "--out", str(tmp / "o2"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 gene sets left out by the size bounds [10, 50]" in out and "all" in out
    assert main(["genes", str(tmp / "maps.csv"), "--expression", str(tmp / "expr.csv"), "--nulls",
                 str(tmp / "lab.npy"), "--gene-sets", str(tmp / "sets2.gmt"), "--max-size", "none",
                 "--out", str(tmp / "o3"), "--no-progress"]) == 0
    assert len(pd.read_csv(tmp / "o3" / "enrichment_change.csv")) == 2
    # duplicated gene names: the message names the command-line flag
    expr = pd.read_csv(tmp / "expr.csv")
    expr["Mar-01"] = 1.0 + np.arange(30)
    pd.concat([expr, expr[["Mar-01"]]], axis=1).to_csv(tmp / "dup.csv", index=False)
    assert main(["genes", str(tmp / "maps.csv"), "--expression", str(tmp / "dup.csv"), "--out", str(tmp / "o4"),
                 "--no-progress"]) == 2
    assert "--duplicate-genes drop" in capsys.readouterr().err
    assert main(["genes", str(tmp / "maps.csv"), "--expression", str(tmp / "dup.csv"), "--duplicate-genes", "drop",
                 "--out", str(tmp / "o4"), "--no-progress"]) == 0


@pytest.mark.realdata
def test_cli_genes_ahba_as_shipped_with_spins_from_surfaces(tmp_path, shared_data, capsys):
    s, a = shared_data / "surfaces", shared_data / "ahba"
    sphere = [str(s / "fsa5_sphere_lh.gii"), str(s / "fsa5_sphere_rh.gii")]
    annot = [str(a / "fsa5_lh_aparc.annot"), str(a / "fsa5_rh_aparc.annot")]
    labels = (shared_data / "hcp" / "strucLabels_ctx.csv").read_text().strip().split(",")
    sc = np.loadtxt(shared_data / "hcp" / "strucMatrix_ctx.csv", delimiter=",")
    pd.DataFrame({"label": labels, "degree": sc.sum(1)}).to_csv(tmp_path / "map.csv", index=False)
    expr = str(a / "gene_expression_data.csv")
    assert main(["genes", str(tmp_path / "map.csv"), "--expression", expr, "--out", str(tmp_path / "o0"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Mar-01" in err and "--duplicate-genes drop" in err
    assert main(["genes", str(tmp_path / "map.csv"), "--expression", expr, "--duplicate-genes", "drop", "--nulls",
                 "vasa", "--sphere", *sphere, "--parcellation", *annot, "--n-perm", "40",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "68 regions, spearman correlation, 40 nulls (vasa)" in out and "lh:corpuscallosum" in out
    ranked = pd.read_csv(tmp_path / "o" / "genes_degree.csv")
    assert len(ranked) == 15633 - 4 and not ranked["gene"].isin(["Mar-01", "Mar-02"]).any()
    # the same spins from `recouple nulls --labels` (map order) give the same p-values
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    assert main(["nulls", "--sphere", *sphere, "--parcellation", *annot, "--labels", str(tmp_path / "labels.txt"),
                 "--n-perm", "40", "--out", str(tmp_path / "n.npy")]) == 0
    e = rc.genes.load_expression(expr, duplicate_genes="drop")
    direct = rc.genes.associate(sc.sum(1), e, labels=labels, nulls=np.load(tmp_path / "n.npy"))
    np.testing.assert_allclose(ranked.set_index("gene").loc[direct.genes, "pvalue"].to_numpy(), direct.pvalue[0])
