"""Reading the store for the region-level coupling step: rows read through one
open file, checksums of input datasets cached at write time (and never
trusted once the data changed), and local runs that never load distributed."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import recouple as rc
import recouple.io.checksums as io_checksums
from recouple.exceptions import InputError, StoreError
from recouple.io.store import DIGEST_ATTR, WRITES_ATTR, checksum, iter_rows
from recouple.workflows.coupling import cohort_coupling

NAME = "coupling_spearman_sc_nonzero"


@pytest.fixture(scope="module")
def cohort():
    return rc.simulate.cohort(n_regions=24, n_patients=4, n_controls=3, seed=5)


@pytest.fixture
def store(tmp_path, cohort):
    path = tmp_path / "cohort.h5"
    with rc.store.from_simulated(cohort, path) as st:
        ts = np.random.default_rng(0).standard_normal((cohort.n_scans, cohort.n_regions, 12))
        st.write_array("ts", ts.astype(np.float32), overwrite=True)
        st.write_array("maps/ints", np.arange(cohort.n_regions, dtype=np.int32))
        st.write_array("maps/flags", np.arange(cohort.n_regions) % 3 == 0)
    return path


def _reference_sha256(path, name):
    """The checksum as computed before checksums were cached: the dataset's header and all its bytes."""
    with h5py.File(path, "r", locking=False) as f:
        ds = f[name]
        return hashlib.sha256(str(("", ds.shape, ds.dtype.str)).encode()
                              + np.ascontiguousarray(ds[()]).tobytes()).hexdigest()


def _no_hashing(monkeypatch):
    def fail(obj):
        raise AssertionError(f"{obj.name} was hashed although its checksum is cached")

    monkeypatch.setattr(io_checksums, "_compute_digest", fail)


def test_iter_rows_gives_the_stored_rows(store):
    with rc.store.open(store) as st:
        handles = (st.handle("sc"), st.handle("fc"), st.handle("ts"))
        expected = [st.read(n) for n in ("sc", "fc", "ts")]
    seen = []
    for i, rows in iter_rows(handles, 2, 6):
        seen.append(i)
        for row, full in zip(rows, expected):
            assert row.dtype == full.dtype
            assert row.tobytes() == full[i].tobytes()
    assert seen == [2, 3, 4, 5]
    assert list(iter_rows(handles, 3, 3)) == []


