"""Sphere geometry on the host: the cube-map grid index for exact nearest
points on a sphere, rotated query columns, and the Váša (greedy) and
Hungarian (minimum total distance) spin assignments.

NumPy and SciPy with the compiled loops of :mod:`recouple.host.jit`;
no backend, no Dask. Work spread over threads is passed in as
``parallel_map(fn, items)`` (results in item order) and ``threads`` by the
caller (the engine's host pool), so this layer imports nothing above it.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from . import jit as _jit

__all__ = ["SphereIndex", "sphere_index", "INDEX_CACHE", "rotate_columns", "cube_cells_columns",
           "nearest_grid_numpy", "euclidean", "vasa", "hungarian"]


def _serial_map(fn, items):
    return [fn(item) for item in items]


class SphereIndex:
    """Exact nearest-point lookup on a sphere through a cube-map grid of
    candidate lists (built once with a KD-tree; queried as a cell lookup,
    with a gather + argmin only in cells that several points can own).

    A point j is a candidate of a cell when some query in the cell's
    bounding cap (at any radius the points take) is at least as near to j
    as to the point k nearest the cell centre: ``max (p_j - p_k).q >=
    (|p_j|^2 - |p_k|^2) / 2`` over the cap, with a small safety margin.
    """

    def __init__(self, points, cells_per_point=16, workers=1):
        self.points = points
        n = len(points)
        grid = max(4, int(np.ceil(np.sqrt(cells_per_point * n / 6))))
        r = np.linalg.norm(points, axis=1)
        r0, rmin, rmax = r.mean(), r.min(), r.max()
        edges = np.linspace(-1.0, 1.0, grid + 1)
        mid = (edges[:-1] + edges[1:]) / 2
        centers, angles = [], []
        for axis in range(3):
            others = [a for a in range(3) if a != axis]
            for sign in (1.0, -1.0):

                def direction(u, v):
                    d = np.empty(u.shape + (3,))
                    d[..., axis], d[..., others[0]], d[..., others[1]] = sign, u, v
                    return d / np.linalg.norm(d, axis=-1, keepdims=True)

                U, V = np.meshgrid(mid, mid, indexing="ij")
                c = direction(U, V)
                ang = np.zeros(U.shape)
                for eu in (edges[:-1], edges[1:]):
                    for ev in (edges[:-1], edges[1:]):
                        corner = direction(*np.meshgrid(eu, ev, indexing="ij"))
                        ang = np.maximum(ang, np.arccos(np.clip((c * corner).sum(-1), -1.0, 1.0)))
                centers.append(c.reshape(-1, 3))
                angles.append(ang.reshape(-1))
        # Cell order matches kernels.nulls.cube_cells: face = 2 axis + (major < 0).
        unit = np.concatenate(centers)
        alpha = np.minimum(np.concatenate(angles) * 1.01 + 1e-9, np.pi)
        tree = cKDTree(points)
        dnn, nn = tree.query(r0 * unit)
        # Superset by the triangle inequality (chord <= arc), then the exact cap test.
        reach = dnn + 2 * (r0 * alpha + (rmax - rmin)) + 1e-9 * r0
        # every point within each cell's reach: the k nearest (k doubled until
        # the k-th lies beyond every reach), as arrays rather than one Python
        # list per cell
        k = min(n, 32)
        while True:
            dk, ik = tree.query(r0 * unit, k=k, distance_upper_bound=float(reach.max()), workers=workers)
            dk, ik = dk.reshape(len(unit), -1), ik.reshape(len(unit), -1)
            if k >= n or np.all(dk[:, -1] > reach):
                break
            k = min(n, 2 * k)
        within = dk <= reach[:, None]
        sizes = within.sum(axis=1)
        width = int(sizes.max())
        ordered = np.sort(np.where(within, ik, n), axis=1)[:, :width]  # ascending indices, then padding
        raw = np.where(np.arange(width)[None, :] < sizes[:, None], ordered, ordered[:, :1])
        w = points[raw] - points[nn][:, None, :]  # (cells, width, 3)
        along = np.einsum("cwk,ck->cw", w, unit)
        perp = np.sqrt(np.maximum(np.einsum("cwk,cwk->cw", w, w) - along**2, 0.0))
        ca, sa = np.cos(alpha)[:, None], np.sin(alpha)[:, None]
        inside = along >= np.sqrt(np.einsum("cwk,cwk->cw", w, w)) * ca  # w's direction lies in the cap
        h = np.where(inside, np.sqrt(along**2 + perp**2), along * ca + perp * sa)
        reach_w = np.where(h > 0, rmax * h, rmin * h)
        rhs = (np.einsum("cwk,cwk->cw", points[raw], points[raw]) - (r[nn] ** 2)[:, None]) / 2
        keep = reach_w >= rhs - 1e-9 * r0 * (r0 + np.sqrt(np.einsum("cwk,cwk->cw", w, w)))
        keep |= raw == nn[:, None]
        keep &= np.arange(width)[None, :] < sizes[:, None]  # no padding copies
        # Kept candidates first, ascending; pad with the first.
        order = np.argsort(np.where(keep, raw, np.iinfo(np.int64).max), axis=1, kind="stable")
        srt = np.take_along_axis(raw, order, axis=1)
        kcount = keep.sum(axis=1)
        width = int(kcount.max())
        table = srt[:, :width].copy()
        pad = np.arange(width)[None, :] >= kcount[:, None]
        table[pad] = np.broadcast_to(table[:, :1], table.shape)[pad]
        self.table, self.grid = table, grid
        # host lookups: the first two candidates as contiguous columns (one
        # candidate when they agree) and a compact copy of the whole table
        small = np.int32 if n < 2**31 else np.int64
        self.first = np.ascontiguousarray(table[:, 0]).astype(small)
        self.second = np.ascontiguousarray(table[:, min(1, table.shape[1] - 1)]).astype(small)
        self.table_small = table.astype(small)
        self._loop_tables = None

    def loop_tables(self):
        """Inputs of :func:`recouple.host.jit.nearest_on_cells`: the points
        as columns sorted by their own cell (consecutive queries then stay
        near each other after any rotation, and so do their candidates in
        memory), the original index of each column, and the table in column
        positions (candidate order, hence the tie rule, unchanged)."""
        if self._loop_tables is None:
            n = len(self.points)
            order = np.argsort(cube_cells_columns(self.points.T, self.grid), kind="stable").astype(np.int64)
            position = np.empty(n, dtype=np.int64)
            position[order] = np.arange(n)
            small = np.int16 if n <= np.iinfo(np.int16).max else np.int32  # a table that stays in cache
            self._loop_tables = (np.ascontiguousarray(self.points[order].T), order,
                                 position[self.table].astype(small))
        return self._loop_tables


INDEX_CACHE: dict = {}


def sphere_index(points, workers=1):
    # The grid index depends only on the points: keep the last few (spheres
    # are reused across calls, e.g. once per hemisphere).
    # The compiled loop reads every candidate of a cell at little cost, so a
    # coarser grid (a smaller table, kept in cache) is faster there; the NumPy
    # path pays per ambiguous query and wants the finer one.
    cells_per_point = 8 if _jit.enabled() else 16
    key = (points.shape, cells_per_point, hashlib.sha1(np.ascontiguousarray(points).tobytes()).hexdigest())
    idx = INDEX_CACHE.get(key)
    if idx is None:
        idx = SphereIndex(points, cells_per_point=cells_per_point, workers=workers)
        if len(INDEX_CACHE) >= 4:
            INDEX_CACHE.pop(next(iter(INDEX_CACHE)))
        INDEX_CACHE[key] = idx
    return idx


def rotate_columns(pt, rots):
    """Queries p_i R^T as coordinate columns (3, K, n) from ``pt`` = points.T,
    summed x, y, z in that order (no fused multiply-add), so that every
    backend sees the same numbers."""
    q = np.empty((3, len(rots), pt.shape[1]))
    for a in range(3):
        np.multiply(pt[0], rots[:, a, 0, None], out=q[a])
        q[a] += pt[1] * rots[:, a, 1, None]
        q[a] += pt[2] * rots[:, a, 2, None]
    return q


def cube_cells_columns(q, grid):
    # kernels.nulls.cube_cells on coordinate columns, in float32: a query
    # that lands in the neighbouring cell by rounding lies within ~1e-6 of a
    # cell edge, far inside the 1% angular margin of that cell's candidate cap.
    x, y, z = (c.astype(np.float32) for c in q)
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    fx = (ax >= ay) & (ax >= az)
    fy = ~fx & (ay >= az)
    fz = ~(fx | fy)
    major = np.where(fx, x, np.where(fy, y, z))
    u = np.where(fx, y, x)
    v = np.where(fz, y, z)
    s = np.float32(grid / 2) / np.abs(major)
    half = np.float32(grid / 2)
    iu = np.clip((u * s + half).astype(np.int32), 0, grid - 1)
    iv = np.clip((v * s + half).astype(np.int32), 0, grid - 1)
    face = 2 * (fy.astype(np.int32) + 2 * fz.astype(np.int32)) + (major < 0)
    return (face * grid + iu) * grid + iv


def nearest_grid_numpy(pt, rots, index):
    """(K, n) nearest point to each p_i R^T by the grid index, on the host.

    One lookup where a cell has a single candidate; elsewhere the candidates'
    squared distances (summed x, y, z as in the kernel) and the first minimum,
    with 1-D gathers on coordinate columns throughout.
    """
    kb, n = len(rots), pt.shape[1]
    q = rotate_columns(pt, rots).reshape(3, kb * n)
    cell = cube_cells_columns(q, index.grid).reshape(-1)
    best = index.first[cell].astype(np.int64)
    amb = np.flatnonzero(index.second[cell] != best)
    if amb.size:
        cand = np.take(index.table_small, cell[amb], axis=0)  # several times faster than fancy row indexing
        width = cand.shape[1]
        flat = cand.reshape(-1)
        d2 = None
        for a in range(3):
            pa = pt[a][flat].reshape(cand.shape)
            pa -= q[a][amb][:, None]
            pa *= pa
            d2 = pa if d2 is None else d2.__iadd__(pa)
        pick = d2.argmin(axis=1)
        best[amb] = flat[np.arange(amb.size, dtype=np.int64) * width + pick]
    return best.reshape(kb, n)


def euclidean(a, b):
    # Same arithmetic as scipy.spatial.distance_matrix (sqrt of squares summed
    # x, y, z in order), one axis at a time from contiguous coordinate
    # columns (no (..., n, m, 3) temporary, no strided inner loops); one
    # compiled pass for (n, 3) against (K, m, 3) when the host loops are on.
    if a.ndim == 2 and b.ndim == 3 and a.shape[1] == 3 and b.shape[2] == 3 and _jit.enabled():
        return _jit.euclidean_blocks(a.T, np.swapaxes(b, 1, 2))
    at = np.ascontiguousarray(np.moveaxis(a, -1, 0))
    bt = np.ascontiguousarray(np.moveaxis(b, -1, 0))
    d2 = None
    for ax in range(at.shape[0]):
        diff = at[ax][..., :, None] - bt[ax][..., None, :]
        np.multiply(diff, diff, out=diff)
        if d2 is None:
            d2 = diff
        else:
            d2 += diff
    return np.sqrt(d2, out=d2)


def vasa(coords, rots, *, threads=1, parallel_map=_serial_map):
    """Váša et al. 2018 greedy reassignment of each rotation (K, n).

    With the compiled loops on, one rotation at a time in a compiled loop
    (:func:`recouple.host.jit.vasa_blocks`), blocks of rotations on every
    core. The NumPy code runs all rotations of a block at once.
    Repeat n times, for every rotation in parallel: take the remaining
    original parcel whose closest remaining rotated parcel is farthest, assign
    it that parcel and remove both. Row minima are updated only for rows that
    lost their closest column; taken columns are flagged rather than written
    into the distance block (a strided write of the whole block each step).
    """
    k_total, n = len(rots), len(coords)
    out = np.empty((k_total, n), dtype=np.int64)
    if _jit.enabled():
        # one rotation at a time in a compiled loop (its distance block stays
        # in cache), blocks of rotations on every core; the rotated points
        # come from the same matmul as below, so the same distances
        at = np.ascontiguousarray(coords.T)
        step_c = max(1, min(256, -(-k_total // (4 * threads))))

        def block_compiled(k0):
            rotated = np.matmul(coords[None], rots[k0 : k0 + step_c])
            _jit.vasa_blocks(at, np.swapaxes(rotated, 1, 2), out[k0 : k0 + step_c])

        parallel_map(block_compiled, range(0, k_total, step_c))
        return out
    step = max(1, int(2**27 // (n * n * 8 * 3)))
    step = max(1, min(step, -(-k_total // threads)))  # at least one block per core
    sub = max(1, int(2**20 // (n * n * 8)))  # distances in cache-sized blocks of rotations
    ar = np.arange

    def block(k0):
        R = rots[k0 : k0 + step]
        kb = len(R)
        rotated = np.matmul(coords[None], R)
        dist = np.empty((kb, n, n))
        for j in range(0, kb, sub):
            dist[j : j + sub] = euclidean(coords, rotated[j : j + sub])
        rowmin = dist.min(axis=2)
        rowarg = dist.argmin(axis=2)
        taken = np.zeros((kb, n), dtype=bool)
        kk = ar(kb)
        for _ in range(n):
            row = rowmin.argmax(axis=1)
            col = rowarg[kk, row]
            out[k0 + kk, row] = col
            rowmin[kk, row] = -np.inf
            rowarg[kk, row] = -1  # assigned rows never look stale
            taken[kk, col] = True
            # Rows whose closest column was just taken: recompute their minimum.
            sk, sr = np.nonzero(rowarg == col[:, None])
            if sk.size:
                d = np.where(taken[sk], np.inf, dist[sk, sr])
                a = d.argmin(axis=1)
                rowarg[sk, sr] = a
                rowmin[sk, sr] = d[ar(sk.size), a]

    # blocks of rotations are independent: one per core (the element-wise
    # passes and gathers release the GIL; each block writes its own rows)
    parallel_map(block, range(0, k_total, step))
    return out


def hungarian(coords, rots, *, parallel_map=_serial_map):
    n = len(coords)
    sub = max(1, int(2**20 // (n * n * 8)))  # distances in cache-sized blocks of rotations
    if _jit.enabled():
        # SciPy's algorithm and choices, compiled over a block of matrices
        # (no per-matrix call); rows of `out` written by each block
        out = np.empty((len(rots), n), dtype=np.int64)

        def block_compiled(k0):
            dist = euclidean(coords, np.matmul(coords[None], rots[k0 : k0 + sub]))
            _jit.assignment_blocks(dist, out[k0 : k0 + sub])

        parallel_map(block_compiled, range(0, len(rots), sub))
        return out

    def block(k0):
        rotated = np.matmul(coords[None], rots[k0 : k0 + sub])
        dist = euclidean(coords, rotated)
        return [linear_sum_assignment(d)[1] for d in dist]

    cols = [c for part in parallel_map(block, range(0, len(rots), sub)) for c in part]
    return np.stack(cols).astype(np.int64)


