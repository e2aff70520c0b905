"""Safe files: atomic writes under unique temporary names, content digests of
input files, an exclusive lock on an output folder, and the fault-injection
hook the crash tests use.

Atomic writes
    :func:`atomic_open` writes to a temporary file made by
    :func:`tempfile.mkstemp` in the target's folder (so two writers never
    share a temporary name), flushes and fsyncs it, then renames it over the
    target with :func:`os.replace`. A reader sees the old file or the new one,
    never a part; on any error the temporary file is removed and the target is
    left as it was. An :class:`OSError` raised while writing carries the
    target's path in ``filename``.

Digests
    :func:`file_digest` hashes a file's bytes (BLAKE2b, 1 MiB blocks).
    :class:`FileDigests` caches digests per (path, size, mtime) so a run
    hashes each input once however many steps read it.

Locks
    :class:`FolderLock` holds ``fcntl.flock`` on ``<folder>/.recouple.lock``
    (which records pid, host and start time); a second holder is refused at
    once with a :class:`~recouple.exceptions.OutputError` naming the first.
    The kernel drops the lock when its process ends, however it ends.

Fault injection (tests only)
    :func:`fault_point` does nothing unless the environment variable
    ``RECOUPLE_FAULT_AT`` names the point reached: ``<where>:<point>`` ends
    the process at once with ``os._exit(137)`` (as SIGKILL would, without
    cleanup or flushing of Python buffers); ``<where>:<point>:ENOSPC`` (or any
    other errno name) raises that :class:`OSError` there instead. The points
    are listed in ``docs/ARCHITECTURE.md`` ("Crash safety of recouple run").
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import resource
import socket
import tempfile
from pathlib import Path

from ..exceptions import OutputError

__all__ = ["FAULT_ENV", "LOCK_NAME", "FileDigests", "FolderLock", "atomic_open", "atomic_write", "check_room",
           "fault_point", "file_digest", "remove_stale_temporaries"]

FAULT_ENV = "RECOUPLE_FAULT_AT"
LOCK_NAME = ".recouple.lock"
TMP_SUFFIX = ".tmp"
_BLOCK = 1 << 20


def fault_point(where: str, point: str) -> None:
    """Test hook: end the process (or raise an OSError) when ``$RECOUPLE_FAULT_AT``
    is ``<where>:<point>`` (or ``<where>:<point>:<ERRNO NAME>``); else nothing."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, _, action = spec.partition(f"{where}:{point}")
    if target or (action and not action.startswith(":")):
        return
    if not action:
        os._exit(137)
    code = getattr(errno, action[1:], None)
    if not isinstance(code, int):
        raise ValueError(f"{FAULT_ENV}={spec!r}: {action[1:]!r} is not an errno name such as ENOSPC.")
    raise OSError(code, os.strerror(code))


def check_room(path, nbytes: int, *, what: str = "") -> None:
    """Raise ``OSError(ENOSPC)`` or ``OSError(EFBIG)`` (with ``filename`` set)
    when growing ``path`` by about ``nbytes`` would fill its disk or pass the
    process's file size limit (``ulimit -f``).

    HDF5 buffers small writes and may crash, rather than report, when such a
    write fails later at a flush; checking first turns the common case into a
    clean error before the file is touched.
    """
    path = os.fspath(path)
    need = int(nbytes)
    what = f" for {what}" if what else ""
    size = os.path.getsize(path) if os.path.exists(path) else 0
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and size + need > soft:
        raise OSError(errno.EFBIG, f"growing the file to about {(size + need) / 2**20:.1f} MiB{what} passes the "
                      f"file size limit of {soft / 2**20:.1f} MiB", path)
    st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise OSError(errno.ENOSPC, f"about {need / 2**20:.1f} MiB needed{what}, {free / 2**20:.1f} MiB free", path)


def _with_filename(exc: OSError, path) -> OSError:
    if exc.filename is None:
        exc.filename = str(path)
    return exc


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", *, encoding: str | None = None, newline: str | None = None):
    """Open a unique temporary file next to ``path`` for writing; on a clean exit
    it replaces ``path`` atomically, on an error it is removed."""
    path = Path(path)
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w'; got {mode!r}.")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as exc:
        raise _with_filename(exc, path) from None
    try:
        if mode == "w":
            fh = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        else:
            fh = os.fdopen(fd, "wb")
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        fault_point(path.name, "tmp")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _with_filename(exc, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path, data) -> Path:
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def remove_stale_temporaries(folder) -> list[Path]:
    """Delete the temporary files :func:`atomic_open` left in ``folder`` when a
    process was killed mid-write. Call it only while holding the folder's lock."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.glob(f".*{TMP_SUFFIX}"):
        if p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def file_digest(path) -> str:
    """BLAKE2b (hex) of the file's bytes, read in 1 MiB blocks."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


class FileDigests:
    """Content digests of input files, cached per (path, size, mtime) for the
    life of the object (one run): a file is hashed once however many steps
    read it, and again if it changes while the run goes on."""

    def __init__(self):
        self._cache: dict = {}

    def __call__(self, path) -> str:
        p = os.path.abspath(path)
        st = os.stat(p)
        stamp = (p, st.st_size, st.st_mtime_ns, st.st_ino)
        digest = self._cache.get(stamp)
        if digest is None:
            digest = self._cache[stamp] = file_digest(p)
        return digest

    def known(self) -> dict:
        """``{path: digest}`` of every file hashed so far (the latest state of each)."""
        return {stamp[0]: d for stamp, d in self._cache.items()}


class FolderLock:
    """Exclusive lock on a folder for one process: ``fcntl.flock`` on
    ``<folder>/.recouple.lock``, which records the holder's pid, host and
    start time. ``acquire`` refuses at once (no waiting) when another process
    holds it. Use as a context manager."""

    def __init__(self, folder, *, what: str = "recouple run"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self._fd = None

    def acquire(self) -> FolderLock:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise _with_filename(exc, self.path) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read_holder(fd)
                os.close(fd)
                raise OutputError(self._busy_message(holder)) from None
            except OSError:
                os.close(fd)
                raise
            # the holder before us may have deleted the file after we opened it: lock the file at the path
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.what,
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:
            pass  # the lock holds without its description (e.g. on a full disk)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # still locked: a process that opened it meanwhile retries on the new file
        with contextlib.suppress(OSError):
            os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    @staticmethod
    def _read_holder(fd) -> dict:
        try:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            info = json.loads(text) if text.strip() else {}
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _busy_message(self, holder: dict) -> str:
        if holder.get("pid"):
            who = (f"{holder.get('command', 'another run')} (pid {holder['pid']} on {holder.get('host', '?')}, "
                   f"started {holder.get('started', '?')})")
        else:
            who = "another process that is just starting"
        return (f"output folder {str(self.folder)!r} is in use by {who}; two runs must not write one folder. Wait for "
                f"it to finish (its finished steps are kept and a later run reuses them), or pass another output "
                f"folder (--out). If that process no longer runs (e.g. the folder is on a network file system and "
                f"the lock is stale), delete {str(self.path)!r} and run again.")
