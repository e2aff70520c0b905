"""Faults of `recouple run`: changed inputs must never be reported as done,
a run killed at any write point resumes to the same bytes, two runs on one
output folder, a full disk, a file size limit and unwritable outputs.

The kill points use the test hook ``RECOUPLE_FAULT_AT`` (recouple.io.files):
the pipeline ends itself with ``os._exit(137)`` when it reaches the named
point, as a SIGKILL there would."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.cli import main
from recouple.io.files import FAULT_ENV, FolderLock, atomic_open
from recouple.study import write_config
from recouple.workflows.checkpoints import Steps, step_key
from recouple.workflows.coupling import coupling_result_name
from recouple.workflows.pipeline import StudyResult

N_PERM = 100
CONTRAST = "contrast_post_vs_pre_patients"
COUPLING = coupling_result_name(method="spearman", edges="sc_nonzero", level="region")
TABLES = ("coupling.csv", f"{CONTRAST}.csv", "clinical.csv", "genes.csv", "genes.rnk", "pls1_genes.csv",
          "maps.csv", "enrichment.csv")


def _env(**extra):
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, RECOUPLE_BACKEND="numpy", PYTHONPATH=os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop(FAULT_ENV, None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A small simulated study: store, expression CSV, gene sets, a maps table and STUDY.toml."""
    from recouple.workflows.demo import demo_config

    folder = tmp_path_factory.mktemp("template")
    sim = rc.simulate.cohort(n_regions=24, n_patients=8, n_controls=4, n_genes=80, effect=0.8, seed=5)
    rc.store.from_simulated(sim, folder / "cohort.h5", overwrite=True).close()
    expr = pd.DataFrame(sim.expression, columns=sim.genes)
    expr.insert(0, "label", sim.labels)
    expr.to_csv(folder / "expression.csv", index=False)
    rc.simulate.write_gmt(folder / "gene_sets.gmt", rc.simulate.gene_sets(sim, n_random=6, min_size=5, seed=5))
    rng = np.random.default_rng(5)
    pd.DataFrame({"label": sim.labels, "receptor": rng.normal(size=sim.n_regions)}).to_csv(folder / "maps.csv",
                                                                                          index=False)
    cfg = demo_config(n_perm=N_PERM, n_nulls=N_PERM, seed=5, backend="numpy")
    cfg["association"].update(expression="expression.csv", maps=["maps.csv"], pls_bootstrap=20)
    cfg["enrichment"].update(min_size=5)
    cfg["compute"]["chunk_size"] = 4
    write_config(folder / "STUDY.toml", cfg)
    return folder


@pytest.fixture
def study(template, tmp_path):
    """A private copy of the template study: its STUDY.toml path."""
    folder = tmp_path / "study"
    shutil.copytree(template, folder)
    return folder / "STUDY.toml"


@pytest.fixture(scope="module")
def reference(template, tmp_path_factory):
    """The tables of an uninterrupted run, as bytes."""
    folder = tmp_path_factory.mktemp("reference")
    shutil.copytree(template, folder, dirs_exist_ok=True)
    assert main(["run", str(folder / "STUDY.toml")]) == 0
    return {name: (folder / "results" / "tables" / name).read_bytes() for name in TABLES}


def _tables(study):
    return {name: (study.parent / "results" / "tables" / name).read_bytes() for name in TABLES}


def _leftovers(out: Path):
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*.tmp"))


