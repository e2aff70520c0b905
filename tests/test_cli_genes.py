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
