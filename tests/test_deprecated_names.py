"""One spelling for the store functions and the workflow locations; the old
names keep working for one release with a DeprecationWarning."""

from __future__ import annotations

import pytest

import recouple as rc
from recouple.io import store as io_store


def test_store_functions_are_one_set():
    assert rc.store.open is io_store.open
    assert rc.store.create is io_store.create
    assert rc.store.validate is io_store.validate


@pytest.mark.parametrize("old, new", [("open_store", "open"), ("create_store", "create"),
                                      ("validate_store", "validate")])
def test_old_store_names_warn_and_work(tmp_path, old, new):
    path = tmp_path / "cohort.h5"
    rc.store.from_simulated(rc.simulate.cohort(n_regions=12, n_patients=2, n_controls=1, seed=0), path).close()
    fn = getattr(io_store, old)
    with pytest.warns(DeprecationWarning, match=f"recouple.io.store.{old} is deprecated; use recouple.store.{new}"):
        if old == "open_store":
            with fn(path) as st:
                assert st.n_scans == 6
        elif old == "validate_store":
            assert fn(path).n_regions == 12
        else:
            with fn(tmp_path / "new.h5", scans={"scan_id": ["a", "b"], "subject": ["s1", "s2"],
                                                "session": ["pre", "pre"], "group": ["p", "p"]},
                    labels=["L1", "R1"]) as st:
                assert st.n_scans == 2


def test_engine_analyses_moved_to_workflows():
    from recouple.workflows.coupling import cohort_coupling

    with pytest.warns(DeprecationWarning, match="recouple.workflows.coupling.cohort_coupling"):
        from recouple.engine.analyses import cohort_coupling as old
    assert old is cohort_coupling
