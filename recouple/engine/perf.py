"""Measured machine throughput, used to express kernel speed as a fraction of it."""

from __future__ import annotations

import time

import numpy as np


def measure_gemm_gflops(backend, *, n: int = 1024, dtype=np.float64, repeats: int = 3) -> float:
    """Best-of-``repeats`` GFLOP/s of an ``n x n`` matrix product on ``backend``."""
    rng = np.random.default_rng(0)
    a = backend.to_device(rng.standard_normal((n, n)).astype(dtype))
    b = backend.to_device(rng.standard_normal((n, n)).astype(dtype))
    fn = backend.compile(_matmul)
    backend.synchronize(fn(a, b))  # warm-up / compile
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        backend.synchronize(fn(a, b))
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def _matmul(a, b):
    return a @ b
