"""Ingest: participants table + per-scan files -> cohort store; one test per failure."""

from __future__ import annotations

import hashlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.workflows.coupling import cohort_coupling
from recouple.exceptions import InputError, ShapeError, StoreError
from recouple.io.ingest import ingest

from conftest import load_hcp


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def matrix_cohort(tmp_path):
    """Three scans of SC/FC CSVs with a label file."""
    c = rc.simulate.cohort(n_regions=12, n_patients=1, n_controls=1, control_sessions=1, seed=2)
    d = tmp_path / "in"
    d.mkdir()
    rows = []
    for k in range(c.n_scans):
        sid = c.scans["scan_id"][k]
        np.savetxt(d / f"{sid}_sc.csv", c.sc[k], delimiter=",")
        np.save(d / f"{sid}_fc.npy", c.fc[k])
        rows.append({"scan_id": sid, "subject": c.scans["subject"][k], "session": c.scans["session"][k],
                     "group": c.scans["group"][k], "hamd": c.scans["hamd"][k]})
    pd.DataFrame(rows).to_csv(d / "participants.tsv", sep="\t", index=False)
    (d / "labels.txt").write_text("\n".join(c.labels) + "\n")
    return c, d


def _ingest(d, out, **kw):
    args = dict(sc="{scan_id}_sc.csv", fc="{scan_id}_fc.npy", labels=str(d / "labels.txt"))
    args.update(kw)
    return ingest(d / "participants.tsv", out, **args)


def test_matrices_round_trip_and_inputs_untouched(matrix_cohort, tmp_path):
    c, d = matrix_cohort
    before = _digest(d)
    out = tmp_path / "store.h5"
    report = _ingest(d, out, sessions=["pre", "post"])
    assert report.n_scans == c.n_scans and {"sc", "fc"} <= set(report.datasets)
    assert _digest(d) == before
    with rc.store.open(out) as st:
        np.testing.assert_allclose(st.read("sc"), c.sc, rtol=1e-15)
        np.testing.assert_array_equal(st.read("fc"), c.fc)
        assert list(st.labels) == list(c.labels)
        np.testing.assert_allclose(st.scans["hamd"], c.scans["hamd"])
    with pytest.raises(StoreError, match="already exists"):
        _ingest(d, out)
    _ingest(d, out, overwrite=True)


def test_missing_file(matrix_cohort, tmp_path):
    _, d = matrix_cohort
    (d / "sub-P001_ses-post_sc.csv").unlink()
    with pytest.raises(InputError, match="sub-P001_ses-post_sc.csv.*does not exist"):
        _ingest(d, tmp_path / "s.h5")
    assert not (tmp_path / "s.h5").exists()


def test_wrong_shape(matrix_cohort, tmp_path):
    _, d = matrix_cohort
    np.savetxt(d / "sub-P001_ses-pre_sc.csv", np.eye(11), delimiter=",")
    with pytest.raises(ShapeError, match="sub-P001_ses-pre_sc.csv.*11 x 11.*12 region labels"):
        _ingest(d, tmp_path / "s.h5")


def test_label_mismatch_between_scans(matrix_cohort, tmp_path):
    c, d = matrix_cohort
    for k in range(c.n_scans):
        sid = c.scans["scan_id"][k]
        labels = list(c.labels)
        if k == 2:
            labels[3], labels[4] = labels[4], labels[3]
        pd.DataFrame(c.sc[k], columns=labels).to_csv(d / f"{sid}_sc.csv", index=False)
    with pytest.raises(InputError, match="sub-C001_ses-pre_sc.csv.*labels that differ.*position 3"):
        _ingest(d, tmp_path / "s.h5", labels=None)


def test_nan_values(matrix_cohort, tmp_path):
    c, d = matrix_cohort
    bad = c.fc[1].copy()
    bad[2, 5] = np.nan
    np.save(d / f"{c.scans['scan_id'][1]}_fc.npy", bad)
    with pytest.raises(InputError, match=r"_fc.npy.*1 NaN/inf value\(s\), the first at \(2, 5\)"):
        _ingest(d, tmp_path / "s.h5")


