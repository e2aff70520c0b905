"""Worker processes of the ``processes`` scheduler end when their parent is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import recouple as rc

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process tree checks need Linux")


def _descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(procs):
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def test_sigkill_of_a_processes_run_leaves_no_worker(tmp_path):
    cohort = rc.simulate.cohort(n_regions=20, n_patients=40, n_controls=40, seed=1)
    store = tmp_path / "cohort.h5"
    rc.store.from_simulated(cohort, store).close()
    env = {**os.environ, "PYTHONPATH": str(Path(rc.__file__).resolve().parents[1]), "DASK_NUM_WORKERS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "recouple.cli", "coupling", str(store), "--scheduler", "processes",
                             "--chunk-size", "1", "--no-progress"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            workers = [p for p in _alive(_descendants(proc.pid))
                       if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]
            if len(workers) >= 1:
                break
            time.sleep(0.1)
        assert proc.poll() is None and workers, "the run ended before its worker processes could be seen"
        family = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.time() + 15
        while time.time() < deadline and _alive(family):
            time.sleep(0.2)
        left = _alive(family)
        assert not left, f"{len(left)} process(es) outlived their killed parent: {[p.pid for p in left]}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _alive(_descendants(proc.pid)) + _alive(workers):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
