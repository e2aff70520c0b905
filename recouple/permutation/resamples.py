"""Resample matrices: validation of precomputed resamples, exhaustive
enumeration when few distinct resamples exist, and random draws (made by
:mod:`recouple.engine.random`, one stream per resample)."""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..engine.planner import require_memory
from ..engine.random import permutation_indices, sign_flips
from ..exceptions import InputError, ShapeError, describe
from ..validation import check_positive_int
from .options import Resampling

__all__ = ["Resamples", "draw_resamples", "sign_flip_matrix", "permutation_matrix"]

_ENUMERATION_CAP = 2_000_000
_CHECK_ROWS = 65_536  # rows of a precomputed resample matrix checked at a time


def _check_scans(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n (the number of scans) must be a positive integer; got {n!r}. Pass the number of rows "
                         "of the data.")
    return int(n)


def _blocks_array(blocks, n):
    if blocks is None:
        return None
    b = np.asarray(blocks)
    if b.ndim != 1 or b.shape[0] != n:
        raise ShapeError(
            f"exchangeability_blocks must be one block label per scan, shape ({n},); got {describe(b)}. "
            "Pass e.g. the site or subject of every row of the data."
        )
    _, codes = np.unique(b, return_inverse=True)
    return codes


def _count_resamples(kind, n, codes, whole_blocks):
    if kind == "signflip":
        units = n if codes is None or not whole_blocks else int(codes.max()) + 1
        return 2**units if units < 64 else math.inf
    if codes is None:
        return math.factorial(n) if n < 25 else math.inf
    sizes = np.bincount(codes)
    if whole_blocks:
        return math.factorial(len(sizes)) if len(sizes) < 25 else math.inf
    total = 1
    for s in sizes:
        total *= math.factorial(int(s))
        if total > 1e18:
            return math.inf
    return total


def _enumerate(kind, n, codes, whole_blocks):
    """Every distinct resample except the identity, in a fixed order."""
    if kind == "signflip":
        if codes is None or not whole_blocks:
            units, expand = n, None
        else:
            units, expand = int(codes.max()) + 1, codes
        bits = ((np.arange(1, 2**units)[:, None] >> np.arange(units)[None, :]) & 1).astype(np.float64)
        signs = 1.0 - 2.0 * bits
        return signs if expand is None else signs[:, expand]
    if codes is None:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        return perms[1:]
    positions = [np.flatnonzero(codes == b) for b in range(int(codes.max()) + 1)]
    if whole_blocks:
        out = []
        for order in itertools.permutations(range(len(positions))):
            idx = np.empty(n, dtype=np.int64)
            for dest, src in zip(positions, order):
                idx[dest] = positions[src]
            out.append(idx)
        return np.array(out[1:])
    per_block = [list(itertools.permutations(p.tolist())) for p in positions]
    out = []
    for combo in itertools.product(*per_block):
        idx = np.empty(n, dtype=np.int64)
        for dest, src in zip(positions, combo):
            idx[dest] = src
        out.append(idx)
    return np.array(out[1:])


def _check_whole_blocks(codes):
    sizes = np.bincount(codes)
    if np.unique(sizes).size != 1:
        raise InputError(
            f"whole-block permutation needs blocks of equal size; got block sizes {sorted(set(sizes.tolist()))}. "
            "Use whole_blocks=False to permute within blocks, or make every block the same size."
        )


def sign_flip_matrix(n, *, n_perm=10_000, seed=0, exchangeability_blocks=None, whole_blocks=False,
                     start=0, memory_limit=None):
    """Sign-flip matrix ``(n_perm, n)`` of +-1, one random stream per row.

    Parameters
    ----------
    n : int
        Number of scans (e.g. patients with a pre/post difference).
    n_perm : int
        Number of random sign vectors.
    seed : int
    exchangeability_blocks : (n,) array, optional
        With ``whole_blocks=True`` all members of a block share one sign.
    start : int
        Index of the first stream (draw ``k`` is the same whatever ``start``).
    memory_limit : int, str or float, optional
        Budget (see :func:`recouple.engine.planner.parse_memory`; default
        half of the available memory): a matrix that does not fit is refused
        before anything is drawn; draw it in blocks with ``start=``.

    Returns
    -------
    signs : (n_perm, n) float64

    Notes
    -----
    Drawn by :func:`recouple.engine.random.sign_flips`, the one sign-flip
    generator of the package.
    """
    n = _check_scans(n)
    n_perm = check_positive_int("n_perm", n_perm)
    codes = _blocks_array(exchangeability_blocks, n)
    return sign_flips(seed, n_perm, n, start=start, blocks=codes if whole_blocks else None,
                      memory_limit=memory_limit)


