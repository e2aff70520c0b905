"""Random streams for resampling, invariant to chunking, backend and workers.

Every resample ``k`` (rotation, permutation, sign vector, bootstrap draw,
surrogate) gets its own generator built from ``SeedSequence(entropy=seed,
spawn_key=(purpose, k))``. Draw ``k`` is therefore the same whether it is
made alone, in a batch of 7 or in a batch of 10,000, on any worker. Draws are
made on the host with NumPy and moved to the device afterwards.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..exceptions import InputError
from .planner import require_memory


def _purpose_key(purpose: str) -> int:
    return zlib.crc32(purpose.encode())


def root_entropy(seed) -> int:
    """Normalise ``seed`` (int, ``None``, ``SeedSequence`` or ``Generator``) to an integer."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, (bool, np.bool_)):
        raise InputError(f"seed must be an integer or a numpy Generator; got {seed!r}. Pass e.g. seed=0.")
    if isinstance(seed, (int, np.integer)):
        if seed < 0:
            raise InputError(f"seed must be a non-negative integer; got {seed}. Pass e.g. seed=0.")
        return int(seed)
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.entropy) if not isinstance(seed.entropy, (list, tuple)) else int(seed.generate_state(1)[0])
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    raise InputError(
        f"seed must be an integer, None, a numpy SeedSequence or Generator; got {type(seed).__name__}. "
        "Pass e.g. seed=0."
    )


def stream(seed, purpose: str, index: int) -> np.random.Generator:
    """Generator for resample ``index`` of kind ``purpose`` under ``seed``."""
    ss = np.random.SeedSequence(entropy=root_entropy(seed), spawn_key=(_purpose_key(purpose), int(index)))
    return np.random.Generator(np.random.PCG64(ss))


def iter_streams(seed, purpose: str, indices):
    """The generators of :func:`streams`, made one at a time (a generator
    holds ~1 KB: a loop over millions of draws must not keep them all)."""
    entropy = root_entropy(seed)  # here, not at the first draw: a bad seed fails at once
    key = _purpose_key(purpose)
    return (np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=entropy, spawn_key=(key, int(i)))))
            for i in indices)


def streams(seed, purpose: str, indices) -> list[np.random.Generator]:
    """List of the generators for resamples ``indices`` (see :func:`iter_streams` for long loops)."""
    return list(iter_streams(seed, purpose, indices))


def _require(function, n_perm, n, dtype, memory_limit, item="n_perm"):
    n_perm = int(n_perm)
    if n_perm < 0 or int(n) < 0:
        raise InputError(f"{function} needs non-negative sizes; got {item}={n_perm}, n={n}. Pass e.g. {item}=1000.")
    require_memory(f"{function}: the ({n_perm:,}, {int(n):,}) {dtype} array", n_perm, 8.0 * max(int(n), 1),
                   memory_limit=memory_limit, item=item,
                   fix="draw in blocks with start= (row k is the same in any block)")


def permutation_indices(seed, n_perm: int, n: int, *, start: int = 0, purpose="permutation", blocks=None,
                        whole_blocks: bool = False, memory_limit=None) -> np.ndarray:
    """``(n_perm, n)`` int array; row k is a uniform permutation of ``range(n)``.

    ``blocks`` : (n,) int codes ``0..B-1``, optional
        Exchangeability blocks: rows are shuffled within their block or, with
        ``whole_blocks=True``, blocks (of equal size) swap places as units,
        keeping their internal order. Permuted row ``i`` is original row
        ``out[k, i]``.
    memory_limit : optional
        Budget (:func:`recouple.engine.planner.parse_memory`); an output that
        does not fit is refused before anything is drawn.
    """
    _require("permutation_indices", n_perm, n, "int64", memory_limit)
    gens = iter_streams(seed, purpose, range(start, start + n_perm))
    out = np.empty((n_perm, n), dtype=np.int64)
    if blocks is None:
        for k, g in enumerate(gens):
            out[k] = g.permutation(n)
        return out
    codes = np.asarray(blocks)
    positions = [np.flatnonzero(codes == b) for b in range(int(codes.max()) + 1)]
    for k, g in enumerate(gens):
        idx = np.empty(n, dtype=np.int64)
        if whole_blocks:
            order = g.permutation(len(positions))
            for dest, src in zip(positions, order):
                idx[dest] = positions[src]
        else:
            for pos in positions:
                idx[pos] = pos[g.permutation(pos.size)]
        out[k] = idx
    return out


def sign_flips(seed, n_perm: int, n: int, *, start: int = 0, purpose="signflip", blocks=None,
               memory_limit=None) -> np.ndarray:
    """``(n_perm, n)`` array of +-1 (float64); row k independent Rademacher signs.

    The one sign-flip generator of the package. ``blocks`` : (n,) int codes
    ``0..B-1``, optional: whole-block flips, one sign drawn per block and
    shared by its members (row k draws ``B`` signs instead of ``n``).
    ``memory_limit``: an output that does not fit is refused before anything
    is drawn.
    """
    _require("sign_flips", n_perm, n, "float64", memory_limit)
    gens = iter_streams(seed, purpose, range(start, start + n_perm))
    codes = None if blocks is None else np.asarray(blocks)
    units = n if codes is None else int(codes.max()) + 1
    out = np.empty((n_perm, n), dtype=np.float64)
    for k, g in enumerate(gens):
        s = np.where(g.random(units) < 0.5, -1.0, 1.0)
        out[k] = s if codes is None else s[codes]
    return out


def bootstrap_indices(seed, n_boot: int, n: int, *, start: int = 0, purpose="bootstrap",
                      memory_limit=None) -> np.ndarray:
    """``(n_boot, n)`` int array of indices drawn with replacement (refused
    before drawing when it does not fit ``memory_limit``)."""
    _require("bootstrap_indices", n_boot, n, "int64", memory_limit, item="n_boot")
    gens = iter_streams(seed, purpose, range(start, start + n_boot))
    out = np.empty((n_boot, n), dtype=np.int64)
    for k, g in enumerate(gens):
        out[k] = g.integers(0, n, size=n)
    return out
