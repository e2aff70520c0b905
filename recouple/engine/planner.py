"""Memory planner: the memory budget, batch sizes that fit it, and the
refusal of work that cannot.

The one rule for the default budget lives here: without ``memory_limit``
an analysis may use :data:`DEFAULT_FRACTION` (half) of the memory that is
*available* when it starts (``psutil`` if installed, else ``MemAvailable``
of ``/proc/meminfo``, else free pages from ``os.sysconf``; never more than
the cgroup allows). Generators and analyses call :func:`require_memory`
before they allocate: work that does not fit is refused at once with an
:class:`~recouple.exceptions.InputError` that says how much it would need,
the limit, and what to change.
"""

from __future__ import annotations

import os
import re

from ..exceptions import InputError
from ..validation import check_choice

__all__ = ["DEFAULT_FRACTION", "total_memory", "available_memory", "default_memory_limit", "parse_memory",
           "plan_batch", "require_memory", "format_gib", "FC_MODES", "plan_fc_mode"]

DEFAULT_FRACTION = 0.5
"""Share of the available memory an analysis may use when no ``memory_limit`` is given."""

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
          "t": 1e12, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
_CGROUP_USAGE = ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes")


def _read_int(paths):
    for path in paths:
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def total_memory() -> int:
    """Physical memory of this machine in bytes (cgroup limit if lower)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 * 2**30
    limit = _read_int(_CGROUP_LIMITS)
    if limit is not None:
        total = min(total, limit)
    return int(total)


def _host_available() -> int | None:
    try:
        import psutil  # optional dependency: lazy, the planner works without it
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return int(psutil.virtual_memory().available)
        except Exception:  # pragma: no cover - unusual platforms
            pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def available_memory() -> int:
    """Bytes of memory available to this process now (host and cgroup)."""
    avail = _host_available()
    if avail is None:  # pragma: no cover - neither psutil, /proc nor sysconf
        avail = total_memory() // 2
    limit = _read_int(_CGROUP_LIMITS)
    if limit is not None:
        avail = min(avail, max(limit - (_read_int(_CGROUP_USAGE) or 0), 0))
    return int(max(avail, 0))


def default_memory_limit() -> int:
    """The budget without ``memory_limit``: :data:`DEFAULT_FRACTION` of :func:`available_memory`."""
    return int(DEFAULT_FRACTION * available_memory())


def parse_memory(limit) -> int:
    """Bytes from ``limit``: a number of bytes, a string such as ``"4GB"``/``"512MiB"``,
    a fraction of total RAM in (0, 1], or ``None`` for the default
    (:func:`default_memory_limit`: half of the available memory)."""
    if limit is None:
        return default_memory_limit()
    if isinstance(limit, (int, float)) and not isinstance(limit, bool):
        if 0 < limit <= 1:
            return int(limit * total_memory())
        if limit > 1:
            return int(limit)
    if isinstance(limit, str):
        m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", limit)
        if m and m.group(2).lower() in _UNITS:
            try:
                value = float(m.group(1)) * _UNITS[m.group(2).lower()]
            except ValueError:
                value = 0.0
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


def format_gib(nbytes: float) -> str:
    """``nbytes`` in GiB for messages (``"298 GiB"``, ``"0.004 GiB"``)."""
    gib = nbytes / 2**30
    if gib >= 100:
        return f"{gib:,.0f} GiB"
    return f"{gib:.3g} GiB"


def require_memory(what: str, n_items: int, bytes_per_item: float, *, fixed_bytes: float = 0.0,
                   memory_limit=None, item: str = "n_perm", fix: str = "") -> int:
    """Refuse at once when ``n_items`` items do not fit the memory budget.

    Parameters
    ----------
    what : str
        What would be allocated, for the message (e.g. ``"spin_permutations
        (1000000000, 400) int64 output"``).
    n_items : int
        Number of items (resamples, surrogates) requested.
    bytes_per_item : float
        Bytes held per item at the peak (output and temporaries).
    fixed_bytes : float
        Bytes held regardless of ``n_items``.
    memory_limit : optional
        The budget (:func:`parse_memory`; default :func:`default_memory_limit`).
    item : str
        Name of the argument that sets ``n_items`` (for the advice).
    fix : str
        Further advice (e.g. a streaming API or ``--batch-size``).

    Returns
    -------
    int
        The budget in bytes.

    Raises
    ------
    InputError
        When ``fixed_bytes + n_items * bytes_per_item`` exceeds the budget;
        nothing has been allocated yet.
    """
    budget = parse_memory(memory_limit)
    need = float(fixed_bytes) + float(n_items) * float(bytes_per_item)
    if need <= budget:
        return budget
    fit = int(max(budget - fixed_bytes, 0) // max(bytes_per_item, 1.0))
    source = (f"memory_limit={memory_limit!r}" if memory_limit is not None
              else f"the default, {DEFAULT_FRACTION:.0%} of the {format_gib(available_memory())} available")
    advice = (f"Pass a smaller {item} (at most {fit:,} fit)" if fit >= 1
              else "Reduce the problem size (not even one fits)")
    raise InputError(
        f"{what} would need about {format_gib(need)} of memory for {item}={n_items:,}, more than the memory limit "
        f"of {format_gib(budget)} ({source}). {advice}, or raise memory_limit= (--memory-limit)"
        + (f", or {fix}" if fix else "") + "."
    )
