"""Region geometry as data: centroids, hemisphere and the per-vertex parcellation of a
study's regions from a researcher's parcellation + sphere files (or a centroid table),
matched to the matrices by name; entries that are not regions are named and left out."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.exceptions import InputError, ShapeError
from recouple.io.ingest import ingest
from recouple.io.surfaces import centroid_table, region_geometry, region_key

from conftest import load_hcp

RADIUS = 100.0
NAMES = ["unknown", "alpha", "beta", "corpuscallosum", "gamma"]  # annot colour-table order


def _fib_sphere(n, radius=RADIUS):
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return radius * np.column_stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)])


def _codes(xyz, flip=False):
    """Codes 0..4 by position: 0 'unknown' (medial, x > 60), 3 'corpuscallosum' (z > 70), 1, 2, 4 by angle."""
    x, y, z = xyz.T
    ang = np.arctan2(y, z)
    codes = np.where(ang < -1.0, 1, np.where(ang < 1.0, 2, 4))
    codes = np.where(z > 70, 3, codes)
    codes = np.where((-x if flip else x) > 60, 0, codes)
    return codes.astype(np.int32)


@pytest.fixture
def surf(tmp_path):
    """Two 300-vertex spheres (GIfTI lh, FreeSurfer rh) and annot / label.gii / CSV parcellations."""
    # both formats store float32: keep the float32 values as the reference coordinates
    lh_xyz = _fib_sphere(300).astype(np.float32).astype(np.float64)
    rh_xyz = (_fib_sphere(300) * np.array([-1.0, 1.0, 1.0])).astype(np.float32).astype(np.float64)
    lh_codes, rh_codes = _codes(lh_xyz), _codes(rh_xyz, flip=True)
    d = tmp_path
    gii = nib.gifti.GiftiImage()
    gii.add_gifti_data_array(nib.gifti.GiftiDataArray(lh_xyz.astype(np.float32), intent="NIFTI_INTENT_POINTSET"))
    nib.save(gii, d / "lh.sphere.gii")
    nib.freesurfer.write_geometry(str(d / "rh.sphere"), rh_xyz, np.array([[0, 1, 2]], dtype=np.int32))
    ctab = np.array([[25, 5, 25, 0, 0], [25, 100, 40, 0, 0], [125, 100, 160, 0, 0], [100, 25, 0, 0, 0],
                     [220, 20, 100, 0, 0]], dtype=np.int32)
    for h, codes in (("lh", lh_codes), ("rh", rh_codes)):
        nib.freesurfer.write_annot(str(d / f"{h}.aparc.annot"), codes, ctab, NAMES, fill_ctab=True)
        lab = nib.gifti.GiftiImage()
        for k, name in enumerate(NAMES):
            lt = nib.gifti.GiftiLabel(key=k, red=0.1 * k, green=0.2, blue=0.3, alpha=1.0)
            lt.label = name
            lab.labeltable.labels.append(lt)
        lab.add_gifti_data_array(nib.gifti.GiftiDataArray(codes.astype(np.int32), intent="NIFTI_INTENT_LABEL",
                                                          datatype="NIFTI_TYPE_INT32"))
        nib.save(lab, d / f"{h}.aparc.label.gii")
    # one CSV for both hemispheres: lh codes as is, rh codes + 10 (0 stays medial wall)
    both = np.concatenate([lh_codes, np.where(rh_codes > 0, rh_codes + 10, 0)])
    np.savetxt(d / "parc.csv", both, fmt="%d")
    names = [f"{c},{n}" for c, n in enumerate(NAMES)] + [f"{c + 10},{n}" for c, n in enumerate(NAMES) if c]
    (d / "parc_names.csv").write_text("\n".join(names) + "\n")
    return {"dir": d, "lh_xyz": lh_xyz, "rh_xyz": rh_xyz, "lh": lh_codes, "rh": rh_codes,
            "sphere": (d / "lh.sphere.gii", d / "rh.sphere")}


LABELS = ["L_alpha", "L_beta", "L_gamma", "R_alpha", "R_beta", "R_gamma"]


def _expected(surf, labels=LABELS):
    """Independent centroids: mean of the parcel's vertices snapped to the nearest vertex of its sphere."""
    out = []
    for lab in labels:
        h, name = lab.split("_", 1)
        xyz, codes = (surf["lh_xyz"], surf["lh"]) if h == "L" else (surf["rh_xyz"], surf["rh"])
        m = xyz[codes == NAMES.index(name)].mean(0)
        out.append(xyz[np.argmin(((xyz - m) ** 2).sum(1))])
    return np.array(out)


