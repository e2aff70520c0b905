"""The Dask runner over the store: chunk invariance, backends, resume after SIGKILL, distributed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

import recouple as rc
from recouple.workflows.coupling import cohort_coupling
from recouple.exceptions import InputError, StoreError


@pytest.fixture(scope="module")
def cohort():
    return rc.simulate.cohort(n_regions=30, n_patients=5, n_controls=3, seed=3)


@pytest.fixture
def store(tmp_path, cohort):
    path = tmp_path / "cohort.h5"
    rc.store.from_simulated(cohort, path).close()
    return path


def test_equals_in_memory_nodal(store, cohort):
    res = cohort_coupling(store)
    ref = rc.coupling.nodal(cohort.sc, cohort.fc)
    np.testing.assert_allclose(res.coupling, ref.coupling, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(res.n_edges, ref.n_edges)
    assert list(res.scan_ids) == list(cohort.scans["scan_id"])
    with rc.store.open(store) as st:
        np.testing.assert_array_equal(st.read_result(res.analysis, "coupling"), res.coupling)
        attrs = st.result_attrs(res.analysis)
    prov = attrs["provenance"]
    assert attrs["complete"]
    for key in ("recouple_version", "parameters", "backend", "device", "dtype", "chunking", "inputs", "seed"):
        assert key in prov
    assert set(prov["inputs"]) == {"sc", "fc"}


@pytest.mark.parametrize("method,edges", [("spearman", "sc_nonzero"), ("pearson", "offdiag")])
def test_chunk_sizes_give_identical_bytes(tmp_path, cohort, method, edges):
    outs = []
    for size in (1, 7, cohort.n_scans):
        path = tmp_path / f"c{size}.h5"
        rc.store.from_simulated(cohort, path).close()
        outs.append(cohort_coupling(path, method=method, edges=edges, chunk_size=size).coupling)
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()


def test_numpy_and_jax_agree(store):
    a = cohort_coupling(store, backend="numpy")
    b = cohort_coupling(store, backend="jax", name="jax_run", chunk_size=4)
    np.testing.assert_allclose(a.coupling, b.coupling, atol=1e-10, equal_nan=True)
    assert b.provenance["backend"] == "jax"


def test_rerun_skips_finished_chunks_and_overwrite_recomputes(store):
    first = cohort_coupling(store, chunk_size=3)
    again = cohort_coupling(store, chunk_size=5)  # resumes with the stored chunking
    assert (again.n_computed, again.n_skipped) == (0, first.n_computed)
    assert again.coupling.tobytes() == first.coupling.tobytes()
    redo = cohort_coupling(store, chunk_size=5, overwrite=True)
    assert redo.n_computed == 4 and redo.coupling.tobytes() == first.coupling.tobytes()


def test_other_parameters_under_same_name_raise(store):
    cohort_coupling(store, name="mine")
    with pytest.raises(StoreError, match="other parameters"):
        cohort_coupling(store, name="mine", min_edges=5)


def test_changed_inputs_are_detected(store, cohort):
    first = cohort_coupling(store, chunk_size=2)
    with h5py.File(store, "r+") as f:  # simulate an unfinished run on other data
        f[f"results/{first.analysis}/done"][0] = 0
    with rc.store.open(store, "r+") as st:
        st.write_array("fc", cohort.fc * 2.0, overwrite=True)
    with pytest.raises(StoreError, match="different input data"):
        cohort_coupling(store)


def test_memory_limit_sets_chunk_size(store):
    res = cohort_coupling(store, memory_limit="3MB", scheduler="sync")
    chunking = res.provenance["chunking"]
    assert chunking["chunk_size"] >= 1
    with pytest.raises(InputError, match="memory_limit"):
        cohort_coupling(store, memory_limit=1000, name="tiny")


def test_bad_scheduler_raises(store):
    with pytest.raises(InputError, match="scheduler"):
        cohort_coupling(store, scheduler="carrier-pigeon")


def test_processes_scheduler_matches_threads(store):
    a = cohort_coupling(store, scheduler="threads", chunk_size=3)
    b = cohort_coupling(store, scheduler="processes", chunk_size=3, name="procs")
    assert a.coupling.tobytes() == b.coupling.tobytes()


_LONG_RUN = textwrap.dedent(
    """
    import sys
    from recouple.workflows.coupling import cohort_coupling
    cohort_coupling(sys.argv[1], chunk_size=1, scheduler="sync")
    """
)


def test_sigkill_part_way_then_resume(tmp_path):
    cohort = rc.simulate.cohort(n_regions=120, n_patients=40, n_controls=10, seed=1)
    killed = tmp_path / "killed.h5"
    clean = tmp_path / "clean.h5"
    rc.store.from_simulated(cohort, killed).close()
    rc.store.from_simulated(cohort, clean).close()
    name = "coupling_spearman_sc_nonzero"
    env = dict(os.environ, RECOUPLE_PROGRESS="0")
    proc = subprocess.Popen([sys.executable, "-c", _LONG_RUN, str(killed)], env=env)
    done = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with h5py.File(killed, "r", locking=False) as f:
                    if f"results/{name}/done" in f:
                        done = int(f[f"results/{name}/done"][()].sum())
            except (OSError, KeyError):
                pass
            if done >= 5:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    report = rc.store.validate(killed)
    incomplete = dict((n, (d, t)) for n, d, t in report.incomplete)
    assert name in incomplete, "the run finished before it could be killed"
    done_at_kill, total = incomplete[name]
    assert 0 < done_at_kill < total
    resumed = cohort_coupling(killed, chunk_size=1)
    assert resumed.n_skipped == done_at_kill
    assert resumed.n_computed == total - done_at_kill
    reference = cohort_coupling(clean, chunk_size=1)
    assert resumed.coupling.tobytes() == reference.coupling.tobytes()
    assert resumed.n_edges.tobytes() == reference.n_edges.tobytes()
    assert rc.store.validate(killed).incomplete == ()


def test_distributed_local_cluster_matches_local(store):
    distributed = pytest.importorskip("distributed")
    local = cohort_coupling(store, chunk_size=3)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster, timeout="60s") as client:
        remote = cohort_coupling(store, chunk_size=3, client=client, name="on_cluster")
        via_address = cohort_coupling(store, chunk_size=3, scheduler=cluster.scheduler_address, name="via_address")
    assert remote.provenance["scheduler"].startswith("distributed")
    assert remote.coupling.tobytes() == local.coupling.tobytes()
    assert via_address.coupling.tobytes() == local.coupling.tobytes()


def test_progress_bar_draws_only_when_enabled(capsys, monkeypatch):
    from recouple.engine.progress import progress

    monkeypatch.setenv("RECOUPLE_PROGRESS", "1")
    assert list(progress(range(3), desc="work")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "work:" in err and "3/3" in err
    monkeypatch.setenv("RECOUPLE_PROGRESS", "0")
    list(progress(range(3), desc="quiet"))
    assert capsys.readouterr().err == ""


def test_provenance_file(tmp_path):
    from recouple.engine.provenance import build_provenance, write_provenance_file

    prov = build_provenance(analysis="a", params={"x": np.float64(1.5)}, backend="numpy", seed=4)
    target = write_provenance_file(tmp_path / "out.csv", prov)
    data = json.loads(target.read_text())
    assert data["parameters"] == {"x": 1.5} and data["seed"] == 4 and target.name == "out.csv.provenance.json"
