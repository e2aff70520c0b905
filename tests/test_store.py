"""The HDF5 cohort store: create/open/validate, tables, arrays, lazy handles, results."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

import recouple as rc
from recouple.exceptions import InputError, ShapeError, StoreError


@pytest.fixture
def cohort():
    return rc.simulate.cohort(n_regions=16, n_patients=2, n_controls=1, n_timepoints=20, seed=0)


def test_round_trip_simulated(tmp_path, cohort):
    path = tmp_path / "c.h5"
    rc.store.from_simulated(cohort, path).close()
    report = rc.store.validate(path, deep=True)
    assert report.n_scans == cohort.n_scans and "ts" in report.datasets
    with rc.store.open(path) as st:
        assert st.schema_version == rc.store.SCHEMA_VERSION
        np.testing.assert_array_equal(st.read("sc"), cohort.sc)
        np.testing.assert_array_equal(st.read("fc"), cohort.fc)
        np.testing.assert_array_equal(st.read("ts"), cohort.timeseries)
        np.testing.assert_array_equal(st.read("maps/change_map"), cohort.change_map)
        scans = st.scans
        assert list(scans.columns[:4]) == ["scan_id", "subject", "session", "group"]
        np.testing.assert_allclose(scans["hamd"], cohort.scans["hamd"])
        regions = st.regions
        assert list(regions.columns) == ["label", "hemisphere", "x", "y", "z"]
        np.testing.assert_allclose(regions[["x", "y", "z"]].to_numpy(), cohort.centroids)
        sel = st.read("sc", scans=[cohort.scans["scan_id"][3], cohort.scans["scan_id"][1]])
        np.testing.assert_array_equal(sel, cohort.sc[[3, 1]])
        lazy = st.lazy("fc")
        assert lazy.chunksize == (1, 16, 16)
        np.testing.assert_allclose(lazy.mean(axis=0).compute(), cohort.fc.mean(axis=0))
        handle = pickle.loads(pickle.dumps(st.handle("sc")))
        np.testing.assert_array_equal(handle[2], cohort.sc[2])
    assert rc.store.read_table(path, "regions").shape == (16, 5)


def test_create_refuses_existing_unless_overwrite(tmp_path, cohort):
    path = tmp_path / "c.h5"
    rc.store.from_simulated(cohort, path).close()
    with pytest.raises(StoreError, match="already exists"):
        rc.store.from_simulated(cohort, path)
    rc.store.from_simulated(cohort, path, overwrite=True).close()


def test_create_checks_tables(tmp_path):
    base = {"scan_id": ["a", "b"], "subject": ["s1", "s2"], "session": ["1", "1"], "group": ["x", "x"]}
    with pytest.raises(InputError, match="duplicates"):
        rc.store.create(tmp_path / "d.h5", scans={**base, "scan_id": ["a", "a"]}, labels=["L1", "R1"])
    with pytest.raises(InputError, match="missing group"):
        rc.store.create(tmp_path / "d.h5", scans={k: v for k, v in base.items() if k != "group"}, labels=["L1", "R1"])
    with pytest.raises(InputError, match="labels must be unique"):
        rc.store.create(tmp_path / "d.h5", scans=base, labels=["L1", "L1"])
    with pytest.raises(ShapeError, match="centroids"):
        rc.store.create(tmp_path / "d.h5", scans=base, labels=["L1", "R1"], centroids=np.zeros((3, 3)))


def test_write_checks_shapes_and_mode(tmp_path, cohort):
    path = tmp_path / "c.h5"
    with rc.store.from_simulated(cohort, path) as st:
        with pytest.raises(ShapeError, match="must have shape"):
            st.write_array("sc", cohort.sc[:, :5, :5], overwrite=True)
        with pytest.raises(StoreError, match="already holds"):
            st.write_array("sc", cohort.sc)
        st.write_array("maps/thickness", np.arange(16.0), attrs={"space": "region"})
    with rc.store.open(path) as st:
        with pytest.raises(StoreError, match="read-only"):
            st.write_array("maps/x", np.zeros(16))
        with pytest.raises(StoreError, match="no dataset 'maps/nothing'"):
            st.read("maps/nothing")
        with pytest.raises(InputError, match="unknown"):
            st.read("sc", scans=["nobody"])


def test_results_round_trip(tmp_path, cohort):
    path = tmp_path / "c.h5"
    with rc.store.from_simulated(cohort, path) as st:
        st.write_result("mine", "stat", np.arange(4.0), attrs={"provenance": {"seed": 1}})
    with rc.store.open(path) as st:
        np.testing.assert_array_equal(st.read_result("mine", "stat"), np.arange(4.0))
        assert st.result_attrs("mine")["provenance"] == {"seed": 1}
        assert st.results() == ["mine"]


def test_validate_reports_problems(tmp_path, cohort):
    with pytest.raises(StoreError, match="does not exist"):
        rc.store.validate(tmp_path / "none.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(StoreError, match="HDF5|opened"):
        rc.store.validate(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(StoreError, match="not a recouple cohort store"):
        rc.store.validate(other)
    path = tmp_path / "c.h5"
    rc.store.from_simulated(cohort, path).close()
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(StoreError, match="schema_version 99"):
        rc.store.validate(path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 1
        del f["fc"]
        f["fc"] = np.zeros((2, 16, 16))
    with pytest.raises(StoreError, match="/fc has shape"):
        rc.store.validate(path)
    with h5py.File(path, "r+") as f:
        del f["fc"]
        f["fc"] = np.full((cohort.n_scans, 16, 16), np.nan)
    rc.store.validate(path)
    with pytest.raises(StoreError, match="NaN"):
        rc.store.validate(path, deep=True)


def test_voxel_sc_checks(tmp_path, cohort):
    path = tmp_path / "c.h5"
    with rc.store.from_simulated(cohort, path) as st:
        st.write_voxel_mask(np.ones((2, 2, 2)), np.eye(4))
        with pytest.raises(ShapeError, match="CSR"):
            st.write_voxel_sc(0, [1.0, 2.0], [0], [0, 1, 2, 2, 2, 2, 2, 2, 2])
        with pytest.raises(InputError, match="indices must lie"):
            st.write_voxel_sc(0, [1.0], [9], [0, 1, 1, 1, 1, 1, 1, 1, 1])
        st.write_voxel_sc(0, [1.0], [3], [0, 1, 1, 1, 1, 1, 1, 1, 1])
        data, indices, indptr = st.read_voxel_sc(0)
        assert indices.tolist() == [3] and indptr[-1] == 1