@pytest.mark.parametrize("kind", ["annot", "label.gii"])
def test_annot_and_gifti_label(surf, kind):
    d = surf["dir"]
    g = region_geometry(LABELS, (d / f"lh.aparc.{kind}", d / f"rh.aparc.{kind}"), surf["sphere"])
    np.testing.assert_allclose(g.centroids, _expected(surf), rtol=0, atol=1e-10)
    assert g.hemisphere.tolist() == ["L"] * 3 + ["R"] * 3
    # medial wall / unknown / corpuscallosum are named and left out, never counted
    assert set(g.excluded) == {"lh:unknown", "lh:corpuscallosum", "rh:unknown", "rh:corpuscallosum"}
    assert "unknown" in g.message and "corpuscallosum" in g.message and "\n" not in g.message
    vr = g.vertex_region
    assert [v.shape for v in vr] == [(300,), (300,)]
    for v, codes in zip(vr, (surf["lh"], surf["rh"])):
        assert np.all((v == -1) == np.isin(codes, [0, 3]))
    assert vr[0][surf["lh"] == 4].tolist() == [2] * int((surf["lh"] == 4).sum())
    assert vr[1][surf["rh"] == 1].tolist() == [3] * int((surf["rh"] == 1).sum())
    assert np.unique(g.vertex_labels()).tolist() == list(range(7))  # 0 = no region, then the 6 regions
    assert np.array_equal(g.sphere[0], surf["lh_xyz"]) and g.sphere[0].dtype == np.float64


def test_name_matching_prefixes_and_order(surf):
    d = surf["dir"]
    labels = ["ctx-rh-gamma", "lh_alpha", "L_beta", "lh.gamma", "Right-alpha", "beta_R"]
    g = region_geometry(labels, (d / "lh.aparc.annot", d / "rh.aparc.annot"), surf["sphere"])
    canon = ["R_gamma", "L_alpha", "L_beta", "L_gamma", "R_alpha", "R_beta"]
    np.testing.assert_allclose(g.centroids, _expected(surf, canon), atol=1e-10)
    assert g.hemisphere.tolist() == ["R", "L", "L", "L", "R", "R"]
    assert region_key("ctx-lh-bankssts") == region_key("L_bankssts") == region_key("bankssts", "lh")


def test_bare_names_take_the_hemisphere_of_their_file(surf):
    d = surf["dir"]
    # bare names present in both files are ambiguous
    with pytest.raises(InputError, match="no hemisphere"):
        region_geometry(["alpha", "L_beta"], (d / "lh.aparc.annot", d / "rh.aparc.annot"), surf["sphere"])
    # a bare name found in one file only takes that file's hemisphere
    rh = surf["rh"].copy()
    rh[rh == 4] = 2  # no 'gamma' on the right
    g = region_geometry(["gamma", "L_alpha"], (surf["lh"], rh), (surf["lh_xyz"], surf["rh_xyz"]),
                        names={i: n for i, n in enumerate(NAMES)})
    assert g.hemisphere.tolist() == ["L", "L"]
    assert set(g.excluded) >= {"rh:alpha", "lh:beta", "rh:beta"}


