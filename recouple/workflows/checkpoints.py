"""Checkpoints of the study pipeline: step keys, completion markers, saved
arrays and the output folder.

A step is done when ``<output>/steps/<step>.done.json`` holds the step's key
and the digest of ``<step>.npz``. The key has two parts:

* the step's parameters (a JSON-able dict, :func:`step_key`), and
* its inputs by content: the ``"inputs"`` entry of that dict (digests of the
  store data the step reads, e.g. the coupling values and ``/maps``), plus a
  BLAKE2b digest of every file the parameters name (expression tables, gene
  sets, map tables, nulls, geometry or design files) — found by walking the
  parameters for strings that name existing files, so a new file setting is
  keyed by its content without further code. The paths themselves are not
  part of the key: the same files reached by other paths (the study run
  from another folder, a moved project) resume.

A re-run reuses a step only when both parts match; otherwise it says what
changed ("[genes] recomputing (expression.csv changed)") and recomputes.
Saving removes the old marker first, writes the arrays, then the new marker,
each atomically under a unique temporary name, so a process killed at any
point leaves either a finished step or one that is recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import OutputError
from ..io.files import (
    FileDigests,
    FolderLock,
    atomic_open,
    atomic_write,
    fault_point,
    file_digest,
    remove_stale_temporaries,
)

__all__ = ["StepKey", "Steps", "output_lock", "prepare_output", "step_key"]

MARKER_FORMAT = 2


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StepKey:
    """What a step's result depends on: ``params`` (JSON-able; its ``"inputs"``
    entry, if any, maps input names to content digests)."""

    params: object

    def __str__(self):
        return _digest(self.params)


def step_key(params) -> StepKey:
    """The key of a step computed from ``params`` (see the module docstring)."""
    return StepKey(params)


def _looks_like_path(text: str) -> bool:
    if not text or len(text) > 4096 or "\n" in text or "\x00" in text:
        return False
    return os.sep in text or "." in os.path.basename(text)


def _file_params(obj, found: list) -> None:
    if isinstance(obj, dict):
        for v in obj.values():
            _file_params(v, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _file_params(v, found)
    elif isinstance(obj, (str, os.PathLike)):
        text = os.fspath(obj)
        if _looks_like_path(text) and os.path.isfile(text):
            found.append(text)


def _paths_replaced(obj, paths: set):
    """``obj`` with every string in ``paths`` replaced by ``"<file>"``: a
    file enters a key by its content (an input digest), not by the path
    that reached it, so the same study run from another folder (relative
    paths) or after the project moved resumes."""
    if isinstance(obj, dict):
        return {k: _paths_replaced(v, paths) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_paths_replaced(v, paths) for v in obj]
    if isinstance(obj, os.PathLike):
        obj = os.fspath(obj)
    return "<file>" if isinstance(obj, str) and obj in paths else obj


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class Steps:
    """Completion markers and saved arrays of the pipeline's steps.

    Parameters
    ----------
    root : Path
        The output folder; markers and arrays go to ``root/steps``.
    overwrite : bool
        Recompute every step.
    result : StudyResult
        Receives the names of steps computed and reused.
    log : callable, optional
        Receives "[step] recomputing (reason)" lines.
    exclude : iterable of path
        Files not to hash although the parameters name them (the cohort
        store, whose datasets are keyed by content through ``"inputs"``).
    """

    def __init__(self, root: Path, overwrite: bool, result, *, log=None, exclude=()):
        self.root = Path(root) / "steps"
        self.root.mkdir(parents=True, exist_ok=True)
        self.overwrite = overwrite
        self.result = result
        self.log = log or (lambda *_: None)
        self.digests = FileDigests()
        self.exclude = {os.path.realpath(p) for p in exclude if p}

    # -- keys
    def resolve(self, key) -> tuple[str, dict]:
        """``(parameters digest, {input name: digest})`` of a key."""
        params = key.params if isinstance(key, StepKey) else {"key": str(key)}
        inputs = {}
        if isinstance(params, dict) and isinstance(params.get("inputs"), dict):
            inputs = {str(k): v for k, v in params["inputs"].items()}
            params = {k: v for k, v in params.items() if k != "inputs"}
        paths: list[str] = []
        _file_params(params, paths)
        params = _paths_replaced(params, set(paths))
        paths = sorted({p for p in paths if os.path.realpath(p) not in self.exclude})
        names = [os.path.basename(p) for p in paths]
        for p, name in zip(paths, names):
            label = name if names.count(name) == 1 and name not in inputs else p
            inputs[label] = self.digests(p)
        return _digest(params), inputs

    def files(self) -> dict:
        """``{path: digest}`` of the input files hashed in this run (for provenance)."""
        return self.digests.known()

    # -- markers
    def _paths(self, name):
        return self.root / f"{name}.done.json", self.root / f"{name}.npz"

    def check(self, name, key):
        """``(arrays, None)`` when step ``name`` finished with ``key``, else
        ``(None, reason)``; ``reason`` is None for a step never run."""
        marker, data = self._paths(name)
        if self.overwrite:
            return None, "--overwrite"
        if not marker.is_file():
            return None, ("the previous run stopped before finishing it" if data.is_file() else None)
        try:
            meta = json.loads(marker.read_text())
        except (OSError, ValueError):
            return None, "its completion marker is unreadable"
        if not isinstance(meta, dict) or meta.get("format") != MARKER_FORMAT:
            return None, "it was saved by an earlier version of recouple, which keyed input files by path only"
        params, inputs = self.resolve(key)
        old = meta.get("inputs") or {}
        changed = [k for k in sorted(set(inputs) | set(old)) if inputs.get(k) != old.get(k)]
        what = (["settings"] if meta.get("params") != params else []) + changed
        if what:
            return None, f"{_join(what)} changed"
        try:
            raw = data.read_bytes()
        except OSError:
            return None, "its saved arrays are missing"
        if hashlib.blake2b(raw, digest_size=20).hexdigest() != meta.get("data"):
            return None, "its saved arrays are damaged"
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}, None
        except (OSError, ValueError, zipfile.BadZipFile):
            return None, "its saved arrays are damaged"

    def load(self, name, key):
        """The saved arrays of step ``name`` if it finished with ``key``, else None."""
        return self.check(name, key)[0]

    def run(self, name, key, compute):
        """The saved arrays of step ``name`` if finished with ``key``, else
        ``compute()`` saved with a completion marker; and "computed" / "already done"."""
        saved, reason = self.check(name, key)
        if saved is not None:
            self.result.skipped.append(name)
            return saved, "already done"
        if reason is not None:
            self.log(f"[{name}] recomputing ({reason})")
        t0 = time.perf_counter()
        saved = compute()
        fault_point(name, "computed")
        self.save(name, key, saved)
        self.result.timings[name] = time.perf_counter() - t0  # compute and save (steps run, not loaded)
        self.result.computed.append(name)
        return saved, "computed"

    def save(self, name, key, arrays: dict):
        marker, data = self._paths(name)
        params, inputs = self.resolve(key)
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()  # the old marker must never vouch for the new arrays
        with atomic_open(data, "wb") as fh:
            np.savez(fh, **arrays)
        fault_point(name, "saved")
        atomic_write(marker, json.dumps({
            "format": MARKER_FORMAT, "key": _digest([params, inputs]), "params": params, "inputs": inputs,
            "data": file_digest(data), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }, sort_keys=True) + "\n")
        fault_point(name, "done")


# ----------------------------------------------------------------------------- the output folder


def prepare_output(out) -> Path:
    """Create the output folder (and parents) or raise :class:`OutputError`
    saying why it cannot hold results, before anything is computed."""
    out = Path(out)
    where = f"output folder {str(out)!r}"
    if out.exists() and not out.is_dir():
        raise OutputError(f"{where} is a file, not a folder. Pass a folder path ([study] output or --out); "
                          "it is created if missing.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{where} cannot be created: part of its path is a file, not a folder. Pass another "
                          "folder path ([study] output or --out).") from None
    except PermissionError:
        raise OutputError(f"{where} cannot be created: permission denied. Pass a folder you may write "
                          "([study] output or --out) or fix the permissions of its parent.") from None
    except OSError as exc:
        raise OutputError(f"{where} cannot be created ({exc.strerror or exc}). Pass another folder "
                          "([study] output or --out).") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{where} is not writable (read-only file system or permissions). Pass a folder you "
                          "may write ([study] output or --out) or fix its permissions; nothing was written.")
    return out


@contextlib.contextmanager
def output_lock(out, *, what="recouple run"):
    """Hold the output folder's lock (refusing at once if another run holds
    it) and clear temporary files that killed runs left behind."""
    with FolderLock(out, what=what) as lock:
        for folder in (out, out / "steps", out / "tables", out / "figures"):
            remove_stale_temporaries(folder)
        yield lock
