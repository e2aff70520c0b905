"""End-to-end tests of ``recouple permute`` and the design readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.cli import main
from recouple.io import design as dio
from recouple.permutation import Resampling, Spatial


def test_fsl_design_roundtrip(tmp_path):
    m = np.column_stack([np.r_[np.ones(4), np.zeros(4)], np.ones(8), np.arange(8.0)])
    dio.write_fsl_design(tmp_path / "design.mat", m)
    dio.write_fsl_contrasts(tmp_path / "design.con", [[1, 0, 0], [-1, 0, 0]], names=["pat>hc", "hc>pat"])
    np.testing.assert_array_equal(dio.read_fsl_design(tmp_path / "design.mat"), m)
    names, c = dio.read_fsl_contrasts(tmp_path / "design.con")
    assert names == ["pat>hc", "hc>pat"] and c.shape == (2, 3)
    (tmp_path / "bad.mat").write_text("/NumWaves 2\n/NumPoints 3\n/Matrix\n1 0\n1 1\n")
    with pytest.raises(rc.exceptions.ShapeError, match="NumPoints"):
        dio.read_fsl_design(tmp_path / "bad.mat")


def test_design_from_table_matches_manual_coding():
    table = pd.DataFrame({"group": ["hc", "mdd", "mdd", "hc", "mdd"], "age": [30.0, 41, 52, 23, 35],
                          "sex": [0, 1, 1, 0, 0], "site": [1, 2, 3, 1, 2]})
    dm = dio.design_from_table(table, "coupling ~ group + age + C(site)")
    assert dm.columns == ("Intercept", "group[T.mdd]", "age", "site[T.2]", "site[T.3]")
    assert dm.response == "coupling"
    np.testing.assert_array_equal(dm.matrix[:, 1], [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(dm.contrast("group[T.mdd]"), [0, 1, 0, 0, 0])
    inter = dio.design_from_table(table, "~ group*age - 1")
    assert inter.columns == ("group[T.mdd]", "age", "group[T.mdd]:age")
    np.testing.assert_array_equal(inter.matrix[:, 2], inter.matrix[:, 0] * inter.matrix[:, 1])
    cols = dio.design_from_table(table, columns=["age", "sex"])
    assert cols.columns == ("Intercept", "age", "sex")
    with pytest.raises(rc.InputError, match="columns of scans"):
        dio.design_from_table(table, "~ grp")
    with pytest.raises(rc.InputError, match="design columns"):
        dm.contrast("group")
    table.loc[2, "age"] = np.nan
    with pytest.raises(rc.InputError, match="missing"):
        dio.design_from_table(table, "~ age")


def _region_problem(tmp_path, n=16, v=12):
    rng = np.random.default_rng(0)
    group = np.r_[np.ones(n // 2), np.zeros(n // 2)]
    age = rng.uniform(20, 60, n)
    y = rng.normal(size=(n, v))
    y[:, :3] += 2.0 * group[:, None]
    names = [f"region{i}" for i in range(v)]
    pd.DataFrame(y, columns=names).to_csv(tmp_path / "coupling.csv", index=False)
    table = pd.DataFrame({"group": np.where(group == 1, "patient", "control"), "age": age})
    table.to_csv(tmp_path / "scans.tsv", sep="\t", index=False)
    return y, group, age, names


def test_cli_table_formula_regions(tmp_path, capsys):
    y, group, age, names = _region_problem(tmp_path)
    out = tmp_path / "res" / "ect"
    code = main(["permute", str(tmp_path / "coupling.csv"), "--design", str(tmp_path / "scans.tsv"),
                 "--formula", "~ group + age", "--contrast", "group[T.patient]", "--n-perm", "200",
                 "--seed", "3", "--correction", "fwe", "-o", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "elements with FWE p <= 0.05" in text
    tstat = pd.read_csv(f"{out}_tstat_c1.csv")
    assert tstat["element"].tolist() == names
    design = np.column_stack([np.ones(16), group, age])
    ref = rc.permutation.glm(y, design, [0, 1, 0], resampling=Resampling(n_perm=200, seed=3))
    np.testing.assert_allclose(tstat["value"], ref.statistic, atol=1e-10)
    np.testing.assert_allclose(pd.read_csv(f"{out}_fwep_c1.csv")["value"], ref.pvalue_fwer)
    np.testing.assert_allclose(pd.read_csv(f"{out}_fdrp_c1.csv")["value"], ref.pvalue_fdr)
    np.testing.assert_allclose(pd.read_csv(f"{out}_uncp_c1.csv")["value"], ref.pvalue)
    prov = json.loads(Path(f"{out}.provenance.json").read_text())
    assert prov["n_perm"] == 200 and prov["design_columns"] == ["Intercept", "group[T.patient]", "age"]


def test_cli_fsl_design_npy_two_contrasts(tmp_path):
    y, group, age, _ = _region_problem(tmp_path)
    np.save(tmp_path / "y.npy", y)
    m = np.column_stack([group, np.ones(16), age])
    dio.write_fsl_design(tmp_path / "design.mat", m)
    dio.write_fsl_contrasts(tmp_path / "design.con", [[1, 0, 0], [0, 0, 1]])
    out = tmp_path / "fsl"
    assert main(["permute", str(tmp_path / "y.npy"), "--design", str(tmp_path / "design.mat"), "--contrast",
                 str(tmp_path / "design.con"), "--n-perm", "99", "--correction", "fdr", "-o", str(out)]) == 0
    for c in ("c1", "c2"):
        assert (tmp_path / f"fsl_tstat_{c}.csv").exists() and (tmp_path / f"fsl_fwep_{c}.csv").exists()
    ref = rc.permutation.glm(y, m, [0, 0, 1], resampling=Resampling(n_perm=99, seed=0))
    np.testing.assert_allclose(pd.read_csv(tmp_path / "fsl_tstat_c2.csv")["value"], ref.statistic, atol=1e-10)


def test_cli_nifti_tfce(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(1)
    shape = (6, 6, 5)
    n = 8
    vols = rng.normal(size=shape + (n,))
    vols[2:4, 2:4, 1:3] += 1.5
    mask = np.ones(shape, dtype=np.uint8)
    mask[0] = 0
    nib.save(nib.Nifti1Image(vols.astype(np.float32), np.eye(4)), tmp_path / "d.nii.gz")
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "mask.nii.gz")
    dio.write_fsl_design(tmp_path / "one.mat", np.ones((n, 1)))
    out = tmp_path / "vox"
    code = main(["permute", str(tmp_path / "d.nii.gz"), "--mask", str(tmp_path / "mask.nii.gz"), "--design",
                 str(tmp_path / "one.mat"), "--contrast", "1", "--n-perm", "500", "--tfce", "-o", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "warning: only 256 distinct sign flips" in text and "TFCE" in text
    assert json.loads(Path(f"{out}.provenance.json").read_text())["exhaustive"] is True
    tf = nib.load(f"{out}_tfce_fwep_c1.nii.gz")
    assert tf.shape == shape
    t = np.asarray(nib.load(f"{out}_tstat_c1.nii.gz").dataobj)
    data = np.moveaxis(vols.astype(np.float32).astype(np.float64)[mask > 0], -1, 0)
    with pytest.warns(UserWarning):
        ref = rc.permutation.one_sample(data, resampling=Resampling(n_perm=500),
                                        spatial=Spatial(tfce=True, mask=mask > 0))
    np.testing.assert_allclose(t[mask > 0], ref.statistic, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(tf.dataobj)[mask > 0], ref.tfce.pvalue_fwer, rtol=1e-6)


def test_cli_nbs(tmp_path):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(12, 10, 10))
    a = (a + a.transpose(0, 2, 1)) / 2
    a[:6, :4, :4] += 2.0
    np.save(tmp_path / "fc.npy", a)
    dio.write_fsl_design(tmp_path / "d.mat", np.column_stack([np.r_[np.ones(6), np.zeros(6)], np.ones(12)]))
    out = tmp_path / "nbs"
    assert main(["permute", str(tmp_path / "fc.npy"), "--design", str(tmp_path / "d.mat"), "--contrast", "1 0",
                 "--nbs", "2.5", "--n-perm", "50", "-o", str(out)]) == 0
    comps = pd.read_csv(f"{out}_nbs_components_c1.csv")
    edges = pd.read_csv(f"{out}_nbs_edges_c1.csv")
    assert len(edges) == 45 and (comps["size"].to_numpy() >= 1).all()
    assert comps["size"].sum() == (edges["component"] > 0).sum()


def test_cli_bad_input(tmp_path, capsys):
    y, *_ = _region_problem(tmp_path)
    np.save(tmp_path / "y.npy", y)
    dio.write_fsl_design(tmp_path / "d.mat", np.ones((15, 1)))
    assert main(["permute", str(tmp_path / "y.npy"), "--design", str(tmp_path / "d.mat"), "--contrast", "1",
                 "-o", str(tmp_path / "x")]) == 2
    assert "one row per scan" in capsys.readouterr().err
    dio.write_fsl_design(tmp_path / "d.mat", np.ones((16, 1)))
    assert main(["permute", str(tmp_path / "y.npy"), "--design", str(tmp_path / "d.mat"), "--contrast", "1 0",
                 "-o", str(tmp_path / "x")]) == 2
    assert "one weight per design column" in capsys.readouterr().err
    assert main(["permute", str(tmp_path / "y.npy"), "--design", str(tmp_path / "scans.tsv"), "--contrast", "1",
                 "-o", str(tmp_path / "x")]) == 2
    assert "--formula" in capsys.readouterr().err