def test_missing_region_is_an_error_naming_it(surf):
    d = surf["dir"]
    with pytest.raises(InputError, match="L_delta") as exc:
        region_geometry(LABELS + ["L_delta"], (d / "lh.aparc.annot", d / "rh.aparc.annot"), surf["sphere"])
    assert "1 have none" in str(exc.value)


def test_csv_both_hemispheres_with_names(surf):
    d = surf["dir"]
    g = region_geometry(LABELS, d / "parc.csv", surf["sphere"], names=d / "parc_names.csv")
    np.testing.assert_allclose(g.centroids, _expected(surf), atol=1e-10)
    assert set(g.excluded) == {"lh:unknown", "lh:corpuscallosum", "rh:unknown", "rh:corpuscallosum"}
    # integer codes without names cannot be matched by name: an error that says how to name them
    with pytest.raises(InputError, match="code,name"):
        region_geometry(LABELS, d / "parc.csv", surf["sphere"])
    # wrong length for these spheres
    np.savetxt(d / "short.csv", np.zeros(500), fmt="%d")
    with pytest.raises(ShapeError, match="300 \\+ 300"):
        region_geometry(LABELS, d / "short.csv", surf["sphere"], names=d / "parc_names.csv")


def test_csv_of_names_per_hemisphere(surf):
    d = surf["dir"]
    for h in ("lh", "rh"):
        pd.Series(np.array(NAMES)[surf[h]]).to_csv(d / f"{h}_names.csv", index=False, header=False)
    g = region_geometry(LABELS, (d / "lh_names.csv", d / "rh_names.csv"), surf["sphere"])
    np.testing.assert_allclose(g.centroids, _expected(surf), atol=1e-10)
    assert "lh:corpuscallosum" in g.excluded


def test_swapped_files_are_refused(surf):
    d = surf["dir"]
    for h, tag in (("lh", "L"), ("rh", "R")):
        pd.Series([f"{tag}_{n}" for n in np.array(NAMES)[surf[h]]]).to_csv(d / f"{h}_pref.csv", index=False,
                                                                          header=False)
    with pytest.raises(InputError, match="left file first"):
        region_geometry(LABELS, (d / "rh_pref.csv", d / "lh_pref.csv"), surf["sphere"])


def test_centroid_table(tmp_path):
    t = tmp_path / "cent.csv"
    t.write_text("label,x,y,z,hemisphere\nThalamus_L,1,2,3,L\nL_a,4,5,6,\nR_a,7,8,9,R\nunknown,0,0,0,\n")
    g = centroid_table(["L_a", "R_a", "Thalamus_L"], t)
    np.testing.assert_array_equal(g.centroids, [[4, 5, 6], [7, 8, 9], [1, 2, 3]])
    assert g.hemisphere.tolist() == ["L", "R", "L"] and g.excluded == ("unknown",)
    with pytest.raises(InputError, match="R_b"):
        centroid_table(["L_a", "R_b"], t)