def _run(study, capsys, *extra):
    capsys.readouterr()
    code = main(["run", str(study), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- 1. changed inputs are recomputed


def test_changed_expression_is_recomputed(study, reference, capsys):
    code, out, _ = _run(study, capsys)
    assert code == 0 and _tables(study) == reference
    expr = pd.read_csv(study.parent / "expression.csv")
    rng = np.random.default_rng(0)
    genes = expr.columns[1:]
    expr[genes] = rng.normal(size=(len(expr), len(genes)))  # other numbers, same shape and names
    expr.to_csv(study.parent / "expression.csv", index=False)
    code, out, _ = _run(study, capsys)
    assert code == 0
    assert "[genes] recomputing (expression.csv changed)" in out
    assert "[enrichment] recomputing (expression.csv changed)" in out
    assert "[maps] recomputing" not in out and "[nulls] recomputing" not in out
    after = _tables(study)
    assert after["genes.csv"] != reference["genes.csv"] and after["enrichment.csv"] != reference["enrichment.csv"]
    assert after[f"{CONTRAST}.csv"] == reference[f"{CONTRAST}.csv"]
    # what a fresh run on the new expression table gives
    fresh = study.parent / "fresh"
    assert main(["run", str(study), "--out", str(fresh)]) == 0
    for name in ("genes.csv", "enrichment.csv", "pls1_genes.csv"):
        assert (fresh / "tables" / name).read_bytes() == after[name], name


def test_renamed_gene_sets_are_recomputed(study, capsys):
    assert _run(study, capsys)[0] == 0
    gmt = study.parent / "gene_sets.gmt"
    lines = gmt.read_text().splitlines()
    gmt.write_text("".join("RENAMED_" + line + "\n" for line in lines))
    code, out, _ = _run(study, capsys)
    assert code == 0
    assert "[enrichment] recomputing (gene_sets.gmt changed)" in out
    assert "[genes] recomputing" not in out
    categories = pd.read_csv(study.parent / "results" / "tables" / "enrichment.csv")["category"]
    assert categories.str.startswith("RENAMED_").all()


def test_changed_map_table_and_store_regions_are_recomputed(study, capsys):
    assert _run(study, capsys)[0] == 0
    maps = pd.read_csv(study.parent / "maps.csv")
    maps["receptor"] = maps["receptor"][::-1].to_numpy()
    maps.to_csv(study.parent / "maps.csv", index=False)
    code, out, _ = _run(study, capsys)
    assert code == 0 and "[maps] recomputing (maps.csv changed)" in out and "[genes] recomputing" not in out
    with h5py.File(study.parent / "cohort.h5", "r+", locking=False) as f:
        f["regions/centroids"][0, 0] += 1.0  # spin nulls read the geometry
    code, out, _ = _run(study, capsys)
    line = next(line for line in out.splitlines() if line.startswith("[nulls] recomputing ("))
    assert code == 0 and "store /regions" in line and "settings" not in line, line


def test_same_bytes_new_mtime_is_reused_new_bytes_same_stamp_is_not(study, capsys):
    assert _run(study, capsys)[0] == 0
    expr = study.parent / "expression.csv"
    st = expr.stat()
    os.utime(expr, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    code, out, _ = _run(study, capsys)
    assert code == 0 and "recomputing" not in out
    # same size, same mtime, other bytes: only hashing the content sees it
    st = expr.stat()
    data = bytearray(expr.read_bytes())
    i = data.rindex(b".") + 1
    data[i] = ord("1") if data[i] != ord("1") else ord("2")
    expr.write_bytes(bytes(data))
    os.utime(expr, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert expr.stat().st_size == st.st_size
    code, out, _ = _run(study, capsys)
    assert code == 0 and "[genes] recomputing (expression.csv changed)" in out


def test_steps_never_pair_an_old_marker_with_new_arrays(tmp_path, monkeypatch):
    """A save killed between the arrays and the marker must not let the old
    marker vouch for the new arrays when the old key comes back."""
    res = StudyResult(tmp_path, tmp_path / "r.html", tmp_path / "p.json")
    steps = Steps(tmp_path, False, res)
    k1, k2 = step_key({"a": 1}), step_key({"a": 2})
    steps.save("s", k1, {"x": np.array([1.0])})

    def boom(*a, **k):
        raise RuntimeError("killed")

    import recouple.workflows.checkpoints as cp

    monkeypatch.setattr(cp, "atomic_write", boom)
    with pytest.raises(RuntimeError):
        steps.save("s", k2, {"x": np.array([2.0])})
    monkeypatch.undo()
    assert steps.load("s", k1) is None and steps.load("s", k2) is None
    saved, state = steps.run("s", k1, lambda: {"x": np.array([1.0])})
    assert state == "computed" and saved["x"][0] == 1.0


def test_damaged_arrays_are_recomputed(tmp_path):
    logs = []
    res = StudyResult(tmp_path, tmp_path / "r.html", tmp_path / "p.json")
    steps = Steps(tmp_path, False, res, log=logs.append)
    key = step_key({"a": 1})
    steps.save("s", key, {"x": np.arange(3.0)})
    npz = tmp_path / "steps" / "s.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    _, state = steps.run("s", key, lambda: {"x": np.arange(3.0)})
    assert state == "computed" and logs == ["[s] recomputing (its saved arrays are damaged)"]


def test_markers_of_an_earlier_version_are_not_trusted(tmp_path):
    logs = []
    res = StudyResult(tmp_path, tmp_path / "r.html", tmp_path / "p.json")
    steps = Steps(tmp_path, False, res, log=logs.append)
    np.savez(tmp_path / "steps" / "s.npz", x=np.arange(2.0))
    (tmp_path / "steps" / "s.done.json").write_text(json.dumps({"key": str(step_key({"a": 1}))}))
    assert steps.run("s", step_key({"a": 1}), lambda: {"x": np.arange(2.0)})[1] == "computed"
    assert "earlier version" in logs[0]


# ----------------------------------------------------------------------------- 2. one run per output folder


def test_atomic_writes_use_unique_temporaries(tmp_path):
    target = tmp_path / "t.txt"
    with atomic_open(target, "w") as a, atomic_open(target, "w") as b:  # two writers at once
        a.write("first")
        b.write("second")
    assert target.read_text() == "first"  # the outer one replaced last
    with pytest.raises(RuntimeError):
        with atomic_open(target, "wb") as fh:
            fh.write(b"half")
            raise RuntimeError
    assert target.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_second_run_on_one_output_folder_is_refused(study, capsys):
    out = study.parent / "results"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from recouple.io.files import FolderLock; "
         "FolderLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)", str(out)],
        env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        code, _, err = _run(study, capsys)
        assert code == 1 and time.perf_counter() - t0 < 10  # refused at once, before any compute
        assert f"pid {holder.pid}" in err and "started" in err and "in use" in err and ".recouple.lock" in err
        assert "Traceback" not in err and not (out / "steps").exists()
    finally:
        holder.kill()
        holder.wait()
    assert _run(study, capsys)[0] == 0  # the lock of a killed process is gone with it


def test_two_real_runs_on_one_output_folder(study, capsys, reference):
    first = subprocess.Popen([sys.executable, "-m", "recouple", "run", str(study)], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = study.parent / "results" / ".recouple.lock"
    deadline = time.time() + 120
    while first.poll() is None and time.time() < deadline:
        try:
            if json.loads(lock.read_text()).get("pid") == first.pid:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    code, _, err = _run(study, capsys)
    still_running = first.poll() is None
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    if not still_running:
        pytest.skip("the first run finished before the second one started")
    assert code == 1 and f"pid {first.pid}" in err and "Traceback" not in err
    assert _tables(study) == reference and _leftovers(study.parent / "results") == []


def test_lock_is_released_and_reacquired(tmp_path):
    with FolderLock(tmp_path) as lock:
        info = json.loads(lock.path.read_text())
        assert info["pid"] == os.getpid() and "started" in info and "host" in info
    assert not (tmp_path / ".recouple.lock").exists()
    with FolderLock(tmp_path):
        pass


# ----------------------------------------------------------------------------- 3. full disk, size limit, bad output


def _assert_clean_failure(code, err, *words):
    assert code == 1, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for w in words:
        assert w in err, err


def test_disk_full_while_saving_a_step(study, reference, capsys, monkeypatch):
    import recouple.workflows.checkpoints as cp

    real = np.savez

    def savez(file, **arrays):
        if "pls_weights" in arrays:  # the genes step
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(file, **arrays)

    monkeypatch.setattr(cp.np, "savez", savez)
    code, _, err = _run(study, capsys)
    _assert_clean_failure(code, err, "no space left on device (ENOSPC)", "genes.npz", "finished results are kept")
    out = study.parent / "results"
    assert (out / "steps" / f"{CONTRAST}.done.json").is_file() and (out / "steps" / "nulls.done.json").is_file()
    assert not (out / "steps" / "genes.done.json").exists() and _leftovers(out) == []
    monkeypatch.undo()
    code, out_text, _ = _run(study, capsys)
    assert code == 0 and "resumed:" in out_text and _tables(study) == reference


def test_disk_full_while_writing_a_table(study, reference, capsys, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "enrichment.csv:tmp:ENOSPC")
    code, _, err = _run(study, capsys)
    _assert_clean_failure(code, err, "(ENOSPC)", "enrichment.csv")
    assert _leftovers(study.parent / "results") == []
    monkeypatch.delenv(FAULT_ENV)
    assert _run(study, capsys)[0] == 0 and _tables(study) == reference


def test_disk_full_while_allocating_in_the_store_resumes(study, reference, capsys, monkeypatch):
    """ENOSPC after the first coupling output was allocated left a result
    group without completion flags, which blocked every later run."""
    real = h5py.Group.create_dataset
    calls = []

    def create_dataset(self, name, *args, **kwargs):
        if self.name == f"/results/{COUPLING}":
            calls.append(name)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "Unable to synchronously create dataset")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", create_dataset)
    code, _, err = _run(study, capsys)
    _assert_clean_failure(code, err, "no space left on device (ENOSPC)", "cohort.h5")
    with h5py.File(study.parent / "cohort.h5", "r", locking=False) as f:
        assert "done" not in f[f"results/{COUPLING}"]  # half-created
    monkeypatch.undo()
    code, _, err = _run(study, capsys)
    assert code == 0, err
    assert _tables(study) == reference


def test_file_size_limit_in_the_store_then_resume(study, reference):
    """A real EFBIG: the first run may not grow the store (RLIMIT_FSIZE)."""
    limit = (study.parent / "cohort.h5").stat().st_size + 512

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    first = subprocess.run([sys.executable, "-m", "recouple", "run", str(study)], env=_env(), capture_output=True,
                           text=True, timeout=300, preexec_fn=small_files)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "(EFBIG)" in first.stderr and "cohort.h5" in first.stderr and "Traceback" not in first.stderr
    again = subprocess.run([sys.executable, "-m", "recouple", "run", str(study)], env=_env(), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _tables(study) == reference


def test_output_that_is_a_file(study, capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = _run(study, capsys, "--out", str(blocker))
    _assert_clean_failure(code, err, "is a file, not a folder")
    code, _, err = _run(study, capsys, "--out", str(blocker / "sub"))
    _assert_clean_failure(code, err, "part of its path is a file")
    assert blocker.read_text() == "x"


def test_read_only_output_folder(study, capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("permissions do not bind this user (root): chmod cannot make a folder read-only")
        code, _, err = _run(study, capsys, "--out", str(ro))
        _assert_clean_failure(code, err, "not writable")
        code, _, err = _run(study, capsys, "--out", str(ro / "new"))
        _assert_clean_failure(code, err, "permission denied")
    finally:
        ro.chmod(0o755)


def test_read_only_steps_folder_after_a_run(study, capsys, reference):
    """A folder that turned read-only under a finished run: one message, nothing lost."""
    assert _run(study, capsys)[0] == 0
    tables = study.parent / "results" / "tables"
    tables.chmod(0o555)
    try:
        if os.access(tables, os.W_OK):
            pytest.skip("permissions do not bind this user (root): chmod cannot make a folder read-only")
        code, _, err = _run(study, capsys)
        _assert_clean_failure(code, err, "permission denied (EACCES)")
    finally:
        tables.chmod(0o755)
    assert _tables(study) == reference


# ----------------------------------------------------------------------------- 5. kill at every write point


KILL_POINTS = [
    f"{COUPLING}:allocating",  # a result group half-created in the store
    f"{COUPLING}:chunk1",
    "coupling.csv:tmp",
    f"{CONTRAST}:computed",
    f"{CONTRAST}.npz:tmp",
    f"{CONTRAST}:saved",
    f"{CONTRAST}.done.json:tmp",
    f"{CONTRAST}:done",
    "clinical:saved",
    "nulls:done",
    "genes.rnk:tmp",
    "maps:computed",
    "enrichment.csv:tmp",
    "coupling_by_group.png:tmp",
    "report.html:tmp",
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_at_a_write_point_then_resumed(study, reference, capsys, point):
    killed = subprocess.run([sys.executable, "-m", "recouple", "run", str(study)], env=_env(**{FAULT_ENV: point}),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == 137, f"never reached {point}: {killed.stdout}{killed.stderr}"
    code, _, err = _run(study, capsys)
    assert code == 0, err
    out = study.parent / "results"
    assert _tables(study) == reference
    assert _leftovers(out) == [] and (out / "report.html").is_file()
    with rc.store.open(study.parent / "cohort.h5") as st:
        assert st.result_attrs(COUPLING)["complete"]


def test_store_checksum_of_strings_is_their_text(template, tmp_path):
    """The region table holds variable-length strings: their checksum must
    not depend on where they sit in memory (it did, so every run saw the
    regions as changed)."""
    from recouple.io.store import checksum

    path = tmp_path / "c.h5"
    shutil.copy(template / "cohort.h5", path)
    first = checksum(path, ["regions", "scans"])
    junk = [str(i) * 50 for i in range(10000)]  # move the allocator along
    assert checksum(path, ["regions", "scans"]) == first and junk
    with h5py.File(path, "r+", locking=False) as f:
        f["regions/label"][0] = "renamed"
    assert checksum(path, ["regions"])["regions"] != first["regions"]


# ----------------------------------------------------------------------------- 4. the store after a failed write


def _fail_second_dataset(monkeypatch, group_name):
    real = h5py.Group.create_dataset
    calls = []

    def create_dataset(self, name, *args, **kwargs):
        if self.name == group_name:
            calls.append(name)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "Unable to synchronously create dataset")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", create_dataset)


def test_half_created_result_resumes_with_same_parameters_only(template, tmp_path, monkeypatch):
    from recouple.exceptions import StoreError
    from recouple.workflows.coupling import cohort_coupling

    path = tmp_path / "c.h5"
    shutil.copy(template / "cohort.h5", path)
    ref = tmp_path / "ref.h5"
    shutil.copy(template / "cohort.h5", ref)
    expected = cohort_coupling(ref, name="x", chunk_size=5).coupling
    _fail_second_dataset(monkeypatch, "/results/x")
    with pytest.raises(OSError) as err:
        cohort_coupling(path, name="x", chunk_size=5)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    monkeypatch.undo()
    with pytest.raises(StoreError, match="other parameters"):
        cohort_coupling(path, name="x", method="pearson", chunk_size=5)
    again = cohort_coupling(path, name="x", chunk_size=5)
    assert again.n_skipped == 0 and again.n_computed == 5  # nothing had finished: started again
    assert again.coupling.tobytes() == expected.tobytes()
    assert rc.store.validate(path).incomplete == ()


def test_failed_write_result_keeps_the_previous_result(template, tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    shutil.copy(template / "cohort.h5", path)
    with rc.store.open(path, "r+") as st:
        st.write_result("mine", "stat", np.arange(4.0), attrs={"provenance": {"seed": 1}})
    real = h5py.Group.create_dataset

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "Unable to synchronously create dataset")

    monkeypatch.setattr(h5py.Group, "create_dataset", full)
    with rc.store.open(path, "r+") as st:
        with pytest.raises(OSError) as err:
            st.write_result("mine", "stat", np.zeros(4))
        assert err.value.filename == str(path)
        with pytest.raises(OSError):
            st.write_result("other", "stat", np.zeros(4))
    monkeypatch.setattr(h5py.Group, "create_dataset", real)
    with rc.store.open(path) as st:
        np.testing.assert_array_equal(st.read_result("mine", "stat"), np.arange(4.0))
        assert list(st.file["results/mine"]) == ["stat"] and st.results() == ["mine"]


def test_room_is_checked_before_the_store_grows(tmp_path, monkeypatch):
    import recouple.io.files as files

    target = tmp_path / "f.h5"
    target.write_bytes(b"x" * 100)
    real = os.statvfs(tmp_path)

    class Full:
        f_bavail, f_frsize = 1, real.f_frsize

    monkeypatch.setattr(files.os, "statvfs", lambda p: Full)
    with pytest.raises(OSError) as err:
        files.check_room(target, 1 << 20, what="results/x")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert "results/x" in err.value.strerror
    files.check_room(target, 10)


def test_unwritable_output_simulated(study, capsys, monkeypatch, reference):
    """The read-only cases above, for users whom chmod does not bind (root):
    the permission answers are simulated where the operating system gives them."""
    import recouple.io.files as files
    import recouple.workflows.checkpoints as cp

    monkeypatch.setattr(cp.os, "access", lambda path, mode: False)
    code, _, err = _run(study, capsys)
    _assert_clean_failure(code, err, "is not writable", "nothing was written")
    monkeypatch.undo()
    assert _run(study, capsys)[0] == 0
    real = files.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if str(dir).endswith("tables"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    code, _, err = _run(study, capsys)
    _assert_clean_failure(code, err, "permission denied (EACCES)", "coupling.csv", "finished results are kept")
    monkeypatch.undo()
    assert _tables(study) == reference
