"""One safe-name rule for every file name derived from data (recouple.validation.safe_name),
applied when ingesting (scan ids, map and result names) and when reading stores made
elsewhere (`recouple export` never writes outside -o); and `recouple export --long`."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.cli import main
from recouple.exceptions import InputError
from recouple.validation import safe_name

BAD = {
    "": "empty",
    "../../x": "path separator",
    "..": "starts with '.'",
    ".hidden": "starts with '.'",
    "/etc/passwd": "path separator",
    "a\\b": "path separator",
    "C:x": "drive prefix",
    "a\x00b": "control character",
    "tab\there": "control character",
    "x" * 201: "201 characters",
}


@pytest.mark.parametrize("value", list(BAD), ids=[repr(v)[:20] for v in BAD])
def test_safe_name_refuses(value):
    with pytest.raises(InputError) as info:
        safe_name(value, "scan_id")
    msg = str(info.value)
    assert msg.startswith("scan_id must be usable as a file name")
    assert BAD[value] in msg
    assert "Rename it" in msg


@pytest.mark.parametrize("value", ["sub-01_ses-1", "a.b", "x" * 200, "Patient 3", "région", "A9/46d"[:2]])
def test_safe_name_accepts(value):
    assert safe_name(value, "scan_id") == value


def test_safe_name_non_string():
    with pytest.raises(InputError, match="map name must be a string"):
        safe_name(3, "map name")
    assert safe_name(np.str_("ok"), "x") == "ok"


def _scans(ids):
    n = len(ids)
    return {"scan_id": ids, "subject": [f"s{i}" for i in range(n)], "session": ["a"] * n, "group": ["g"] * n}


@pytest.mark.parametrize("bad", ["../../x", "/abs/path", ".x", "a\x00b", ""])
def test_create_store_refuses_unsafe_scan_ids(tmp_path, bad):
    with pytest.raises(InputError, match="scan_id must be usable as a file name"):
        rc.store.create(tmp_path / "s.h5", scans=_scans(["ok", bad]), labels=["L1", "R1"])
    assert not (tmp_path / "s.h5").exists()


def test_store_write_paths_refuse_unsafe_names(tmp_path):
    with rc.store.create(tmp_path / "s.h5", scans=_scans(["a", "b"]), labels=["L1", "R1"]) as st:
        with pytest.raises(InputError, match="map name must be usable"):
            st.write_array("maps/../x", np.zeros(2))
        with pytest.raises(InputError, match="map name must be usable"):
            st.write_array("maps/.x", np.zeros(2))
        with pytest.raises(InputError, match="analysis name must be usable"):
            st.write_result("../up", "coupling", np.zeros(2))
        with pytest.raises(InputError, match="result name must be usable"):
            st.write_result("ok", "a/b", np.zeros(2))
        st.write_array("maps/thickness", np.zeros(2))
        st.write_result("ok", "coupling", np.zeros(2))


# --- export: stores made elsewhere must not make export write outside -o


def _store_with_result(tmp_path, *, voxel=False):
    path = tmp_path / "s.h5"
    with rc.store.create(tmp_path / "s.h5", scans={**_scans(["a", "b"]), "age": [30.0, 41.5]},
                         labels=["L1", "R1"]) as st:
        if voxel:
            st.write_voxel_mask(np.ones((2, 2, 1)), np.eye(4))
            st.write_result("vox", "coupling", np.arange(8.0).reshape(2, 4),
                            attrs={"provenance": {"parameters": {"level": "voxel"}}})
        else:
            st.write_result("mine", "coupling", np.array([[0.1, 0.2], [0.3, 0.4]]), attrs={"provenance": {"seed": 1}})
    return path


def _set_scan_ids(path, ids):
    with h5py.File(path, "r+") as f:
        del f["scans/scan_id"]
        f["scans"].create_dataset("scan_id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype("utf-8"))


def _files_outside(root, out):
    return sorted(p for p in root.rglob("*") if p.is_file() and out not in p.parents and p.suffix != ".h5")


@pytest.mark.parametrize("fmt", ["gifti", "nifti"])
@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_export_never_writes_outside_out(tmp_path, capsys, fmt, kind):
    pytest.importorskip("nibabel")
    work = tmp_path / "deep" / "er"
    work.mkdir(parents=True)
    store = _store_with_result(work, voxel=fmt == "nifti")
    escape = "../../x" if kind == "relative" else str(tmp_path / "abs")
    _set_scan_ids(store, ["a", escape])
    out = work / "out"
    result = "vox" if fmt == "nifti" else "mine"
    assert main(["export", str(store), result, "-o", str(out), "--format", fmt]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scan_id" in err[0] and "must be usable as a file name" in err[0], err
    assert _files_outside(tmp_path, out) == []
    assert not list(out.glob("*")) if out.exists() else True


def test_export_refuses_unsafe_result_or_dataset_name(tmp_path):
    from recouple.cli.export import export_result

    store = _store_with_result(tmp_path)
    with pytest.raises(InputError, match="result name must be usable as a file name"):
        export_result(str(store), "../mine", tmp_path / "out")
    with pytest.raises(InputError, match="--dataset must be usable as a file name"):
        export_result(str(store), "mine", tmp_path / "out", dataset="..")


def test_export_long_table(tmp_path, capsys):
    store = _store_with_result(tmp_path)
    out = tmp_path / "out"
    assert main(["export", str(store), "mine", "-o", str(out), "--long"]) == 0
    printed = capsys.readouterr().out
    wide = pd.read_csv(out / "mine.csv")
    assert list(wide.columns) == ["scan_id", "L1", "R1"]
    assert "mine_long.csv" in printed
    long = pd.read_csv(out / "mine_long.csv")
    assert list(long.columns) == ["scan_id", "subject", "session", "group", "age", "region", "value"]
    assert long.shape == (4, 7)
    assert long["scan_id"].tolist() == ["a", "a", "b", "b"]
    assert long["region"].tolist() == ["L1", "R1", "L1", "R1"]
    np.testing.assert_allclose(long["value"], [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(long["age"], [30.0, 30.0, 41.5, 41.5])
    # the long table agrees with the wide one, cell by cell
    back = long.pivot(index="scan_id", columns="region", values="value").reset_index()
    pd.testing.assert_frame_equal(back[["scan_id", "L1", "R1"]], wide, check_names=False)


def test_export_long_needs_csv(tmp_path, capsys):
    store = _store_with_result(tmp_path)
    assert main(["export", str(store), "mine", "-o", str(tmp_path / "o"), "--long", "--format", "gifti"]) == 2
    assert "--long" in capsys.readouterr().err