def test_iter_rows_reads_every_layout(store, monkeypatch):
    """Rows read as raw bytes (one-row chunks in either byte order, contiguous) and rows read through
    HDF5 (compressed, several rows per chunk, rows never written) hold the same values as ``handle[i]``."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((5, 4, 3))
    with h5py.File(store, "r+", locking=False) as f:
        f.create_dataset("x/rowchunk", data=data, chunks=(1, 4, 3))
        f.create_dataset("x/contiguous", data=data)
        f.create_dataset("x/gzip", data=data, chunks=(1, 4, 3), compression="gzip")
        f.create_dataset("x/blocks", data=data, chunks=(2, 4, 3))
        f.create_dataset("x/bigendian", data=data.astype(">f8"), chunks=(1, 4, 3))
        f.create_dataset("x/ints", data=(data * 100).astype(np.int16), chunks=(1, 4, 3))
        part = f.create_dataset("x/partial", shape=data.shape, dtype="f8", chunks=(1, 4, 3), fillvalue=np.nan)
        part[1] = data[1]
        part[3] = data[3]
    names = ["rowchunk", "contiguous", "gzip", "blocks", "bigendian", "ints", "partial"]
    with rc.store.open(store) as st:
        handles = tuple(st.handle(f"x/{n}") for n in names)
    hdf5_reads = []
    read_direct = h5py.Dataset.read_direct
    monkeypatch.setattr(h5py.Dataset, "read_direct",
                        lambda self, *a, **k: (hdf5_reads.append(self.name), read_direct(self, *a, **k))[1])
    for i, rows in iter_rows(handles, 0, 5):
        for h, row in zip(handles, rows):
            assert row.dtype == h.dtype and row.tobytes() == h[i].tobytes(), (h.name, i)
    assert set(hdf5_reads) == {"/x/gzip", "/x/blocks", "/x/partial"}
    assert hdf5_reads.count("/x/partial") == 3  # the rows never written: their fill value


def test_iter_rows_refuses_handles_of_two_stores(store, tmp_path, cohort):
    other = tmp_path / "other.h5"
    rc.store.from_simulated(cohort, other).close()
    with rc.store.open(store) as a, rc.store.open(other) as b:
        handles = (a.handle("sc"), b.handle("fc"))
    with pytest.raises(InputError, match="one store"):
        list(iter_rows(handles, 0, 1))


def test_cached_checksums_equal_the_hash_of_the_data(store, monkeypatch):
    names = ["sc", "fc", "ts", "maps/ints", "maps/flags"]
    computed = checksum(store, names, cached=False)
    for name in names:
        assert computed[name] == _reference_sha256(store, name), name
    _no_hashing(monkeypatch)
    assert checksum(store, names) == computed
    with h5py.File(store, "r", locking=False) as f:
        for name in names:
            assert f[name].attrs[DIGEST_ATTR] == f"{f[name].attrs[WRITES_ATTR]}:{computed[name]}"


def test_rewriting_rows_drops_the_cached_checksum(store, cohort):
    before = checksum(store, ["fc"])["fc"]
    with rc.store.open(store, "r+") as st:
        st.write_array("fc", cohort.fc[[1]] * 0.5, scans=[1])
    with h5py.File(store, "r", locking=False) as f:
        assert DIGEST_ATTR not in f["fc"].attrs
    after = checksum(store, ["fc"])["fc"]
    assert after != before
    assert after == _reference_sha256(store, "fc")


def test_a_resume_over_rewritten_rows_is_refused(store, cohort):
    first = cohort_coupling(store, chunk_size=2)
    with h5py.File(store, "r+", locking=False) as f:  # an unfinished run
        f[f"results/{first.analysis}/done"][0] = 0
    with rc.store.open(store, "r+") as st:
        st.write_array("sc", cohort.sc[[0]] * 2.0, scans=[0])
    with pytest.raises(StoreError, match="different input data"):
        cohort_coupling(store)


def test_an_edit_outside_recouple_is_found_and_refreshed(store):
    with h5py.File(store, "r+", locking=False) as f:  # raw h5py: no write counter is raised
        row = f["sc"][2]
        f["sc"][2] = row * 3.0
    rc.store.validate(store)  # the quick check does not read the data
    with pytest.raises(StoreError, match=r"/sc .*changed outside recouple.*refresh_checksums"):
        rc.store.validate(store, deep=True)
    with rc.store.open(store, "r+") as st:
        refreshed = st.refresh_checksums()
    assert refreshed["sc"] == _reference_sha256(store, "sc")
    assert checksum(store, ["sc"])["sc"] == refreshed["sc"]
    rc.store.validate(store, deep=True)


def test_a_run_caches_the_checksums_of_an_older_store(store, monkeypatch):
    with h5py.File(store, "r+", locking=False) as f:  # as written before checksums were cached
        for name in ("sc", "fc"):
            for key in (DIGEST_ATTR, WRITES_ATTR):
                del f[name].attrs[key]
    first = cohort_coupling(store)
    assert first.provenance["inputs"] == {n: _reference_sha256(store, n) for n in ("sc", "fc")}
    with h5py.File(store, "r", locking=False) as f:
        assert f["sc"].attrs[WRITES_ATTR] == 0 and DIGEST_ATTR in f["sc"].attrs
        assert DIGEST_ATTR not in f[f"results/{first.analysis}/coupling"].attrs  # results are never cached
    _no_hashing(monkeypatch)
    again = cohort_coupling(store, overwrite=True)
    assert again.provenance["inputs"] == first.provenance["inputs"]
    assert again.coupling.tobytes() == first.coupling.tobytes()


def test_results_datasets_are_always_hashed(store):
    res = cohort_coupling(store)
    key = f"results/{res.analysis}/coupling"
    before = checksum(store, [key])[key]
    with h5py.File(store, "r+", locking=False) as f:  # the runner writes results chunk by chunk in place
        f[key][0, 0] = 123.0
    assert checksum(store, [key])[key] != before


def _run(code, *args, env=None):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, env=dict(os.environ, RECOUPLE_PROGRESS="0", **(env or {})), timeout=300)


def test_a_local_run_does_not_import_distributed(store):
    # dask.compute(scheduler="threads") imports distributed (about a second) to look for a client
    out = _run("""
        import sys
        from recouple.workflows.coupling import cohort_coupling
        for scheduler in ("threads", "sync"):
            cohort_coupling(sys.argv[1], scheduler=scheduler, overwrite=True)
        print("distributed" in sys.modules)
    """, store)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_killed_after_a_chunk_then_resumed_gives_the_same_bytes(store, tmp_path, cohort):
    clean = tmp_path / "clean.h5"
    rc.store.from_simulated(cohort, clean).close()
    out = _run("""
        import sys
        from recouple.workflows.coupling import cohort_coupling
        cohort_coupling(sys.argv[1], chunk_size=2, scheduler="sync")
    """, store, env={"RECOUPLE_FAULT_AT": f"{NAME}:chunk1"})
    assert out.returncode == 137, out.stderr
    resumed = cohort_coupling(store)
    assert (resumed.n_skipped, resumed.n_computed) == (2, -(-cohort.n_scans // 2) - 2)
    reference = cohort_coupling(clean, chunk_size=2)
    assert resumed.coupling.tobytes() == reference.coupling.tobytes()
    assert resumed.n_edges.tobytes() == reference.n_edges.tobytes()
    assert resumed.provenance["inputs"] == reference.provenance["inputs"]
