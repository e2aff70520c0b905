"""Memory planner: turn a memory budget into batch sizes."""

from __future__ import annotations

import os
import re

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
