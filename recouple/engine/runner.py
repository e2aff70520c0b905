"""Dask execution of store analyses: map a kernel task over chunks (of scans
or voxels), write each finished chunk atomically with a completion flag,
skip finished chunks on a re-run, and run on Dask's local scheduler or on
any ``distributed`` cluster the user names.

The driver process is the only writer. Tasks receive picklable lazy handles
(:class:`~recouple.io.store.LazyDataset`: a path and a dataset name), open
the store read-only themselves and return host arrays. For every finished
chunk the driver writes the arrays into datasets that were allocated and
filled when the analysis started, flushes, then sets the chunk's flag in
``done`` and flushes again. A run killed at any point therefore loses only
the chunks in flight; a re-run with the same parameters computes exactly the
missing chunks and, since each chunk is computed the same way, produces the
same bytes as an uninterrupted run.

A result group is created in an order that makes a half-created one
recognisable: its ``params`` attribute (and ``complete = False``) first, then
the allocated outputs and ``chunk_bounds``, and the ``done`` flags last. A
run that failed before ``done`` existed (e.g. the disk filled while the
outputs were allocated) finished no chunk; a re-run with the same parameters
discards that group and starts it again, one with other parameters is
refused as for any stored result.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import math
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import dask
import dask.local
import dask.multiprocessing
import dask.threaded
import numpy as np

from ..exceptions import InputError, StoreError
from ..io.files import check_room, fault_point
from ..io.store import _open_h5, dataset_checksums
from .planner import parse_memory
from .progress import ProgressBar
from .provenance import build_provenance, params_key

__all__ = ["OutputSpec", "RunInfo", "run_chunks", "resolve_scheduler", "plan_chunk_size", "worker_count"]

LOCAL_SCHEDULERS = ("threads", "sync", "synchronous", "processes")

#: Dask's local schedulers as functions: ``dask.compute(scheduler=<name>)`` first imports ``distributed``
#: (about a second) to look for a client; a local run needs none.
_LOCAL_GET = {"threads": dask.threaded.get, "sync": dask.local.get_sync, "processes": dask.multiprocessing.get}


@dataclass(frozen=True)
class OutputSpec:
    """One result dataset: ``results/<analysis>/<name>`` of ``shape`` and ``dtype``, pre-filled with ``fill``."""

    name: str
    shape: tuple
    dtype: str = "float64"
    fill: float = float("nan")


@dataclass(frozen=True)
class RunInfo:
    """What a run did: chunks in total, computed now, and skipped because an earlier run finished them."""

    analysis: str
    n_chunks: int
    n_computed: int
    n_skipped: int
    scheduler: str
    provenance: dict = field(default_factory=dict)


#: Seconds between a worker process's checks that its parent is alive.
PARENT_POLL_S = 0.5


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)  # the parent is gone (killed): its results can no longer be written anywhere


def exit_with_parent(parent: int, user_initializer=None) -> None:
    """Initializer of the ``processes`` scheduler's workers: a daemon thread
    ends the worker as soon as its parent process ``parent`` has died (even
    by SIGKILL, which runs no clean-up in the parent), instead of leaving it
    waiting or computing. ``parent`` is the pid the parent passed: a worker
    still starting up when the parent died exits at once."""
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="recouple-parent-watch").start()
    if user_initializer is not None:
        user_initializer()


def _compute_options(kind) -> dict:
    """Keywords for ``dask.compute``: worker processes that die with this one."""
    import dask

    if kind != "processes" or dask.config.get("pool", None) is not None:  # a user's pool keeps its initializer
        return {}

    return {"initializer": functools.partial(exit_with_parent, os.getpid(),
                                             dask.config.get("multiprocessing.initializer", None))}


def worker_count(scheduler=None, client=None) -> int:
    """Number of tasks that run at once on the chosen scheduler."""
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:
            return 1
    if scheduler in ("sync", "synchronous"):
        return 1
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def plan_chunk_size(n_items: int, bytes_per_item: float, *, fixed_bytes: float = 0.0, memory_limit=None,
                    workers: int = 1, maximum: int | None = None) -> int:
    """Items per chunk so that ``workers`` chunks in flight fit the memory budget.

    Each worker holds ``fixed_bytes`` (e.g. one scan's standardised time
    series) plus ``bytes_per_item`` per item of its chunk. Raises
    :class:`InputError` when not even one item fits.
    """
    budget = parse_memory(memory_limit) / max(workers, 1) - fixed_bytes
    if budget < bytes_per_item:
        need = (fixed_bytes + bytes_per_item) * max(workers, 1)
        raise InputError(
            f"memory_limit must leave room for at least one item per worker; need about {need / 2**20:.0f} MiB for "
            f"{workers} worker(s), got {parse_memory(memory_limit) / 2**20:.0f} MiB. Raise memory_limit or use "
            "fewer workers."
        )
    size = int(budget // max(bytes_per_item, 1.0))
    if maximum is not None:
        size = min(size, maximum)
    return max(1, min(size, max(n_items, 1)))


def resolve_scheduler(scheduler=None, client=None):
    """Return ``(kind, client, owned)``: ``kind`` is a local scheduler name or ``"distributed"``.

    ``client`` (a ``distributed.Client``) wins; a ``scheduler`` address such as
    ``tcp://host:8786`` connects a client for this run (``owned=True``); a
    local name (threads, sync, processes) uses Dask's local schedulers; with
    neither, an active ``distributed`` default client is used if there is one,
    else Dask's local threaded scheduler.
    """
    if client is not None:
        return "distributed", client, False
    if scheduler is None:
        if "distributed" in sys.modules:
            try:
                from distributed import default_client  # lazy: see _run_distributed

                return "distributed", default_client(), False
            except (ValueError, ImportError):
                pass
        return "threads", None, False
    if not isinstance(scheduler, str):
        raise InputError(
            f"scheduler must be a string ('threads', 'sync', 'processes' or an address like tcp://host:8786); got "
            f"{type(scheduler).__name__}. Pass a distributed.Client as client= instead."
        )
    if scheduler in LOCAL_SCHEDULERS:
        return ("sync" if scheduler == "synchronous" else scheduler), None, False
    if "://" in scheduler or ":" in scheduler:
        from distributed import Client  # lazy: see _run_distributed

        try:
            return "distributed", Client(scheduler, timeout="30s"), True
        except OSError as exc:
            raise InputError(
                f"scheduler must be the address of a running Dask scheduler; could not connect to {scheduler!r} "
                f"({exc}). Start one (e.g. `dask scheduler`) or omit --scheduler to run locally."
            ) from None
    raise InputError(
        f"scheduler must be one of {', '.join(LOCAL_SCHEDULERS)} or an address like tcp://host:8786; got "
        f"{scheduler!r}."
    )


@contextlib.contextmanager
def _writer_lock(path):
    """Advisory exclusive lock so two runs never write the same store at once."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise StoreError(f"store {path!r} does not exist. Create it with rc.store.create(...) or `recouple ingest`.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError(
                f"store {path!r} is being written by another run; wait for it to finish (finished chunks are kept "
                "and a later run resumes)."
            ) from None
        yield
    finally:
        os.close(fd)


