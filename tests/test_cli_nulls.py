"""End-to-end: `recouple nulls` then `recouple associate` through recouple.cli.main."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.cli import main


def _sphere(rng, n):
    p = rng.standard_normal((n, 3))
    return 100 * p / np.linalg.norm(p, axis=1, keepdims=True)


def test_nulls_then_associate_from_coords(tmp_path, rng):
    pts = _sphere(rng, 80)
    hemi = (pts[:, 0] > 0).astype(int)
    np.save(tmp_path / "coords.npy", pts)
    np.savetxt(tmp_path / "hemi.csv", hemi, fmt="%d")
    assert main(["nulls", "--method", "hungarian", "--coords", str(tmp_path / "coords.npy"), "--hemi",
                 str(tmp_path / "hemi.csv"), "--n-perm", "40", "--seed", "1", "--out", str(tmp_path / "n.npy")]) == 0
    nul = np.load(tmp_path / "n.npy")
    np.testing.assert_array_equal(nul, rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=40, seed=1,
                                                                   method="hungarian"))
    prov = json.loads((tmp_path / "n.npy.provenance.json").read_text())
    assert prov["parameters"]["method"] == "hungarian" and prov["shape"] == [40, 80]

    x = pts[:, 2]
    labels = [f"R{i}" for i in range(80)]
    Y = np.stack([x + 30 * rng.standard_normal(80), rng.standard_normal(80), rng.standard_normal(80)])
    pd.DataFrame({"label": labels, "change": x}).to_csv(tmp_path / "x.csv", index=False)
    order = rng.permutation(80)  # --y in another region order: aligned by label
    ydf = pd.DataFrame({"label": np.array(labels)[order], **{f"g{g}": Y[g, order] for g in range(3)}})
    ydf.to_csv(tmp_path / "y.csv", index=False)
    assert main(["associate", "--x", str(tmp_path / "x.csv"), "--y", str(tmp_path / "y.csv"), "--nulls",
                 str(tmp_path / "n.npy"), "--method", "spearman", "--out", str(tmp_path / "t.csv")]) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    ref = rc.nulls.compare_maps(x, Y, nulls=nul, method="spearman")
    assert list(table.columns) == ["map", "r", "p", "p_fdr", "p_fwer"]
    assert table["map"].iloc[0] == "g0"
    assert np.all(np.diff(np.abs(table["r"].to_numpy())) <= 0)
    got = table.set_index("map").loc[["g0", "g1", "g2"]]
    np.testing.assert_allclose(got["r"], ref.r, atol=1e-9)
    np.testing.assert_allclose(got["p"], ref.pvalue, atol=1e-12)
    np.testing.assert_allclose(got["p_fwer"], ref.pvalue_fwer, atol=1e-12)
    assert (tmp_path / "t.csv.provenance.json").is_file()


@pytest.mark.realdata
def test_nulls_from_sphere_and_parcellation(tmp_path, shared_data):
    s = shared_data / "surfaces"
    out = tmp_path / "spins.npy"
    assert main(["nulls", "--method", "vasa", "--sphere", str(s / "fsa5_sphere_lh.gii"), str(s / "fsa5_sphere_rh.gii"),
                 "--parcellation", str(shared_data / "parcellations" / "schaefer_100_fsa5.csv"), "--n-perm", "5",
                 "--out", str(out)]) == 0
    nul = np.load(out)
    assert nul.shape == (5, 100)
    assert all(np.array_equal(np.sort(r), np.arange(100)) for r in nul)
    assert json.loads(out.with_name(out.name + ".provenance.json").read_text())["parcels"] == list(range(1, 101))


def test_variogram_nulls_and_npy_associate(tmp_path, rng):
    pts = rng.uniform(0, 100, (50, 3))
    x = np.sin(pts[:, 0] / 20)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "c.npy", pts)
    np.save(tmp_path / "y.npy", rng.standard_normal((4, 50)))
    assert main(["nulls", "--method", "variogram", "--map", str(tmp_path / "x.npy"), "--coords",
                 str(tmp_path / "c.npy"), "--n-perm", "20", "--out", str(tmp_path / "v.npy")]) == 0
    assert np.load(tmp_path / "v.npy").shape == (20, 50)
    assert main(["associate", "--x", str(tmp_path / "x.npy"), "--y", str(tmp_path / "y.npy"), "--nulls",
                 str(tmp_path / "v.npy"), "--out", str(tmp_path / "t.tsv")]) == 0
    assert len(pd.read_csv(tmp_path / "t.tsv", sep="\t")) == 4


def test_cli_bad_input(tmp_path, rng, capsys):
    np.save(tmp_path / "x.npy", rng.standard_normal(30))
    np.save(tmp_path / "y.npy", rng.standard_normal((3, 31)))
    np.save(tmp_path / "n.npy", np.stack([rng.permutation(30) for _ in range(5)]))
    code = main(["associate", "--x", str(tmp_path / "x.npy"), "--y", str(tmp_path / "y.npy"), "--nulls",
                 str(tmp_path / "n.npy"), "--out", str(tmp_path / "t.csv")])
    assert code == 2 and "same number of regions" in capsys.readouterr().err
    code = main(["nulls", "--method", "vasa", "--n-perm", "3", "--out", str(tmp_path / "z.npy")])
    assert code == 2 and "--sphere" in capsys.readouterr().err
    pd.DataFrame({"label": ["a", "b", "c"], "v": [1.0, 2.0, 3.0]}).to_csv(tmp_path / "x.csv", index=False)
    pd.DataFrame({"label": ["a", "b", "d"], "g": [1.0, 2.0, 0.0]}).to_csv(tmp_path / "y.csv", index=False)
    code = main(["associate", "--x", str(tmp_path / "x.csv"), "--y", str(tmp_path / "y.csv"), "--nulls",
                 str(tmp_path / "n.npy"), "--out", str(tmp_path / "t.csv")])
    assert code == 2 and "labels" in capsys.readouterr().err
