"""``recouple info``: version, backends, devices, threads and a measured GEMM rate."""

from __future__ import annotations

import os
import platform

import numpy as np
from threadpoolctl import threadpool_info

from .. import __version__
from ..engine.backend import available_backends, get_backend
from ..engine.dispatch import host_thread_count
from ..engine.perf import measure_gemm_gflops
from ..host.jit import describe


def add_parser(sub):
    p = sub.add_parser("info", help="show version, usable backends, devices and matrix-multiply speed")
    p.add_argument("--no-gemm", action="store_true", help="skip the matrix-multiply measurement")
    p.add_argument("--size", type=int, default=1024, help="matrix size for the GEMM measurement (default 1024)")
    return p


def run(args) -> int:
    print(f"recouple {__version__}  (python {platform.python_version()}, numpy {np.__version__})")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores")
    for lib in threadpool_info():
        print(f"BLAS: {lib.get('internal_api')} {lib.get('version')} threads={lib.get('num_threads')} "
              f"arch={lib.get('architecture')}")
    print(f"host threads for NumPy batches: {host_thread_count()} (RECOUPLE_NUM_THREADS)")
    print(f"host loops (spins, TFCE, Floyd-Warshall): {describe()}")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RECOUPLE_BACKEND",
                "RECOUPLE_NUM_THREADS", "RECOUPLE_JIT"):
        if os.environ.get(var):
            print(f"{var}={os.environ[var]}")
    print("backends:")
    for name, (ok, info) in available_backends().items():
        line = f"  {name:6s} {'usable' if ok else 'unavailable'}: {info}"
        if ok and not args.no_gemm:
            gflops = measure_gemm_gflops(get_backend(name), n=args.size)
            line += f"; float64 GEMM {gflops:.1f} GFLOP/s"
        print(line)
    return 0