def _prepare_group(f, analysis, outputs, chunks, params, inputs, provenance, overwrite):
    """Create (or reopen for resuming) ``results/<analysis>``; return its chunk list and flags."""
    key = f"results/{analysis}"
    want = params_key(params)
    if key in f:
        g = f[key]
        if overwrite:
            del f[key]
        else:
            have = g.attrs.get("params")
            if have is not None and have != want:
                raise StoreError(
                    f"{key} holds a result computed with other parameters ({have}); this run asks for {want}. "
                    "Pass overwrite=True (--overwrite) to recompute, or choose another result name."
                )
            if "done" not in g and (have is not None or not len(g.attrs)):
                # created by a run that stopped before any chunk could finish (its flags come last; a group made
                # by write_result has attributes but no params): nothing to keep, start it again
                del f[key]
            else:
                old_inputs = json.loads(g.attrs.get("inputs", "{}"))
                changed = [k for k, v in inputs.items() if k in old_inputs and old_inputs[k] != v]
                if changed:
                    raise StoreError(
                        f"{key} was computed from different input data ({', '.join(changed)} changed since). "
                        "Pass overwrite=True (--overwrite) to recompute from the current data."
                    )
                if "done" not in g or "chunk_bounds" not in g:
                    raise StoreError(f"{key} lacks its completion flags; pass overwrite=True to recompute it.")
                bounds = g["chunk_bounds"][()]
                stored = [tuple((int(r[2 * i]), int(r[2 * i + 1])) for i in range(r.size // 2)) for r in bounds]
                return stored, g["done"][()].astype(bool)
    n_bytes = sum(int(np.prod(o.shape, dtype=np.int64)) * np.dtype(o.dtype).itemsize for o in outputs)
    check_room(f.filename, n_bytes + 9 * len(chunks) * (1 + 2 * len(chunks[0])) + (256 << 10), what=key)
    g = f.create_group(key)
    # the order makes a half-created group recognisable (see the module docstring): params first, done last
    g.attrs["params"] = want
    g.attrs["complete"] = False
    for spec in outputs:
        # contiguous, allocated and filled now: later chunk writes change raw bytes only
        ds = g.create_dataset(spec.name, shape=spec.shape, dtype=spec.dtype, track_times=False)
        ds[...] = np.full(spec.shape, spec.fill, dtype=spec.dtype)
        fault_point(analysis, "allocating")
    width = 2 * len(chunks[0])
    bounds = np.array([[v for pair in c for v in pair] for c in chunks], dtype=np.int64).reshape(len(chunks), width)
    g.create_dataset("chunk_bounds", data=bounds, track_times=False)
    g.attrs["inputs"] = json.dumps(inputs, sort_keys=True)
    g.attrs["provenance"] = json.dumps(provenance, sort_keys=True, default=str)
    g.attrs["outputs"] = json.dumps([s.name for s in outputs])
    f.flush()
    done = g.create_dataset("done", shape=(len(chunks),), dtype=np.uint8, track_times=False)
    done[...] = np.zeros(len(chunks), dtype=np.uint8)
    f.flush()
    fault_point(analysis, "allocated")
    return list(chunks), np.zeros(len(chunks), dtype=bool)


def _write_chunk(f, analysis, k, chunk, arrays):
    g = f[f"results/{analysis}"]
    sl = tuple(slice(a, b) for a, b in chunk)
    for name, arr in arrays.items():
        ds = g[name]
        ds[sl] = np.asarray(arr, dtype=ds.dtype).reshape(tuple(b - a for a, b in chunk) + ds.shape[len(chunk):])
    f.flush()  # data reaches the file before its flag does
    g["done"][k] = 1
    f.flush()
    fault_point(analysis, f"chunk{k}")


def run_chunks(
    store_path,
    analysis: str,
    *,
    task: Callable,
    chunks: list,
    outputs: list,
    params: dict,
    inputs: dict | None = None,
    backend=None,
    chunking: dict | None = None,
    overwrite: bool = False,
    scheduler=None,
    client=None,
    progress: bool | None = False,
    desc: str = "",
    seed=None,
) -> RunInfo:
    """Run ``task(chunk)`` for every unfinished chunk and write its outputs into the store.

    Parameters
    ----------
    store_path : str
    analysis : str
        Result group name, ``results/<analysis>``.
    task : callable
        Picklable function ``chunk -> {output name: array}`` (a module-level
        function or ``functools.partial`` of one), run inside Dask tasks.
    chunks : list of tuple of (start, stop)
        One entry per chunk: the ranges it covers along the leading axes of
        the outputs, e.g. ``((s0, s1),)`` over scans or ``((s, s+1), (v0, v1))``.
    outputs : list of OutputSpec
    params : dict
        Parameters that define the result; a stored result with other
        parameters is never resumed or silently replaced.
    inputs : dict or list of str, optional
        ``{dataset: checksum}``, or the names of the datasets read, whose
        checksums are then taken under the store's writer lock (cached ones
        from the store, see :func:`recouple.io.store.checksum`; computed ones
        are cached for the next run); a resume refuses inputs that changed.
    overwrite : bool
        Discard a stored result and recompute every chunk.
    scheduler, client
        See :func:`resolve_scheduler`.
    progress : bool or None
        Draw a progress bar on stderr (None: when stderr is a terminal).
    """
    path = str(store_path)
    if not chunks:
        raise InputError(f"chunks must list at least one chunk for {analysis}; got none.")
    kind, cl, owned = resolve_scheduler(scheduler, client)
    sched_name = kind if kind != "distributed" else f"distributed:{getattr(cl, 'scheduler', None) and cl.scheduler.address}"
    input_names = None if inputs is None or isinstance(inputs, dict) else [str(n) for n in inputs]
    inputs = dict(inputs or {}) if input_names is None else {}
    try:
        with _writer_lock(path):
            f = _open_h5(path, "r+")
            try:
                if input_names is not None:
                    inputs = dataset_checksums(f, input_names, remember=True)
                prov = build_provenance(analysis=analysis, params=params, backend=backend, seed=seed,
                                        chunking={**(chunking or {}), "n_chunks": len(chunks)}, inputs=inputs,
                                        scheduler=sched_name)
                all_chunks, done = _prepare_group(f, analysis, outputs, chunks, params, inputs, prov, overwrite)
                pending = [k for k in range(len(all_chunks)) if not done[k]]
                n_skipped = len(all_chunks) - len(pending)
                bar = ProgressBar(len(all_chunks), desc=desc or analysis, unit="chunks", initial=n_skipped,
                                  show=progress)
                token = uuid.uuid4().hex[:8]
                try:
                    if kind == "distributed":
                        _run_distributed(cl, f, analysis, task, all_chunks, pending, token, bar)
                    else:
                        wave = max(1, worker_count(kind)) * (1 if kind == "sync" else 2)
                        for start in range(0, len(pending), wave):
                            ks = pending[start:start + wave]
                            tasks = [dask.delayed(task, pure=False)(all_chunks[k],
                                                                    dask_key_name=f"{analysis}-{token}-{k}")
                                     for k in ks]
                            results = dask.compute(*tasks, scheduler=_LOCAL_GET[kind], **_compute_options(kind))
                            for k, arrays in zip(ks, results):
                                _write_chunk(f, analysis, k, all_chunks[k], arrays)
                                bar.update()
                finally:
                    bar.close()
                g = f[f"results/{analysis}"]
                g.attrs["complete"] = bool(g["done"][()].all())
                if len(pending):
                    stored = json.loads(g.attrs["provenance"])
                    stored.setdefault("runs", []).append(
                        {k: prov[k] for k in ("created", "backend", "device", "scheduler", "host")}
                        | {"chunks_computed": len(pending)}
                    )
                    g.attrs["provenance"] = json.dumps(stored, sort_keys=True, default=str)
                provenance = json.loads(g.attrs["provenance"])
                f.flush()
            except BaseException as exc:
                # after a failed write (disk full, file size limit) HDF5 may fail to close the file too: report
                # the first error, which says what happened; finished chunks are flagged and kept
                with contextlib.suppress(Exception):
                    f.close()
                if isinstance(exc, OSError) and exc.filename is None:
                    exc.filename = path
                raise
            else:
                f.close()
    finally:
        if owned:
            cl.close()
    return RunInfo(analysis, len(all_chunks), len(pending), n_skipped, sched_name, provenance)


def _run_distributed(client, f, analysis, task, chunks, pending, token, bar):
    # distributed loads only when a cluster runs the work (an address, a Client, or
    # one the user started): importing it costs about a second and sets up its config
    from distributed import as_completed

    futures = [client.submit(task, chunks[k], key=f"{analysis}-{token}-{k}", pure=False) for k in pending]
    index = {fut.key: k for fut, k in zip(futures, pending)}
    for fut, arrays in as_completed(futures, with_results=True):
        k = index[fut.key]
        _write_chunk(f, analysis, k, chunks[k], arrays)
        bar.update()
        fut.release()


def chunk_ranges(n: int, size: int) -> list[tuple[int, int]]:
    """``[(0, size), (size, 2 size), ...]`` covering ``range(n)``."""
    size = max(1, int(size))
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def n_chunks(n: int, size: int) -> int:
    return math.ceil(n / max(1, size))