def test_duplicate_scan_ids(matrix_cohort, tmp_path):
    _, d = matrix_cohort
    df = pd.read_csv(d / "participants.tsv", sep="\t")
    df.loc[2, "scan_id"] = df.loc[0, "scan_id"]
    df.to_csv(d / "participants.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="scan_id must be unique.*sub-P001_ses-pre"):
        _ingest(d, tmp_path / "s.h5")


def test_unknown_sessions(matrix_cohort, tmp_path):
    _, d = matrix_cohort
    with pytest.raises(InputError, match=r"session values \['post'\].*not among the allowed sessions \['pre'\]"):
        _ingest(d, tmp_path / "s.h5", sessions=["pre"])


def test_asymmetric_sc_needs_symmetrize(matrix_cohort, tmp_path):
    c, d = matrix_cohort
    sid = c.scans["scan_id"][0]
    asym = c.sc[0].copy()
    asym[0, 1] += 0.5
    np.savetxt(d / f"{sid}_sc.csv", asym, delimiter=" ")  # probtrackx-style whitespace text
    with pytest.raises(InputError, match="not symmetric.*symmetrize"):
        _ingest(d, tmp_path / "s.h5")
    _ingest(d, tmp_path / "s.h5", symmetrize=True)
    np.savetxt(d / f"{sid}_sc.csv", np.triu(c.sc[0]), delimiter=",")  # MRtrix upper triangle
    _ingest(d, tmp_path / "t.h5")
    with rc.store.open(tmp_path / "t.h5") as st:
        np.testing.assert_allclose(st.read("sc", scans=[sid])[0], c.sc[0])


@pytest.fixture
def nifti_cohort(tmp_path):
    """Two scans of 4-D BOLD on a 6x6x6 grid, a mask, a 4-parcel atlas and a map."""
    rng = np.random.default_rng(0)
    d = tmp_path / "nii"
    d.mkdir()
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[1:5, 1:5, 1:5] = 1
    atlas = np.zeros((6, 6, 6), np.int16)
    atlas[1:3, 1:5, 1:5] = 10
    atlas[3:5, 1:5, 1:5] = 20
    atlas[1:5, 1:3, 1:3] += 1  # codes 10, 11, 20, 21
    nib.save(nib.Nifti1Image(mask, affine), d / "mask.nii.gz")
    nib.save(nib.Nifti1Image(atlas, affine), d / "atlas.nii.gz")
    (d / "atlas_labels.txt").write_text("10,L_front\n11,L_back\n20,R_front\n21,R_back\n")
    rows = []
    for k, sub in enumerate(["sub-01", "sub-02"]):
        bold = rng.standard_normal((6, 6, 6, 25)) + rng.standard_normal(25)
        nib.save(nib.Nifti1Image(bold.astype(np.float32), affine), d / f"{sub}_bold.nii.gz")
        rows.append({"subject": sub, "session": "pre", "group": "patient", "age": 30 + k})
    pd.DataFrame(rows).to_csv(d / "participants.tsv", sep="\t", index=False)
    nib.save(nib.Nifti1Image(rng.standard_normal((6, 6, 6)).astype(np.float32), affine), d / "myelin.nii.gz")
    return d, mask.astype(bool), atlas


def test_nifti_cohort_round_trip(nifti_cohort, tmp_path):
    d, mask, atlas = nifti_cohort
    before = _digest(d)
    out = tmp_path / "nii.h5"
    report = ingest(d / "participants.tsv", out, bold="{subject}_bold.nii.gz", mask=str(d / "mask.nii.gz"),
                    atlas=str(d / "atlas.nii.gz"), atlas_labels=str(d / "atlas_labels.txt"),
                    maps={"myelin": str(d / "myelin.nii.gz")})
    assert _digest(d) == before
    assert {"fc", "ts", "voxel/mask", "voxel/bold", "maps/myelin"} <= set(report.datasets)
    with rc.store.open(out) as st:
        assert list(st.labels) == ["L_front", "L_back", "R_front", "R_back"]
        bold = np.asarray(nib.load(str(d / "sub-02_bold.nii.gz")).dataobj, dtype=np.float64)
        np.testing.assert_allclose(st.read("voxel/bold")[1], bold[mask])
        vals = atlas[mask]
        expect = np.stack([bold[mask][vals == c].mean(axis=0) for c in (10, 11, 20, 21)])
        np.testing.assert_allclose(st.read("ts")[1], expect, rtol=1e-10)
        r = np.corrcoef(expect)
        np.fill_diagonal(r, 0)
        np.testing.assert_allclose(st.read("fc")[1], np.arctanh(r), rtol=1e-10, atol=1e-12)
        assert st.read("maps/myelin").shape == (int(mask.sum()),)
        np.testing.assert_allclose(st.voxel_affine, np.diag([3.0, 3.0, 3.0, 1.0]))
        assert list(st.scans["scan_id"]) == ["sub-01_ses-pre", "sub-02_ses-pre"]


def test_affine_mask_mismatch(nifti_cohort, tmp_path):
    d, mask, _ = nifti_cohort
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.diag([2.0, 2.0, 2.0, 1.0])), d / "mask2.nii.gz")
    with pytest.raises(InputError, match="sub-01_bold.nii.gz.*different affines"):
        ingest(d / "participants.tsv", tmp_path / "x.h5", bold="{subject}_bold.nii.gz", mask=str(d / "mask2.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((5, 6, 6), np.uint8), np.diag([3.0, 3.0, 3.0, 1.0])), d / "mask3.nii.gz")
    with pytest.raises(ShapeError, match="spatial shape"):
        ingest(d / "participants.tsv", tmp_path / "x.h5", bold="{subject}_bold.nii.gz", mask=str(d / "mask3.nii.gz"))


def test_bold_without_mask(nifti_cohort, tmp_path):
    d, _, _ = nifti_cohort
    with pytest.raises(InputError, match="mask must be given"):
        ingest(d / "participants.tsv", tmp_path / "x.h5", bold="{subject}_bold.nii.gz")


@pytest.mark.realdata
def test_hcp_matrices_round_trip(shared_data, tmp_path):
    sc, fc, labels = load_hcp(shared_data, "ctx")
    hcp = shared_data / "hcp"
    table = pd.DataFrame({"subject": ["hcp-group"], "session": ["1"], "group": ["hcp"],
                          "sc": [str(hcp / "strucMatrix_ctx.csv")], "fc": [str(hcp / "funcMatrix_ctx.csv")]})
    out = tmp_path / "hcp.h5"
    ingest(table, out, labels=str(hcp / "strucLabels_ctx.csv"))
    rc.store.validate(out, deep=True)
    with rc.store.open(out) as st:
        np.testing.assert_array_equal(st.read("sc")[0], sc)
        np.testing.assert_array_equal(st.read("fc")[0], fc)
        assert list(st.labels) == list(labels)
    res = cohort_coupling(out)
    ref = rc.coupling.nodal(sc, fc)
    np.testing.assert_allclose(res.coupling[0], ref.coupling, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(res.n_edges[0], ref.n_edges)


def test_voxel_only_store_needs_no_region_labels(nifti_cohort, tmp_path):
    """--bold --mask --voxel-sc without matrices or an atlas: a voxel-only store (no region labels), and
    `recouple coupling STORE --level voxel` runs on it; region-level coupling says to use --level voxel."""
    import subprocess
    import sys

    import scipy.sparse as sp

    d, mask, _ = nifti_cohort
    v = int(mask.sum())
    for k, sub in enumerate(["sub-01", "sub-02"]):
        a = sp.random(v, v, density=0.1, random_state=np.random.RandomState(k), format="csr")
        sp.save_npz(d / f"{sub}_voxsc.npz", ((a + a.T) / 2).tocsr())
    out = tmp_path / "vox.h5"
    cli = [sys.executable, "-m", "recouple"]
    done = subprocess.run(cli + ["ingest", str(d / "participants.tsv"), "-o", str(out), "--bold",
                                 "{subject}_bold.nii.gz", "--mask", str(d / "mask.nii.gz"), "--voxel-sc",
                                 "{subject}_voxsc.npz"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "no regions (voxel-only)" in done.stdout
    report = rc.store.validate(out, deep=True)
    assert report.n_regions == 0 and {"voxel/mask", "voxel/bold", "voxel/sc"} <= set(report.datasets)
    with rc.store.open(out) as st:
        assert st.labels.size == 0 and st.n_voxels == v
    done = subprocess.run(cli + ["coupling", str(out), "--level", "voxel", "--out", str(tmp_path / "maps")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "maps").glob("*.nii.gz"))) == 2
    res = cohort_coupling(out, level="voxel")
    assert res.coupling.shape == (2, v) and np.isfinite(res.coupling).any()
    with pytest.raises(StoreError, match="voxel-only.*level='voxel'"):
        cohort_coupling(out)
    with rc.store.open(out, "r+") as st, pytest.raises(StoreError, match="voxel-only"):
        st.write_array("sc", np.zeros((2, 4, 4)))
    # region geometry needs regions; matrices still need their labels
    with pytest.raises(InputError, match="no region labels"):
        ingest(d / "participants.tsv", tmp_path / "g.h5", bold="{subject}_bold.nii.gz", mask=str(d / "mask.nii.gz"),
               centroids=str(d / "participants.tsv"))


def test_create_voxel_only_store_and_validate_refuses_region_matrices(tmp_path):
    import h5py

    scans = {"scan_id": ["a", "b"], "subject": ["a", "b"], "session": ["1", "1"], "group": ["g", "g"]}
    st = rc.store.create(tmp_path / "v.h5", scans=scans, labels=None)
    st.write_voxel_mask(np.ones((2, 2, 2), bool), np.eye(4))
    st.close()
    assert rc.store.validate(tmp_path / "v.h5").n_regions == 0
    with h5py.File(tmp_path / "v.h5", "r+") as f:
        f.create_dataset("sc", data=np.zeros((2, 0, 0)))
    with pytest.raises(StoreError, match="no region labels.*'sc'"):
        rc.store.validate(tmp_path / "v.h5")
    with pytest.raises(ShapeError, match="at least 2"):
        rc.store.create(tmp_path / "one.h5", scans=scans, labels=["only"])