@pytest.fixture
def cohort_files(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "in"
    d.mkdir()
    for k in range(2):
        a = rng.random((6, 6))
        np.savetxt(d / f"s{k}_sc.csv", a + a.T, delimiter=",")
    pd.DataFrame({"subject": ["s0", "s1"]}).to_csv(d / "participants.tsv", sep="\t", index=False)
    (d / "labels.txt").write_text(",".join(LABELS) + "\n")
    return d


def test_ingest_stores_geometry_and_reports_exclusions(surf, cohort_files, tmp_path):
    d, s = cohort_files, surf["dir"]
    # without geometry, centroids are NaN (the state this option fixes)
    out0 = tmp_path / "plain.h5"
    ingest(d / "participants.tsv", out0, sc="{subject}_sc.csv", labels=str(d / "labels.txt"))
    with rc.store.open(out0) as st:
        g0 = st.region_geometry()
        assert np.isnan(g0.centroids).all() and g0.vertex_region is None and g0.excluded == ()
    out = tmp_path / "geo.h5"
    report = ingest(d / "participants.tsv", out, sc="{subject}_sc.csv", labels=str(d / "labels.txt"),
                    parcellation=(s / "lh.aparc.annot", s / "rh.aparc.annot"), sphere=surf["sphere"])
    assert any("corpuscallosum" in n and "unknown" in n for n in report.notes)
    with rc.store.open(out) as st:
        g = st.region_geometry()
        np.testing.assert_allclose(g.centroids, _expected(surf), atol=1e-10)
        np.testing.assert_allclose(st.regions[["x", "y", "z"]].to_numpy(), _expected(surf), atol=1e-10)
        assert st.regions["hemisphere"].tolist() == ["L"] * 3 + ["R"] * 3
        assert g.vertex_region[0].dtype == np.int64 and g.sphere[1].dtype == np.float64
        np.testing.assert_array_equal(g.sphere[1], surf["rh_xyz"])
        assert set(g.excluded) == {"lh:unknown", "lh:corpuscallosum", "rh:unknown", "rh:corpuscallosum"}
    rc.store.validate(out)
    with pytest.raises(InputError, match="needs sphere"):
        ingest(d / "participants.tsv", tmp_path / "x.h5", sc="{subject}_sc.csv", labels=str(d / "labels.txt"),
               parcellation=(s / "lh.aparc.annot", s / "rh.aparc.annot"))
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(InputError, match="not be given together"):
        ingest(d / "participants.tsv", tmp_path / "x.h5", sc="{subject}_sc.csv", labels=str(d / "labels.txt"),
               parcellation=(s / "lh.aparc.annot", s / "rh.aparc.annot"), sphere=surf["sphere"],
               centroids=s / "parc_names.csv")
    assert not (tmp_path / "x.h5").exists()


def test_load_labels_csv_header_and_names(tmp_path):
    from recouple.io.surfaces import load_labels

    (tmp_path / "h.csv").write_text("label\n0\n3\n3\n1\n")
    codes, names = load_labels(tmp_path / "h.csv")
    assert codes.tolist() == [0, 3, 3, 1] and names == {}
    (tmp_path / "n.csv").write_text("unknown\nL_a\n\nL_a\n\"L_b\"\n")
    codes, names = load_labels(tmp_path / "n.csv")  # an empty cell is a vertex in no region (-1)
    assert codes.tolist() == [1, 2, -1, 2, 3] and names == {1: "unknown", 2: "L_a", 3: "L_b"}


def test_set_geometry_api_on_existing_store(surf, cohort_files, tmp_path):
    d, s = cohort_files, surf["dir"]
    out = tmp_path / "geo.h5"
    ingest(d / "participants.tsv", out, sc="{subject}_sc.csv", labels=str(d / "labels.txt"))
    g = rc.store.set_geometry(out, parcellation=s / "parc.csv", sphere=surf["sphere"], names=s / "parc_names.csv")
    assert "corpuscallosum" in g.message
    with rc.store.open(out) as st:
        np.testing.assert_allclose(st.region_geometry().centroids, _expected(surf), atol=1e-10)
    # a table replaces the surface geometry
    t = tmp_path / "cent.csv"
    pd.DataFrame({"label": LABELS, "x": range(6), "y": 0.0, "z": 1.0,
                  "hemisphere": list("LLLRRR")}).to_csv(t, index=False)
    with rc.store.open(out, "r+") as st:
        g2 = rc.store.set_geometry(st, centroids=t)
        assert g2.source == "table" and st.region_geometry().vertex_region is None
        np.testing.assert_array_equal(st.region_geometry().centroids[:, 0], np.arange(6))


def test_cli_ingest_with_parcellation(surf, cohort_files, tmp_path, capsys):
    from recouple.cli import main

    d, s = cohort_files, surf["dir"]
    out = tmp_path / "cli.h5"
    assert main(["ingest", str(d / "participants.tsv"), "-o", str(out), "--sc", "{subject}_sc.csv",
                 "--labels", str(d / "labels.txt"),
                 "--parcellation", str(s / "lh.aparc.label.gii"), str(s / "rh.aparc.label.gii"),
                 "--sphere", str(surf["sphere"][0]), str(surf["sphere"][1])]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "left out" in ln]
    assert len(lines) == 1 and "lh:unknown" in lines[0] and "rh:corpuscallosum" in lines[0]
    with rc.store.open(out) as st:
        np.testing.assert_allclose(st.region_geometry().centroids, _expected(surf), atol=1e-10)


def test_real_hcp_dk68_with_fsaverage5_annot(shared_data, tmp_path):
    sc, _, labels = load_hcp(shared_data, "ctx")
    d = tmp_path / "in"
    d.mkdir()
    for k in range(2):
        np.savetxt(d / f"s{k}_sc.csv", sc, delimiter=",")
    pd.DataFrame({"subject": ["s0", "s1"]}).to_csv(d / "participants.tsv", sep="\t", index=False)
    annot = [shared_data / "ahba" / f"fsa5_{h}_aparc.annot" for h in ("lh", "rh")]
    spheres = [shared_data / "surfaces" / f"fsa5_sphere_{h}.gii" for h in ("lh", "rh")]
    out = tmp_path / "hcp.h5"
    report = ingest(d / "participants.tsv", out, sc="{subject}_sc.csv",
                    labels=str(shared_data / "hcp" / "strucLabels_ctx.csv"), parcellation=annot, sphere=spheres)
    with rc.store.open(out) as st:
        g = st.region_geometry()
    assert g.centroids.shape == (68, 3) and np.isfinite(g.centroids).all()
    np.testing.assert_allclose(np.linalg.norm(g.centroids, axis=1), 100.0, rtol=1e-4)
    assert g.hemisphere.tolist() == [lab[0] for lab in labels.tolist()]
    assert set(g.excluded) == {"lh:unknown", "lh:corpuscallosum", "rh:unknown", "rh:corpuscallosum"}
    assert any("corpuscallosum" in n for n in report.notes)
    # independent computation from the annot + sphere
    expect = []
    for lab in labels.tolist():
        h = "lh" if lab.startswith("L_") else "rh"
        codes, _, names = nib.freesurfer.read_annot(str(shared_data / "ahba" / f"fsa5_{h}_aparc.annot"))
        xyz = nib.load(str(shared_data / "surfaces" / f"fsa5_sphere_{h}.gii")).darrays[0].data.astype(np.float64)
        code = [n.decode() for n in names].index(lab[2:])
        m = xyz[codes == code].mean(0)
        expect.append(xyz[np.argmin(((xyz - m) ** 2).sum(1))])
    np.testing.assert_allclose(g.centroids, np.array(expect), rtol=0, atol=1e-10)
    # the per-vertex CSV (70 codes) with names gives the same 68 regions, never 70
    names = {0: "unknown"}
    _, _, an = nib.freesurfer.read_annot(str(annot[0]))
    for c, n in enumerate(n.decode() for n in an):
        names[c] = n
        if c:
            names[c + 35] = n
    g_csv = region_geometry(labels, shared_data / "parcellations" / "aparc_fsa5.csv", spheres, names=names)
    np.testing.assert_allclose(g_csv.centroids, g.centroids, atol=0)
    assert np.unique(g_csv.vertex_labels()).size == 69  # 68 regions + "no region"


def test_region_key_agrees_with_genes_region_key():
    from recouple.genes import region_key as genes_key

    cases = [("L_bankssts", None), ("ctx-rh-insula", None), ("lh.superior frontal", None), ("Left-Thalamus", None),
             ("Thalamus_R", None), ("bankssts", "L"), ("7Networks_LH_Vis_1", "lh"), ("brainstem", None),
             ("R_V1_ROI", None), ("G_and_S_frontomargin", "rh")]
    for label, hemi in cases:
        assert region_key(label, hemi) == genes_key(label, hemi), label
