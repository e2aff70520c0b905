"""Stores made by other tools or edited by hand: every path that opens a store
checks its format, schema version and required tables first and raises
StoreError saying what is wrong and what to do (never a raw KeyError)."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

import recouple as rc
from recouple.exceptions import StoreError
from recouple.io import store as io_store


@pytest.fixture
def good(tmp_path):
    cohort = rc.simulate.cohort(n_regions=8, n_patients=1, n_controls=1, n_timepoints=10, seed=0)
    path = tmp_path / "c.h5"
    rc.store.from_simulated(cohort, path).close()
    return path


def _openers(path):
    """Every way the package opens a store for reading."""

    def lazy():
        return io_store.LazyDataset(str(path), "sc", (4, 8, 8), np.dtype("f8"))[0]

    def engine_reader():
        with io_store._open_h5(path, "r") as f:
            return f["sc"][0]

    def open_rw():
        rc.store.open(path, mode="r+").close()

    return {
        "open_store": lambda: rc.store.open(path).close(),
        "open_store_rw": open_rw,
        "validate_store": lambda: rc.store.validate(path),
        "lazy_handle": lazy,
        "engine_reader": engine_reader,
    }


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


CASES = {
    "format_without_scans": (lambda f: f.__delitem__("scans"), r"lacks the /scans table"),
    "format_without_regions": (lambda f: f.__delitem__("regions"), r"lacks the /regions table"),
    "no_scan_id_column": (lambda f: f.__delitem__("scans/scan_id"), r"/scans lacks the required column 'scan_id'"),
    "columns_attr_names_missing": (
        lambda f: f["scans"].attrs.__setitem__("columns", '["scan_id", "subject", "session", "group", "not_there"]'),
        r"'not_there'",
    ),
    "columns_attr_not_json": (lambda f: f["scans"].attrs.__setitem__("columns", "scan_id,subject"), r"columns"),
    "no_region_labels": (lambda f: f.__delitem__("regions/label"), r"/regions lacks 'label'"),
    "schema_99": (lambda f: f.attrs.__setitem__("schema_version", 99), r"schema_version 99"),
    "schema_missing": (lambda f: f.attrs.__delitem__("schema_version"), r"no schema_version"),
    "schema_text": (lambda f: f.attrs.__setitem__("schema_version", "one"), r"schema_version 'one'"),
    "schema_float": (lambda f: f.attrs.__setitem__("schema_version", 1.5), r"schema_version 1.5"),
    "format_other": (lambda f: f.attrs.__setitem__("format", "something-else"), r"not a recouple cohort store"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("opener", ["open_store", "open_store_rw", "validate_store", "lazy_handle", "engine_reader"])
def test_every_opener_checks_the_header(good, case, opener):
    edit, pattern = CASES[case]
    _edit(good, edit)
    with pytest.raises(StoreError, match=pattern) as info:
        _openers(good)[opener]()
    msg = str(info.value)
    assert str(good) in msg, "the message names the store"
    assert any(w in msg for w in ("Re-create", "upgrade", "Fix it", "Remove them", "Create a store")), msg


def test_format_only_file_from_another_tool(tmp_path):
    # the reported case: a file with the format attribute and nothing else
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "recouple-cohort"
        f.attrs["schema_version"] = 1
    for opener in _openers(path).values():
        with pytest.raises(StoreError, match="lacks the /scans table"):
            opener()


def test_version_change_after_handle_made(good):
    # a handle shipped to a worker re-checks the file it opens
    with rc.store.open(good) as st:
        h = st.handle("sc")
    h2 = pickle.loads(pickle.dumps(h))
    assert h2[0].shape == (8, 8)
    _edit(good, lambda f: f.attrs.__setitem__("schema_version", 99))
    with pytest.raises(StoreError, match="schema_version 99"):
        h2[0]


def test_good_store_still_opens(good):
    with rc.store.open(good) as st:
        assert st.n_scans == 4 and st.schema_version == 1
    assert rc.store.validate(good).n_scans == 4


def test_cli_reports_bad_store(good, capsys):
    from recouple.cli import main

    _edit(good, lambda f: f.__delitem__("scans"))
    assert main(["export", str(good)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks the /scans table" in err[0]
