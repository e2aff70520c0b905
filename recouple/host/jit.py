"""Compiled host loops for the NumPy backend (numba).

A few host paths are bound by random gathers and short data-dependent
loops rather than by arithmetic: vectorised NumPy makes one pass over memory
per operation and per candidate, a compiled loop makes one pass in all.
These loops sit beside the NumPy code they replace (callers branch on
:func:`enabled`, as they do for SciPy fast paths). The spin loops (nearest
cell, distances, assignment) and Floyd-Warshall do the same IEEE operations
in the same order -- no fast-math, no fused multiply-add -- so both paths
return identical arrays; TFCE finds the same components at the same heights
and sums the contributions in another order (equal to rounding).
``tests/test_host_jit.py`` compares every loop with the code it replaces.

numba is a dependency; without it (a platform with no wheel) or with
``RECOUPLE_JIT=0`` the NumPy code runs. Every loop releases the GIL, so the
callers run blocks of work on :func:`recouple.engine.dispatch.host_map`
threads. Compiled code is cached in a per-user folder (:func:`cache_dir`:
``$RECOUPLE_CACHE_DIR``, else ``$XDG_CACHE_HOME/recouple/numba``, else
``~/.cache/recouple/numba``), never inside the installed package, so only the
first call on a machine compiles and uninstalling leaves nothing behind in
``site-packages``. Where that folder is not writable the loops compile once
per process instead (one note on stderr).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from pathlib import Path

import numpy as np
from scipy import sparse

from ..exceptions import InputError

__all__ = ["assignment_blocks", "cache_dir", "describe", "enabled", "euclidean_blocks", "floyd_warshall_blocks",
           "nearest_on_cells", "tfce_maps", "vasa_blocks"]

_COMPILED: dict = {}
_LOCK = threading.Lock()
_CACHE_NOTED = False


def enabled() -> bool:
    """True when the compiled host loops are used: numba importable and
    ``RECOUPLE_JIT`` unset or ``1`` (``0`` selects the NumPy code)."""
    env = os.environ.get("RECOUPLE_JIT", "").strip()
    if env not in ("", "0", "1"):
        raise InputError(f"RECOUPLE_JIT must be 0 or 1; got {env!r}. Set RECOUPLE_JIT=0 to use the NumPy "
                         "code for host loops, 1 (or unset) to use the compiled loops.")
    if env == "0":
        return False
    try:
        import numba  # noqa: F401  (optional at run time: imported on first use, never by `import recouple`)
    except ImportError:  # pragma: no cover - platforms without a numba wheel
        return False
    return True


def cache_dir() -> Path:
    """Folder of the compiled-loop cache: ``$RECOUPLE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/recouple/numba``, else ``~/.cache/recouple/numba``."""
    env = os.environ.get("RECOUPLE_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "recouple" / "numba"


def describe() -> str:
    """One line for ``recouple info`` and benchmark records."""
    if os.environ.get("RECOUPLE_JIT", "").strip() == "0":
        return "NumPy code (RECOUPLE_JIT=0)"
    try:
        import numba  # optional at run time, see enabled()
    except ImportError:  # pragma: no cover - platforms without a numba wheel
        return "NumPy code (numba not installed)"
    return f"compiled with numba {numba.__version__} (RECOUPLE_JIT=0 for the NumPy code)"


def _function_cache(fn, folder: Path):
    """A numba cache for ``fn`` whose files go to ``folder`` and nowhere else
    (numba's default puts them in ``__pycache__`` beside this module, i.e.
    inside the installed package). Raises OSError when ``folder`` cannot be
    written, RuntimeError/ImportError/AttributeError when numba's cache API
    is not the one expected."""
    # numba's cache classes: imported with numba, on first use
    from numba.core.caching import CompileResultCacheImpl, FunctionCache, UserProvidedCacheLocator

    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OSError(f"{folder} is not writable")

    class Locator(UserProvidedCacheLocator):
        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(str(folder), self.get_suitable_cache_subpath(py_file))

        @classmethod
        def from_function(cls, py_func, py_file):
            # skip UserProvidedCacheLocator's check of NUMBA_CACHE_DIR: the folder is ours
            return super(UserProvidedCacheLocator, cls).from_function(py_func, py_file)

    class Impl(CompileResultCacheImpl):
        _locator_classes = [Locator]

    class Cache(FunctionCache):
        _impl_class = Impl

    return Cache(fn)


def _note_no_cache(reason) -> None:
    global _CACHE_NOTED
    if not _CACHE_NOTED:
        _CACHE_NOTED = True
        print(f"recouple: compiled loops are not cached ({reason}); they compile once per process. "
              "Set RECOUPLE_CACHE_DIR to a writable folder to cache them.", file=sys.stderr)


def compile_loop(fn, **flags):
    """``fn`` compiled with numba (``nogil``, NumPy error model, extra ``flags``),
    cached in :func:`cache_dir` and never inside the package. Every compiled
    loop of recouple is made here. One dispatcher per function, made on first
    use (importing recouple never imports numba); thread-safe because host_map
    calls from threads."""
    key = (fn.__module__, fn.__name__)
    with _LOCK:
        disp = _COMPILED.get(key)
        if disp is None:
            import numba  # optional at run time, see enabled()

            disp = numba.njit(nogil=True, error_model="numpy", **flags)(fn)
            try:
                disp._cache = _function_cache(fn, cache_dir())
            except (OSError, RuntimeError, ImportError, AttributeError) as exc:
                _note_no_cache(exc)
            _COMPILED[key] = disp
    return disp


_compiled = compile_loop


def _nearest_on_cells_loop(points, order, rots, table, grid, out):
    n = points.shape[1]
    width = table.shape[1]
    half = grid / 2.0
    for k in range(rots.shape[0]):
        r = rots[k]
        for s in range(n):
            p0 = points[0, s]
            p1 = points[1, s]
            p2 = points[2, s]
            # p R^T, each coordinate summed x, y, z in that order
            x = p0 * r[0, 0]
            x += p1 * r[0, 1]
            x += p2 * r[0, 2]
            y = p0 * r[1, 0]
            y += p1 * r[1, 1]
            y += p2 * r[1, 2]
            z = p0 * r[2, 0]
            z += p1 * r[2, 1]
            z += p2 * r[2, 2]
            ax, ay, az = abs(x), abs(y), abs(z)
            if ax >= ay and ax >= az:
                face, major, u, v = 0, x, y, z
            elif ay >= az:
                face, major, u, v = 2, y, x, z
            else:
                face, major, u, v = 4, z, x, y
            if major < 0:
                face += 1
            scale = half / abs(major)
            iu = min(max(int(u * scale + half), 0), grid - 1)
            iv = min(max(int(v * scale + half), 0), grid - 1)
            cell = (face * grid + iu) * grid + iv
            best = table[cell, 0]
            dbest = math.inf
            for m in range(width):
                j = table[cell, m]
                d = points[0, j] - x
                dd = d * d
                d = points[1, j] - y
                dd += d * d
                d = points[2, j] - z
                dd += d * d
                if dd < dbest:  # strict: the first of equal candidates (lowest index) wins
                    dbest = dd
                    best = j
            out[k, order[s]] = order[best]


def nearest_on_cells(points, order, rots, table, grid, out):
    """Nearest point to each query ``p_i R^T`` through a cube-map cell table.

    Parameters
    ----------
    points : (3, n) float64, C-contiguous
        Point coordinates as columns, in a spatially coherent order (queries
        and their candidates then touch nearby memory).
    order : (n,) int64
        Original index of each column of ``points``.
    rots : (K, 3, 3) float64, C-contiguous
    table : (6 grid^2, W) int32
        Candidates of each cell as columns of ``points``, in ascending
        original index, padded by repeating the first.
    grid : int
    out : (K, n) int64, written in place
        ``out[k, i]``: original index of the point nearest to ``p_i R_k^T``;
        among equally near candidates the lowest index. Same queries,
        squared distances and tie rule as the NumPy path.
    """
    _compiled(_nearest_on_cells_loop)(points, order, rots, table, grid, out)
    return out


def _euclidean_loop(a, b, out):
    n = a.shape[1]
    m = b.shape[2]
    for k in range(b.shape[0]):
        for i in range(n):
            a0, a1, a2 = a[0, i], a[1, i], a[2, i]
            for j in range(m):
                d = a0 - b[k, 0, j]
                s = d * d
                d = a1 - b[k, 1, j]
                s += d * d
                d = a2 - b[k, 2, j]
                s += d * d
                out[k, i, j] = math.sqrt(s)


def euclidean_blocks(a, b, out=None):
    """Euclidean distances ``out[k, i, j] = |a_i - b_kj|`` for 3-D points.

    ``a`` is ``(3, n)`` coordinate columns, ``b`` is ``(K, 3, m)``; squares
    summed x, y, z in that order, then the square root (the arithmetic of
    ``scipy.spatial.distance_matrix``).
    """
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    if out is None:
        out = np.empty((b.shape[0], a.shape[1], b.shape[2]))
    _compiled(_euclidean_loop)(a, b, out)
    return out


# --------------------------------------------------------------------------
# Váša greedy assignment, one rotation at a time in a reusable distance
# block: the steps of the NumPy driver (host.spheres.vasa) and of neuromaps --
# each step takes the first row (lowest index) of largest row minimum, gives
# it its first column of least distance, and recomputes the minimum of the
# rows whose closest column that was (lowest index among equal distances).
# Distances are >= +0 and finite, so their IEEE bit patterns as int64 order
# as the values do and are equal exactly when the values are: minima and
# maxima run on the integers (vectorised without fast-math). A taken column
# is locked by OR-ing in the bits of +inf (the NumPy code masks it with +inf);
# an assigned row's minimum is -1 (below every distance, as -inf there).

_INF_BITS = 0x7FF0000000000000


def _vasa_loop(a, b, out):
    n = a.shape[1]
    dist = np.empty((n, n))
    bits = dist.view(np.int64)
    lock = np.empty(n, np.int64)
    rowmin = np.empty(n, np.int64)
    rowarg = np.empty(n, np.int64)
    head = np.empty(n, np.int64)  # per column, the rows whose closest it is (a linked list)
    link = np.empty(2 * (n * n + n), np.int64)  # list cells (row, next cell): n + one per update
    inf_bits = _INF_BITS

    def first_min(r):
        # least distance of row r over the untaken columns, and the first
        # column holding it
        br = bits[r]
        m = inf_bits
        for j in range(n):
            x = br[j] | lock[j]
            m = x if x < m else m
        j = 0
        while j + 8 <= n:  # eight at a time, then the one within
            hit = False
            for t in range(8):
                hit |= br[j + t] | lock[j + t] == m
            if hit:
                break
            j += 8
        while br[j] | lock[j] != m:
            j += 1
        return m, j

    def first_max(v):
        # the first row of largest minimum
        m = v[0]
        for j in range(n):
            x = v[j]
            m = x if x > m else m
        j = 0
        while j + 8 <= n:
            hit = False
            for t in range(8):
                hit |= v[j + t] == m
            if hit:
                break
            j += 8
        while v[j] != m:
            j += 1
        return j

    for k in range(b.shape[0]):
        bk = b[k]
        lock[:] = 0
        head[:] = -1
        cells = 0
        for i in range(n):
            a0, a1, a2 = a[0, i], a[1, i], a[2, i]
            di = dist[i]
            # distances as in _euclidean_loop (squares summed x, y, z, then sqrt)
            for j in range(n):
                d = a0 - bk[0, j]
                s = d * d
                d = a1 - bk[1, j]
                s += d * d
                d = a2 - bk[2, j]
                s += d * d
                di[j] = math.sqrt(s)
            m, j = first_min(i)
            rowmin[i] = m
            rowarg[i] = j
            link[cells] = i
            link[cells + 1] = head[j]
            head[j] = cells
            cells += 2
        for _ in range(n):
            row = first_max(rowmin)
            col = rowarg[row]
            out[k, row] = col
            rowmin[row] = -1
            rowarg[row] = -1
            lock[col] = inf_bits
            # the rows whose closest column that was: their new minimum
            c = head[col]
            while c >= 0:
                r = link[c]
                c = link[c + 1]
                if rowarg[r] != col:  # assigned since
                    continue
                m, j = first_min(r)
                rowmin[r] = m
                rowarg[r] = j
                link[cells] = r
                link[cells + 1] = head[j]
                head[j] = cells
                cells += 2


def vasa_blocks(a, b, out=None):
    """Váša greedy assignment for each rotation: ``a`` (3, n) original
    coordinate columns, ``b`` (K, 3, n) rotated coordinate columns;
    ``out[k, i]`` (int64) is the rotated parcel given to parcel ``i``, the
    answer of :func:`recouple.host.spheres.vasa`'s NumPy code (and of
    neuromaps' ``vasa``), ties included. Coordinates must be finite.
    """
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    if out is None:
        out = np.empty((b.shape[0], a.shape[1]), dtype=np.int64)
    if a.shape[1]:
        _compiled(_vasa_loop)(a, b, out)
    return out


# --------------------------------------------------------------------------
# Linear sum assignment, square costs: the shortest augmenting path algorithm
# (Crouse 2016, IEEE Trans Aerosp Electron Syst 52:1679) in the order of
# operations of scipy.optimize.linear_sum_assignment -- the same shift by the
# global minimum, the same dual updates, the same scan order over the
# remaining columns and the same choice among equal minima -- so that every
# assignment, ties included, is SciPy's. The scan itself runs over all
# columns in storage order (scanned ones locked by +inf), branch-free and
# without indirection through a column list; SciPy's scan order is kept as
# positions, consulted only to break ties.


def _assignment_loop(costs, out):
    n = costs.shape[1]
    cost = np.empty((n, n))
    u = np.empty(n)
    v = np.empty(n)
    row4col = np.empty(n, np.int64)
    dist = np.empty(n)
    sdist = np.empty(n)
    lock = np.empty(n)
    path = np.empty(n, np.int64)
    remaining = np.empty(n, np.int64)
    pos = np.empty(n, np.int64)
    scols = np.empty(n, np.int64)
    srows = np.empty(n, np.int64)
    for k in range(costs.shape[0]):
        col4row = out[k]
        c = costs[k]
        cmin = math.inf
        for i in range(n):
            for j in range(n):
                if c[i, j] < cmin:
                    cmin = c[i, j]
        for i in range(n):
            for j in range(n):
                cost[i, j] = c[i, j] - cmin
        u[:] = 0.0
        v[:] = 0.0
        row4col[:] = -1
        col4row[:] = -1
        path[:] = -1
        for cur in range(n):
            for t in range(n):  # SciPy fills its remaining columns in reverse
                remaining[t] = n - t - 1
                pos[n - t - 1] = t
            dist[:] = math.inf
            lock[:] = 0.0
            num = n
            nsc = 0
            nsr = 0
            min_val = 0.0
            i = cur
            sink = -1
            while sink == -1:
                srows[nsr] = i
                nsr += 1
                # relax every column (SciPy's arithmetic order; + 0.0 is exact,
                # + inf locks a scanned column), branch-free
                ci = cost[i]
                ui = u[i]
                for jj in range(n):
                    r = min_val + ci[jj] - ui - v[jj] + lock[jj]
                    d = dist[jj]
                    better = r < d
                    dist[jj] = r if better else d
                    path[jj] += (i - path[jj]) * better  # arithmetic, not a select: vectorises
                # the minimum, in eight independent lanes
                m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = math.inf
                jj = 0
                while jj + 8 <= n:
                    x = dist[jj]
                    m0 = x if x < m0 else m0
                    x = dist[jj + 1]
                    m1 = x if x < m1 else m1
                    x = dist[jj + 2]
                    m2 = x if x < m2 else m2
                    x = dist[jj + 3]
                    m3 = x if x < m3 else m3
                    x = dist[jj + 4]
                    m4 = x if x < m4 else m4
                    x = dist[jj + 5]
                    m5 = x if x < m5 else m5
                    x = dist[jj + 6]
                    m6 = x if x < m6 else m6
                    x = dist[jj + 7]
                    m7 = x if x < m7 else m7
                    jj += 8
                m0 = m4 if m4 < m0 else m0
                m1 = m5 if m5 < m1 else m1
                m2 = m6 if m6 < m2 else m2
                m3 = m7 if m7 < m3 else m3
                while jj < n:
                    x = dist[jj]
                    m0 = x if x < m0 else m0
                    jj += 1
                m0 = m1 if m1 < m0 else m0
                m2 = m3 if m3 < m2 else m2
                lowest = m2 if m2 < m0 else m0
                if lowest == math.inf:  # cannot happen for finite costs
                    return False
                ties = 0
                for jj in range(n):
                    ties += dist[jj] == lowest
                if ties == 1:
                    j = 0
                    while dist[j] != lowest:
                        j += 1
                else:
                    # SciPy's choice among equal minima, in its scan order: the
                    # last unassigned column if there is one, else the first
                    jf, pf, jl, pl = -1, n, -1, -1
                    for jj in range(n):
                        if dist[jj] == lowest:
                            p = pos[jj]
                            if p < pf:
                                pf, jf = p, jj
                            if row4col[jj] == -1 and p > pl:
                                pl, jl = p, jj
                    j = jl if jl >= 0 else jf
                min_val = lowest
                if row4col[j] == -1:
                    sink = j
                else:
                    i = row4col[j]
                sdist[j] = lowest
                dist[j] = math.inf
                lock[j] = math.inf
                scols[nsc] = j
                nsc += 1
                num -= 1
                moved = remaining[num]
                remaining[pos[j]] = moved
                pos[moved] = pos[j]
            u[cur] += min_val
            for t in range(1, nsr):
                r = srows[t]
                u[r] += min_val - sdist[col4row[r]]
            for t in range(nsc):
                j = scols[t]
                v[j] -= min_val - sdist[j]
            j = sink
            while True:
                i = path[j]
                row4col[j] = i
                nxt = col4row[i]
                col4row[i] = j
                j = nxt
                if i == cur:
                    break
    return True


def assignment_blocks(costs, out=None):
    """Minimum-cost assignment of each square matrix in ``costs`` (K, n, n):
    ``out[k, i]`` is the column given to row ``i`` (int64), the answer of
    ``scipy.optimize.linear_sum_assignment(costs[k])[1]``, ties included.

    Costs must be finite (as for the spin distances that call this).
    """
    costs = np.ascontiguousarray(costs, dtype=np.float64)
    if out is None:
        out = np.empty(costs.shape[:2], dtype=np.int64)
    ok = _compiled(_assignment_loop)(costs, out)
    if not ok:  # pragma: no cover - finite costs always have a perfect assignment
        raise ValueError("cost matrix is infeasible")
    return out


# --------------------------------------------------------------------------
# TFCE in one pass per map: elements are added in descending order of value
# and joined to their active neighbours with a union-find (union by extent);
# after each height's elements are in, every current component gets that
# height's contribution e^E h^H [dh] once, at its root. Each element's TFCE is
# the sum of the potentials on its path to the root: a root merged under
# another subtracts the new root's potential, so that later contributions
# reach it and earlier ones do not. The same components and heights as
# labelling every height from scratch; sums in another order (differences at
# rounding level).


def _tfce_block(all_values, all_heights, all_coef, extent, weights, shape, offsets, indptr, indices, graph, all_out,
                sign):
    for k in range(all_values.shape[0]):
        values, heights, coef, out = all_values[k], all_heights[k], all_coef[k], all_out[k]
        n = values.shape[0]
        steps = heights.shape[0]
        if steps == 0 or not heights[0] > 0:
            continue
        # elements active at the lowest height, bucketed by the highest height
        # each reaches (a counting sort: within a height, storage order, so
        # that neighbours are near in memory)
        cand = np.flatnonzero(values >= heights[0])
        level = np.searchsorted(heights, values[cand], side="right") - 1
        start = np.zeros(steps + 1, np.int64)
        for t in range(cand.size):
            start[level[t] + 1] += 1
        for t in range(steps):
            start[t + 1] += start[t]
        fill = start[:steps].copy()
        order = np.empty(cand.size, np.int64)
        for t in range(cand.size):
            order[fill[level[t]]] = cand[t]
            fill[level[t]] += 1
        parent = np.full(n, -1, np.int64)
        ext = np.zeros(n)
        pot = np.zeros(n)
        roots = np.empty(order.size, np.int64)
        nroots = 0

        def find(x):
            # the root of x; the path on the way is pointed at the root, each
            # node's potential becoming its old sum up to (not incl.) the root
            r = x
            above = 0.0
            while parent[r] != r:
                above += pot[r]
                r = parent[r]
            while parent[x] != r and x != r:
                nxt = parent[x]
                own = pot[x]
                pot[x] = above
                parent[x] = r
                above -= own
                x = nxt
            return r

        nz = shape[2]
        nyz = shape[1] * shape[2]
        for j in range(steps - 1, -1, -1):
            for t in range(start[j], start[j + 1]):
                v = order[t]
                parent[v] = v
                ext[v] = weights[v]
                roots[nroots] = v
                nroots += 1
                if graph:
                    lo, hi = indptr[v], indptr[v + 1]
                else:
                    x = v // nyz
                    y = (v - x * nyz) // nz
                    z = v - x * nyz - y * nz
                    lo, hi = 0, offsets.shape[0]
                for e in range(lo, hi):
                    if graph:
                        u = indices[e]
                    else:
                        xx = x + offsets[e, 0]
                        yy = y + offsets[e, 1]
                        zz = z + offsets[e, 2]
                        if xx < 0 or yy < 0 or zz < 0 or xx >= shape[0] or yy >= shape[1] or zz >= shape[2]:
                            continue
                        u = (xx * shape[1] + yy) * nz + zz
                    if parent[u] < 0:
                        continue
                    a = find(v)
                    b = find(u)
                    if a == b:
                        continue
                    if ext[a] > ext[b] or (ext[a] == ext[b] and a < b):
                        a, b = b, a
                    parent[a] = b  # a (the smaller) under b
                    pot[a] -= pot[b]
                    ext[b] += ext[a]
            # every component present at this height: its contribution, at its root
            keep = 0
            for t in range(nroots):
                r = roots[t]
                if parent[r] == r:
                    pot[r] += ext[r] ** extent * coef[j]
                    roots[keep] = r
                    keep += 1
            nroots = keep
        for t in range(order.size):
            v = order[t]
            total = pot[v]
            a = v
            while parent[a] != a:
                a = parent[a]
                total += pot[a]
            out[v] += sign * total


def tfce_maps(values, heights, coef, *, extent, sign, out, weights=None, shape=None, structure=None,
              adjacency=None):
    """Add ``sign`` x TFCE of each map in ``values`` (B, N) to ``out`` (B, N).

    ``heights`` (B, S): ascending heights per map (an element is active at
    height h when its value is >= h; heights <= 0 activate nothing);
    ``coef`` (B, S): ``h^H dh`` (or ``h^H``) per height; ``extent``: E.
    Neighbours: a volume ``shape`` (X, Y, Z) in C order with a 3x3x3 boolean
    ``structure``, or a graph ``adjacency`` (N, N) whose nonzeros are edges
    (either direction). ``weights`` (N,): each element's share of the extent
    (default 1).
    """
    n = values.shape[1]
    w = np.ones(n) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    if adjacency is not None:
        a = sparse.csr_matrix(adjacency)
        a = (a + a.T).tocsr()
        indptr, indices = a.indptr.astype(np.int64), a.indices.astype(np.int64)
        offsets, shape3, graph = np.zeros((0, 3), np.int64), np.array([1, 1, n], np.int64), True
    else:
        st = np.asarray(structure, dtype=bool).copy()
        st[1, 1, 1] = False
        offsets = np.ascontiguousarray(np.argwhere(st) - 1, dtype=np.int64)
        shape3, graph = np.asarray(shape, dtype=np.int64), False
        indptr, indices = np.zeros(1, np.int64), np.zeros(0, np.int64)
    _compiled(_tfce_block)(np.ascontiguousarray(values, dtype=np.float64),
                           np.ascontiguousarray(heights, dtype=np.float64),
                           np.ascontiguousarray(coef, dtype=np.float64), float(extent), w, shape3, offsets, indptr,
                           indices, graph, out, float(sign))
    return out


# --------------------------------------------------------------------------
# Floyd-Warshall, in place, pivots in ascending order and a pair updated only
# when the detour is strictly shorter (the steps of the portable kernel and
# of SciPy's routine, so the same lengths and predecessors bit for bit; row
# and column k do not change during pivot k when lengths are >= 0, so the
# in-place update equals the update from a snapshot). The inner loop is
# arithmetic rather than a select, which the compiler vectorises.


def _floyd_warshall_loop(d, p, track):
    n = d.shape[1]
    dk = np.empty(n, d.dtype)
    pk = np.empty(n, p.dtype)
    for s in range(d.shape[0]):
        ds = d[s]
        ps = p[s]
        for k in range(n):
            dk[:] = ds[k]
            if track:
                pk[:] = ps[k]
            for i in range(n):
                dik = ds[i, k]
                if dik == math.inf:  # every detour through k is infinite
                    continue
                di = ds[i]
                if track:
                    pi = ps[i]
                    for j in range(n):
                        t = dik + dk[j]
                        dd = di[j]
                        m = t < dd
                        di[j] = t if m else dd
                        pi[j] += (pk[j] - pi[j]) * m
                else:
                    for j in range(n):
                        t = dik + dk[j]
                        dd = di[j]
                        di[j] = t if t < dd else dd


def floyd_warshall_blocks(d, p=None):
    """All-pairs shortest paths of a stack ``d`` (..., N, N) of non-negative
    lengths (inf = no edge); returns new arrays ``dist`` or ``(dist, pred)``
    with ``p`` the initial predecessors (row index where an edge exists, -1
    elsewhere)."""
    n = d.shape[-1]
    dist = np.array(d, copy=True, order="C").reshape((-1, n, n))
    track = p is not None
    pred = np.array(p, dtype=np.int64, copy=True, order="C").reshape((-1, n, n)) if track else np.zeros(
        (1, 1, 1), np.int64)
    _compiled(_floyd_warshall_loop)(dist, pred, track)
    if not track:
        return dist.reshape(d.shape)
    return dist.reshape(d.shape), pred.reshape(d.shape)
