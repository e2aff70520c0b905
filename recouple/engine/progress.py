"""A small progress bar on stderr for long loops.

It draws only when stderr is a terminal or ``RECOUPLE_PROGRESS=1`` is set
(``RECOUPLE_PROGRESS=0`` silences it), so logs and tests stay clean.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["ProgressBar", "progress", "enabled"]


def enabled(stream=None) -> bool:
    """Whether progress bars draw: ``RECOUPLE_PROGRESS`` if set, else whether stderr is a TTY."""
    flag = os.environ.get("RECOUPLE_PROGRESS")
    if flag is not None and flag.strip() != "":
        return flag.strip().lower() not in ("0", "false", "no", "off")
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class ProgressBar:
    """``[#####-----]  12/40 chunks  0:03 elapsed, ~0:09 left`` on one stderr line.

    Parameters
    ----------
    total : int or None
        Number of steps (None draws a counter without a bar).
    desc : str
        Label in front of the bar.
    unit : str
        Name of a step.
    initial : int
        Steps already done (e.g. chunks finished by an earlier run).
    show : bool, optional
        Force drawing on/off; default :func:`enabled`.
    """

    def __init__(self, total=None, *, desc: str = "", unit: str = "it", initial: int = 0, show=None, width: int = 28):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = int(initial)
        self._start_n = self.n
        self.width = width
        self.show = enabled() if show is None else bool(show)
        self._t0 = time.monotonic()
        self._last = 0.0
        self._drawn = False
        if self.show:
            self._draw(force=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.show:
            self._draw()

    def _draw(self, force=False):
        now = time.monotonic()
        if not force and now - self._last < 0.1 and (self.total is None or self.n < self.total):
            return
        self._last = now
        elapsed = now - self._t0
        done_here = self.n - self._start_n
        if self.total:
            frac = min(self.n / self.total, 1.0)
            filled = int(round(frac * self.width))
            bar = "[" + "#" * filled + "-" * (self.width - filled) + "]"
            left = ""
            if done_here > 0 and self.n < self.total:
                left = f", ~{_fmt(elapsed / done_here * (self.total - self.n))} left"
            text = f"{bar} {self.n}/{self.total} {self.unit}  {_fmt(elapsed)} elapsed{left}"
        else:
            text = f"{self.n} {self.unit}  {_fmt(elapsed)} elapsed"
        prefix = f"{self.desc}: " if self.desc else ""
        sys.stderr.write("\r" + prefix + text + " " * 4)
        sys.stderr.flush()
        self._drawn = True

    def close(self) -> None:
        if self.show:
            self._draw(force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.show = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress(iterable, *, total=None, desc: str = "", unit: str = "it", show=None):
    """Yield from ``iterable`` while drawing a progress bar on stderr.

    >>> sum(progress(range(3), desc="demo", show=False))
    3
    """
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    bar = ProgressBar(total, desc=desc, unit=unit, show=show)
    try:
        for item in iterable:
            yield item
            bar.update()
    finally:
        bar.close()
