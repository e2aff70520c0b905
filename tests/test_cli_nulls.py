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


def test_nulls_record_labels_and_associate_aligns_by_label(tmp_path, rng, capsys):
    n = 40
    pts = _sphere(rng, n)
    labels = np.array([f"L_r{i}" for i in range(n)])
    np.save(tmp_path / "coords.npy", pts)
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    assert main(["nulls", "--method", "vasa", "--coords", str(tmp_path / "coords.npy"), "--labels",
                 str(tmp_path / "labels.txt"), "--n-perm", "30", "--out", str(tmp_path / "n.npy")]) == 0
    assert (tmp_path / "n.npy.labels.txt").read_text().split() == labels.tolist()
    capsys.readouterr()
    x = pts[:, 0]
    Y = np.stack([x + rng.standard_normal(n), rng.standard_normal(n)])
    order = rng.permutation(n)  # the maps in another region order: nulls follow by label
    pd.DataFrame({"label": labels[order], "x": x[order]}).to_csv(tmp_path / "x.csv", index=False)
    pd.DataFrame({"label": labels[order], "a": Y[0, order], "b": Y[1, order]}).to_csv(tmp_path / "y.csv", index=False)
    assert main(["associate", "--x", str(tmp_path / "x.csv"), "--y", str(tmp_path / "y.csv"), "--nulls",
                 str(tmp_path / "n.npy"), "--out", str(tmp_path / "t.csv")]) == 0
    assert "spearman correlation" in capsys.readouterr().out  # the default, named in the output line
    ref = rc.nulls.compare_maps(x, Y, nulls=np.load(tmp_path / "n.npy"), method="spearman")
    got = pd.read_csv(tmp_path / "t.csv").set_index("map").loc[["a", "b"]]
    np.testing.assert_allclose(got["p"], ref.pvalue, atol=1e-12)
    np.testing.assert_allclose(got["r"], ref.r, atol=1e-9)
    # an explicit --method pearson keeps working
    assert main(["associate", "--x", str(tmp_path / "x.csv"), "--y", str(tmp_path / "y.csv"), "--nulls",
                 str(tmp_path / "n.npy"), "--method", "pearson", "--out", str(tmp_path / "t2.csv")]) == 0
    assert "pearson correlation" in capsys.readouterr().out
    # a map region the nulls lack: the error names it
    pd.DataFrame({"label": np.r_[labels, ["L_new"]], "x": np.r_[x, 0.5]}).to_csv(tmp_path / "x2.csv", index=False)
    pd.DataFrame({"label": np.r_[labels, ["L_new"]], "a": np.r_[Y[0], 1.0]}).to_csv(tmp_path / "y2.csv", index=False)
    assert main(["associate", "--x", str(tmp_path / "x2.csv"), "--y", str(tmp_path / "y2.csv"), "--nulls",
                 str(tmp_path / "n.npy"), "--out", str(tmp_path / "t3.csv")]) == 2
    err = capsys.readouterr().err
    assert "L_new" in err and "transpos" not in err
    # spins drawn by associate itself from coordinates
    assert main(["associate", "--x", str(tmp_path / "x.csv"), "--y", str(tmp_path / "y.csv"), "--nulls", "vasa",
                 "--n-perm", "20", "--out", str(tmp_path / "t4.csv")]) == 2
    assert "--sphere" in capsys.readouterr().err
    assert main(["nulls", "--coords", str(tmp_path / "coords.npy"), "--write-centroids", str(tmp_path / "c.csv"),
                 "--out", str(tmp_path / "z.npy")]) == 2
    assert "--write-centroids needs --sphere" in capsys.readouterr().err


