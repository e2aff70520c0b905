"""Memory planner: turn a memory budget into batch sizes."""

from __future__ import annotations

import os
import re

from ..validation import check_choice

DEFAULT_FRACTION = 0.25

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
          "t": 1e12, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def total_memory() -> int:
    """Physical memory of this machine in bytes (cgroup limit if lower)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 * 2**30
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
            if text.isdigit():
                total = min(total, int(text))
        except OSError:
            pass
    return int(total)


def parse_memory(limit) -> int:
    """Bytes from ``limit``: a number of bytes, a string such as ``"4GB"``/``"512MiB"``,
    a fraction of RAM in (0, 1], or ``None`` for the default (25% of RAM)."""
    from ..exceptions import InputError

    if limit is None:
        return int(DEFAULT_FRACTION * total_memory())
    if isinstance(limit, (int, float)):
        if 0 < limit <= 1:
            return int(limit * total_memory())
        if limit > 1:
            return int(limit)
    if isinstance(limit, str):
        m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", limit)
        if m and m.group(2).lower() in _UNITS:
            value = float(m.group(1)) * _UNITS[m.group(2).lower()]
            if value > 0:
                return parse_memory(value) if value <= 1 and not m.group(2) else int(value)
    raise InputError(
        f"memory_limit must be a positive number of bytes, a fraction of RAM in (0, 1] or a "
        f"string like '4GB'; got {limit!r}. For example pass memory_limit='2GB'."
    )


def plan_batch(n_items: int, bytes_per_item: float, *, memory_limit=None, minimum: int = 1) -> int:
    """Largest batch of ``n_items`` whose working set ``bytes_per_item * batch`` fits the budget."""
    budget = parse_memory(memory_limit)
    fit = int(budget // max(bytes_per_item, 1.0))
    return max(minimum, min(max(n_items, 1), fit))


FC_MODES = ("auto", "dense", "sampled")


def plan_fc_mode(fc_mode: str, *, nnz: int, n_rows: int, n_voxels: int, n_timepoints: int, dense_rate: float,
                 sampled_rate: float) -> str:
    """How a chunk of voxel-to-voxel coupling computes its FC: ``"dense"`` or ``"sampled"``.

    ``fc_mode`` ``"dense"`` or ``"sampled"`` is returned as is; ``"auto"``
    compares the two costs in seconds (:mod:`recouple.kernels.voxel`)::

        dense   = n_rows * n_voxels * n_timepoints / dense_rate    (GEMM of whole FC rows)
        sampled = nnz * n_timepoints / sampled_rate                (one dot product per entry)

    with both rates in multiply-adds per second as measured on this machine
    and backend (:func:`recouple.engine.voxel.fc_rates`). Everything after the
    FC (gather, ranks, correlation) costs the same either way and is left
    out. Sampled wins below the density ``nnz / (n_rows * n_voxels) <
    sampled_rate / dense_rate`` (on a CPU typically a few percent; 0.5% for
    tractography is far below); ties go to dense.
    """
    check_choice("fc_mode", fc_mode, FC_MODES)
    if fc_mode != "auto":
        return fc_mode
    dense = n_rows * n_voxels * n_timepoints / max(dense_rate, 1e-300)
    sampled = nnz * n_timepoints / max(sampled_rate, 1e-300)
    return "sampled" if sampled < dense else "dense"
