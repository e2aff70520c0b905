"""``python -m recouple`` runs the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import recouple


def test_python_m_recouple_runs_the_cli(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(recouple.__file__).parent.parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "recouple", "--version"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"recouple {recouple.__version__}"