def test_cli_warnings_are_one_line(tmp_path):
    import subprocess
    import sys
    import warnings

    from recouple.cli import warning_line

    script = ("import warnings, recouple.cli as c, recouple.cli.nulls as n\n"
              "n.run = lambda a: warnings.warn('nulls with NaN\\n  were left out', RuntimeWarning) or 0\n"
              "before = warnings.formatwarning\n"
              "code = c.main(['nulls', '--out', 'unused.npy'])\n"
              "assert warnings.formatwarning is before\n"
              "raise SystemExit(code)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "recouple nulls: warning: nulls with NaN were left out\n"
    assert warning_line("genes")("x", DeprecationWarning, "f.py", 3) == \
        "recouple genes: warning: x (DeprecationWarning)\n"
    assert warnings.formatwarning is not None


@pytest.mark.realdata
def test_dk_nulls_by_name_with_labels_and_centroids(tmp_path, shared_data, capsys):
    s, a = shared_data / "surfaces", shared_data / "ahba"
    sphere = [str(s / "fsa5_sphere_lh.gii"), str(s / "fsa5_sphere_rh.gii")]
    annot = [str(a / "fsa5_lh_aparc.annot"), str(a / "fsa5_rh_aparc.annot")]
    assert main(["nulls", "--sphere", *sphere, "--parcellation", *annot, "--n-perm", "25", "--out",
                 str(tmp_path / "a.npy"), "--write-centroids", str(tmp_path / "cent.csv")]) == 0
    out = capsys.readouterr().out
    assert "for 68 regions" in out and "lh:corpuscallosum" in out and "rh:unknown" in out
    nul = np.load(tmp_path / "a.npy")
    labels = (tmp_path / "a.npy.labels.txt").read_text().split()
    assert nul.shape == (25, 68) and len(labels) == 68 and labels[0] == "L_bankssts"
    assert not any("unknown" in lab or "corpuscallosum" in lab for lab in labels)
    geom = rc.io.surfaces.centroid_table(labels, tmp_path / "cent.csv")  # the table `ingest --centroids` reads
    assert geom.hemisphere.tolist() == ["L"] * 34 + ["R"] * 34
    # the per-vertex CSV of codes with their names gives the same 68 regions and the same nulls
    names = rc.io.surfaces.load_labels(annot[0])[1]
    rows = [f"{c},{n}" for c, n in names.items() if c > 0] + [f"{c + 35},{n}" for c, n in names.items() if c > 0]
    (tmp_path / "names.csv").write_text("\n".join(rows) + "\n")
    csv = str(shared_data / "parcellations" / "aparc_fsa5.csv")
    assert main(["nulls", "--sphere", *sphere, "--parcellation", csv, "--parcellation-names",
                 str(tmp_path / "names.csv"), "--n-perm", "25", "--out", str(tmp_path / "c.npy")]) == 0
    assert (tmp_path / "c.npy.labels.txt").read_text().split() == labels
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), nul)
    # ENIGMA order for the map: nulls are matched by label; unnamed codes give an error that says what to do
    enigma = (shared_data / "hcp" / "strucLabels_ctx.csv").read_text().strip().split(",")
    sc = np.loadtxt(shared_data / "hcp" / "strucMatrix_ctx.csv", delimiter=",")
    pd.DataFrame({"label": enigma, "degree": sc.sum(1), "strength2": (sc ** 2).sum(1)}).to_csv(
        tmp_path / "m.csv", index=False)
    assert main(["associate", "--x", str(tmp_path / "m.csv"), "--y", str(tmp_path / "m.csv"), "--nulls",
                 str(tmp_path / "a.npy"), "--out", str(tmp_path / "t.csv")]) == 0
    assert main(["nulls", "--sphere", *sphere, "--parcellation", csv, "--n-perm", "5", "--out",
                 str(tmp_path / "u.npy")]) == 0
    assert "carry no names" in capsys.readouterr().out
    assert main(["associate", "--x", str(tmp_path / "m.csv"), "--y", str(tmp_path / "m.csv"), "--nulls",
                 str(tmp_path / "u.npy"), "--out", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err
    assert "L_bankssts" in err and "--parcellation-names" in err and "transpos" not in err
    # spins drawn by associate from the sphere and the annot equal those of `recouple nulls --labels`
    (tmp_path / "enigma.txt").write_text("\n".join(enigma) + "\n")
    assert main(["nulls", "--sphere", *sphere, "--parcellation", *annot, "--labels", str(tmp_path / "enigma.txt"),
                 "--n-perm", "25", "--out", str(tmp_path / "e.npy")]) == 0
    assert main(["associate", "--x", str(tmp_path / "m.csv"), "--y", str(tmp_path / "m.csv"), "--nulls", "vasa",
                 "--n-perm", "25", "--sphere", *sphere, "--parcellation", *annot, "--out",
                 str(tmp_path / "t5.csv")]) == 0
    ref = rc.nulls.compare_maps(sc.sum(1), np.stack([sc.sum(1), (sc ** 2).sum(1)]), method="spearman",
                                nulls=np.load(tmp_path / "e.npy"))
    got = pd.read_csv(tmp_path / "t5.csv").set_index("map").loc[["degree", "strength2"]]
    np.testing.assert_allclose(got["p"], ref.pvalue, atol=1e-12)
