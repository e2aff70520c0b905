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


def streams(seed, purpose: str, indices) -> list[np.random.Generator]:
    entropy = root_entropy(seed)
    key = _purpose_key(purpose)
    return [
        np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=entropy, spawn_key=(key, int(i)))))
        for i in indices
    ]


def permutation_indices(seed, n_perm: int, n: int, *, start: int = 0, purpose="permutation", blocks=None,
                        whole_blocks: bool = False) -> np.ndarray:
    """``(n_perm, n)`` int array; row k is a uniform permutation of ``range(n)``.

    ``blocks`` : (n,) int codes ``0..B-1``, optional
        Exchangeability blocks: rows are shuffled within their block or, with
        ``whole_blocks=True``, blocks (of equal size) swap places as units,
        keeping their internal order. Permuted row ``i`` is original row
        ``out[k, i]``.
    """
    gens = streams(seed, purpose, range(start, start + n_perm))
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


def sign_flips(seed, n_perm: int, n: int, *, start: int = 0, purpose="signflip", blocks=None) -> np.ndarray:
    """``(n_perm, n)`` array of +-1 (float64); row k independent Rademacher signs.

    The one sign-flip generator of the package. ``blocks`` : (n,) int codes
    ``0..B-1``, optional: whole-block flips, one sign drawn per block and
    shared by its members (row k draws ``B`` signs instead of ``n``).
    """
    gens = streams(seed, purpose, range(start, start + n_perm))
    codes = None if blocks is None else np.asarray(blocks)
    units = n if codes is None else int(codes.max()) + 1
    out = np.empty((n_perm, n), dtype=np.float64)
    for k, g in enumerate(gens):
        s = np.where(g.random(units) < 0.5, -1.0, 1.0)
        out[k] = s if codes is None else s[codes]
    return out


def bootstrap_indices(seed, n_boot: int, n: int, *, start: int = 0, purpose="bootstrap") -> np.ndarray:
    """``(n_boot, n)`` int array of indices drawn with replacement."""
    gens = streams(seed, purpose, range(start, start + n_boot))
    out = np.empty((n_boot, n), dtype=np.int64)
    for k, g in enumerate(gens):
        out[k] = g.integers(0, n, size=n)
    return out