def permutation_matrix(n, *, n_perm=10_000, seed=0, exchangeability_blocks=None, whole_blocks=False,
                       start=0, memory_limit=None):
    """Row-permutation indices ``(n_perm, n)``, one random stream per row.

    Within blocks (default) each block's rows are shuffled among themselves;
    with ``whole_blocks=True`` blocks (of equal size) swap places as units,
    keeping their internal order. ``memory_limit`` (default half of the
    available memory): a matrix that does not fit is refused before anything
    is drawn; draw it in blocks with ``start=``.

    Returns
    -------
    permutations : (n_perm, n) int64; permuted row ``i`` is original row ``permutations[k, i]``.
    """
    n = _check_scans(n)
    n_perm = check_positive_int("n_perm", n_perm)
    codes = _blocks_array(exchangeability_blocks, n)
    if codes is not None and whole_blocks:
        _check_whole_blocks(codes)
    return permutation_indices(seed, n_perm, n, start=start, blocks=codes, whole_blocks=bool(whole_blocks),
                               memory_limit=memory_limit)


def _resamples(kind, n, *, n_perm, seed, blocks, whole_blocks, permutations, signs, plan=None, memory_limit=None):
    """Resolve the resample matrix: user-given, enumerated, or drawn.

    ``plan(k, copies)`` is called before the matrix is drawn, converted or
    enumerated, with the number of resamples and of ``(k, n)`` arrays that
    will be made (see :func:`draw_resamples`)."""
    plan = plan or (lambda k, copies: None)
    if permutations is not None and signs is not None:
        raise InputError("pass at most one of permutations= and signs=; got both. Pass only the one you need.")
    if permutations is not None:
        p = np.asarray(permutations)
        if p.ndim != 2 or p.shape[1] != n or not np.issubdtype(p.dtype, np.integer):
            raise ShapeError(
                f"permutations must be an integer array of shape (n_perm, {n}); got {describe(p)}. "
                "Each row is a permutation of range(n_scans)."
            )
        if p.shape[0] == 0:
            raise InputError(f"permutations must hold at least one resample; got shape {p.shape}. "
                             "Build them with recouple.permutation.permutation_matrix.")
        plan(p.shape[0], (p.dtype != np.int64) + 1)  # a conversion and the inverse permutation
        for r0 in range(0, p.shape[0], _CHECK_ROWS):  # row blocks: no full-size sorted copy
            if not (np.sort(p[r0 : r0 + _CHECK_ROWS], axis=1) == np.arange(n)).all():
                raise InputError(
                    "permutations must hold a permutation of range(n_scans) in every row; some rows repeat or miss "
                    "indices. Build them with recouple.permutation.permutation_matrix."
                )
        return "permute", p.astype(np.int64), False
    if signs is not None:
        raw = np.asarray(signs)
        s = raw if raw.dtype.kind in "biuf" else np.zeros((0, 0))  # complex, strings, objects: refused below
        if s.ndim != 2 or s.shape[1] != n or s.shape[0] == 0 or not all(
                np.isin(s[r0 : r0 + _CHECK_ROWS], (-1.0, 1.0)).all() for r0 in range(0, s.shape[0], _CHECK_ROWS)):
            raise ShapeError(
                f"signs must be a (n_perm, {n}) array of +1/-1; got {describe(raw)}. "
                "Build it with recouple.permutation.sign_flip_matrix."
            )
        plan(s.shape[0], int(s.dtype != np.float64))
        return "signflip", s.astype(np.float64, copy=False), False
    n_perm = check_positive_int("n_perm", n_perm)
    codes = _blocks_array(blocks, n)
    if codes is not None and whole_blocks and kind == "permute":
        _check_whole_blocks(codes)
    total = _count_resamples(kind, n, codes, whole_blocks)
    if total <= 1:
        raise InputError(
            f"exchangeability_blocks leave no resample but the identity for a {kind} test (every block has one "
            "scan, or there is one whole block); got block sizes "
            f"{np.bincount(codes).tolist() if codes is not None else [n]}. Use larger blocks or no blocks."
        )
    plan(int(min(n_perm, total - 1)), 1 + (kind == "permute"))  # the matrix (and its inverse permutation)
    if total - 1 <= n_perm:
        if total - 1 > _ENUMERATION_CAP:
            raise InputError(f"n_perm={n_perm:,} would enumerate all {int(total) - 1:,} resamples of {n} scans, more "
                             f"than {_ENUMERATION_CAP:,}; pass a smaller n_perm (random resamples are drawn then).")
        warnings.warn(
            f"only {int(total)} distinct {'sign flips' if kind == 'signflip' else 'permutations'} exist for "
            f"{n} {'observations (one difference per subject in a paired test; ' if kind == 'signflip' else 'scans ('}"
            f"n_perm={n_perm} requested); all {int(total) - 1} non-identity resamples are enumerated "
            "and the p-values are exact.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
        return kind, _enumerate(kind, n, codes, whole_blocks), True
    if kind == "signflip":
        return kind, sign_flip_matrix(n, n_perm=n_perm, seed=seed, exchangeability_blocks=blocks,
                                      whole_blocks=whole_blocks, memory_limit=memory_limit), False
    return kind, permutation_matrix(n, n_perm=n_perm, seed=seed, exchangeability_blocks=blocks,
                                    whole_blocks=whole_blocks, memory_limit=memory_limit), False


@dataclass(frozen=True)
class Resamples:
    """The resamples of an analysis.

    Attributes
    ----------
    kind : {"permute", "signflip"}
    matrix : (n_perm, n) array
        Row-permutation indices (int64) or signs (+-1, float64).
    exhaustive : bool
        Every distinct non-identity resample was enumerated (p-values exact).
    """

    kind: str
    matrix: np.ndarray
    exhaustive: bool

    @property
    def n_perm(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def permutations(self):
        return self.matrix if self.kind == "permute" else None

    @property
    def signs(self):
        return self.matrix if self.kind == "signflip" else None

    def as_resampling(self, base: Resampling | None = None) -> Resampling:
        """A :class:`Resampling` that replays exactly these resamples."""
        base = base if base is not None else Resampling()
        return base.replace(kind=self.kind, permutations=self.permutations, signs=self.signs)


def draw_resamples(n, resampling: Resampling, *, kind: str, n_elements: int | None = None,
                   n_contrasts: int = 1) -> Resamples:
    """The resample matrix an analysis of ``n`` scans draws under ``resampling``.

    Parameters
    ----------
    n : int
        Number of scans (rows of the data).
    resampling : Resampling
    kind : {"permute", "signflip"}
        The kind the analysis resolved ``"auto"`` to (precomputed
        ``permutations``/``signs`` take precedence).
    n_elements, n_contrasts : int, optional
        Columns of the data and contrasts of the analysis: with
        ``keep_null=True`` the ``(n_perm, n_elements)`` null of every
        contrast is planned too.

    Returns
    -------
    :class:`Resamples` — user-given, enumerated (when fewer distinct
    resamples than ``n_perm`` exist, with a warning) or drawn.

    Raises
    ------
    InputError
        Before anything is drawn, when the matrix (with the copy the tests
        make of it) and a kept null do not fit ``resampling.memory_limit``.
    """
    n = _check_scans(n)

    def plan(k, copies):
        # the matrix, the copies made of it (conversion, inverse permutation)
        # and, with keep_null, each contrast's null and their stack
        per = 8.0 * n * copies
        what = f"the ({k:,}, {n:,}) resample matrix"
        if resampling.keep_null and n_elements:
            per += 8.0 * n_elements * (n_contrasts + (n_contrasts > 1) + 1)
            what += f" and the kept ({k:,}, {int(n_elements):,}) null"
        require_memory(f"permutation test: {what}", k, per, memory_limit=resampling.memory_limit,
                       fix="keep_null=False (the p-values need only streamed counts)" if resampling.keep_null
                       else "")

    k, matrix, exhaustive = _resamples(
        kind, n, n_perm=resampling.n_perm, seed=resampling.seed, blocks=resampling.exchangeability_blocks,
        whole_blocks=resampling.whole_blocks, permutations=resampling.permutations, signs=resampling.signs,
        plan=plan, memory_limit=resampling.memory_limit,
    )
    return Resamples(kind=k, matrix=matrix, exhaustive=bool(exhaustive))


def user_stacklevel() -> int:
    """``stacklevel`` of the first frame outside recouple, so warnings point at the caller's line."""
    frame = inspect.currentframe()
    level = 0
    package = __name__.split(".")[0]
    while frame is not None:
        if level > 0 and not str(frame.f_globals.get("__name__", "")).startswith(package + "."):
            return level
        frame = frame.f_back
        level += 1
    return 2
