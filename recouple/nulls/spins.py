"""Spin tests: random rotations of the sphere and spin resampling arrays
(Alexander-Bloch, Váša, Hungarian, Baum, Cornblath; neuromaps conventions).

Arrays are oriented ``(n_perm, N)``: entry ``i`` of row ``k`` names the
original region whose rotated position lands at ``i`` (``-1``: dropped).
The grid index and the assignment drivers live in
:mod:`recouple.host.spheres`.
"""

from __future__ import annotations

import numpy as np

from ..engine.backend import get_backend, to_host
from ..engine.dispatch import host_map, host_thread_count
from ..engine.planner import require_memory
from ..engine.random import iter_streams
from ..exceptions import InputError, ShapeError
from ..host import spheres as _spheres
from ..host import jit as _jit
from ..kernels import nulls as _k
from ..validation import as_array, check_choice, check_finite, check_positive_int

__all__ = ["SPIN_METHODS", "rotations", "rotations_from_normals", "spin_permutations"]

SPIN_METHODS = ("alexander_bloch", "vazquez_rodriguez", "vasa", "hungarian", "baum", "cornblath")
"""Methods of :func:`spin_permutations`. ``"vazquez_rodriguez"`` is the same
algorithm as ``"alexander_bloch"`` (nearest rotated region, duplicates
allowed; neuromaps' name). Null specifications (:mod:`recouple.nulls.spec`)
also accept ``"spin"``, an alias of ``"vasa"``."""
_REFLECT = np.diag([-1.0, 1.0, 1.0])


def rotations_from_normals(normals) -> np.ndarray:
    """Haar rotations from standard-normal ``(K, 3, 3)`` draws (left and mirrored right).

    ``Q, R = qr(A)``; ``Q <- Q diag(sign(diag(R)))``; if ``det(Q) < 0`` the
    first column is negated; the right hemisphere uses ``F Q F`` with
    ``F = diag(-1, 1, 1)`` (METHODS 2.1). Feeding the normals of
    ``np.random.RandomState(seed).normal(size=(3, 3))``, one block per spin,
    reproduces neuromaps' ``_gen_rotation`` exactly.

    Returns
    -------
    (K, 2, 3, 3) array: ``[:, 0]`` left, ``[:, 1]`` right.
    """
    a = np.asarray(normals, dtype=np.float64)
    if a.ndim != 3 or a.shape[1:] != (3, 3):
        raise ShapeError(f"normals must be (K, 3, 3); got shape {a.shape}. Draw one 3x3 block per rotation.")
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    neg = np.linalg.det(q) < 0
    q[neg, :, 0] = -q[neg, :, 0]
    right = _REFLECT @ q @ _REFLECT
    return np.stack([q, right], axis=1)


#: Peak bytes per rotation of :func:`rotations`: the normals, QR factors,
#: sign-corrected and mirrored copies and the stacked output.
_ROTATION_BYTES = 8 * 72


def rotations(n_perm, *, seed=0, start=0, memory_limit=None) -> np.ndarray:
    """``(n_perm, 2, 3, 3)`` uniform random rotations (left, mirrored right).

    Rotation k is drawn from its own stream ``SeedSequence(seed, spawn_key=
    ("rotation", k))``, so any subset or batch gives the same rotations;
    the same seed gives identical rotations (default ``seed=0``). Draw
    many rotations in blocks with ``start=``.

    ``memory_limit`` (default: :func:`recouple.engine.planner.default_memory_limit`):
    a request that does not fit is refused before anything is drawn.

    Examples
    --------
    >>> import recouple as rc
    >>> R = rc.nulls.rotations(4, seed=0)
    >>> R.shape
    (4, 2, 3, 3)
    """
    n_perm = check_positive_int("n_perm", n_perm)
    require_memory(f"rotations: the ({n_perm:,}, 2, 3, 3) rotations", n_perm, _ROTATION_BYTES,
                   memory_limit=memory_limit, fix="draw them in blocks with start=")
    normals = np.empty((n_perm, 3, 3))
    for k, g in enumerate(iter_streams(seed, "rotation", range(start, start + n_perm))):
        normals[k] = g.standard_normal((3, 3))
    return rotations_from_normals(normals)


def _check_rotations(rot, n_perm):
    r = np.asarray(rot, dtype=np.float64)
    if r.ndim == 3 and r.shape[1:] == (3, 3):
        r = np.stack([r, _REFLECT @ r @ _REFLECT], axis=1)
    if r.ndim != 4 or r.shape[1:] != (2, 3, 3):
        raise ShapeError(
            f"rotations must be (n_perm, 3, 3) left-hemisphere rotations or (n_perm, 2, 3, 3) (left, right); "
            f"got shape {r.shape}. Use rc.nulls.rotations(n_perm, seed=...)."
        )
    err = np.abs(np.einsum("abij,abik->abjk", r, r) - np.eye(3)).max() if r.size else 0.0
    if err > 1e-8:
        raise InputError(f"rotations must be orthogonal matrices (max |R^T R - I| = {err:.2g}). "
                         "Pass rotation matrices, e.g. from rc.nulls.rotations.")
    if n_perm is not None and r.shape[0] != n_perm:
        raise InputError(f"rotations hold {r.shape[0]} rotations but n_perm={n_perm}; pass matching numbers "
                         "(or leave n_perm out).")
    return r


def _check_hemi(hemi, n):
    if hemi is None:
        return np.zeros(n, dtype=np.int64)
    h = np.asarray(to_host(hemi))
    if h.dtype.kind in "UO":
        lower = np.char.lower(h.astype(str))
        out = np.full(h.shape, -1, dtype=np.int64)
        out[np.isin(lower, ("l", "lh", "left"))] = 0
        out[np.isin(lower, ("r", "rh", "right"))] = 1
        h = out
    elif h.dtype.kind not in "biuf":
        raise InputError(f"hemi must hold 0/1 or 'L'/'R' labels; got dtype {h.dtype}. "
                         "Pass one hemisphere label per region (0 or 'L' left, 1 or 'R' right).")
    elif h.dtype.kind == "f" and h.size and not np.isin(h, (0.0, 1.0)).all():
        # never truncate: 0.5 would silently become 0 and spin across the midline
        raise InputError(f"hemi must hold exactly 0 (left) and 1 (right); got {describe_hemi(hemi)}, values that "
                         "are not 0 or 1. Pass integer labels 0/1 or 'L'/'R' strings.")
    h = np.asarray(h).astype(np.int64, copy=False)
    if h.shape != (n,) or not np.isin(h, (0, 1)).all():
        raise InputError(
            f"hemi must be ({n},) with 0/'L' for left and 1/'R' for right; got {describe_hemi(hemi)}. "
            "Pass one hemisphere label per region."
        )
    return h


def describe_hemi(hemi):
    h = np.asarray(hemi)
    return f"shape {h.shape} with values {np.unique(h)[:6]}"


def _check_sphere(coords, hemi):
    c = as_array("coords", coords)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ShapeError(f"coords must be (N, 3) sphere coordinates; got shape {c.shape}. Pass x, y, z columns.")
    if c.shape[0] == 0:
        raise ShapeError("coords must hold at least one region; got shape (0, 3). Pass the sphere coordinates of "
                         "the regions (e.g. rc.io.surfaces.parcel_centroids).")
    check_finite("coords", c)
    for h in (0, 1):
        sel = c[hemi == h]
        if len(sel) < 2:
            continue
        rad = np.linalg.norm(sel, axis=1)
        if rad.min() <= 0 or (rad.max() - rad.min()) > 0.02 * rad.mean():
            raise InputError(
                f"coords must lie on a sphere centred at the origin; hemisphere {h} has radii from "
                f"{rad.min():.4g} to {rad.max():.4g}. Use sphere surfaces (e.g. ?h.sphere) and parcel centroids "
                "snapped to the sphere (rc.io.surfaces.parcel_centroids)."
            )
    return c




# ``spin_permutations`` takes a ``rotations=`` argument that shadows the
# function of that name inside its body: it draws through this alias.
_draw_rotations = rotations


def _nearest_push(be, points, rots, *, index=None, batch=None):
    """(K, n): entry i = the point j whose rotated position p_j R is nearest to p_i."""
    n = len(points)
    k_total = len(rots)
    out = np.empty((k_total, n), dtype=np.int64)
    if index is None:
        fn = be.compile(_k.nearest_on_sphere)
        step = batch or max(1, int(2**26 // max(n * n * 8, 1)))
        pts = be.to_device(points)
        for k0 in range(0, k_total, step):
            out[k0 : k0 + step] = to_host(fn(pts, be.to_device(rots[k0 : k0 + step])))
        return out
    pt = np.ascontiguousarray(points.T)
    if be.name == "numpy" and _jit.enabled():
        cols, order, table = index.loop_tables()
        rots = np.ascontiguousarray(rots, dtype=np.float64)
        step = batch or max(1, -(-k_total // (8 * host_thread_count())))

        def block(k0):
            _jit.nearest_on_cells(cols, order, rots[k0 : k0 + step], table, index.grid, out[k0 : k0 + step])

        host_map(block, range(0, k_total, step))
        return out
    step = batch or max(1, int(2**18 // max(n * index.table.shape[1], 1)))
    if be.name == "numpy":
        def block(k0):
            out[k0 : k0 + step] = _spheres.nearest_grid_numpy(pt, rots[k0 : k0 + step], index)

        # gathers and element-wise passes release the GIL: blocks of rotations
        # on every core (each block writes its own rows)
        host_map(block, range(0, k_total, step))
        return out
    fn = be.compile(_k.nearest_by_candidates, static_argnames=("grid",))
    pts, tab = be.to_device(points), be.to_device(index.table)
    for k0 in range(0, k_total, step):
        # |p_i - p_j R| = |p_i R^T - p_j|: query p_i R^T among the fixed points
        # (the same host arithmetic as the NumPy path, so the same queries)
        q = np.moveaxis(_spheres.rotate_columns(pt, rots[k0 : k0 + step]), 0, -1)
        out[k0 : k0 + step] = to_host(fn(be.to_device(np.ascontiguousarray(q)), pts, tab, grid=index.grid))
    return out




def spin_permutations(
    coords,
    *,
    n_perm=None,
    method="alexander_bloch",
    hemi=None,
    seed=0,
    rotations=None,
    parcellation=None,
    data=None,
    backend=None,
    batch_size=None,
    memory_limit=None,
):
    """Spin-test resampling arrays ``(n_perm, N)`` (neuromaps conventions).

    Parameters
    ----------
    coords : (N, 3) or (V, 3) array_like
        Sphere coordinates of the N regions (vertices, or parcel centroids on
        the sphere, e.g. from :func:`recouple.io.surfaces.parcel_centroids`);
        for ``baum``/``cornblath`` the V sphere vertices of the parcellation.
        Each hemisphere must lie on a sphere centred at the origin.
    n_perm : int
        Number of spins (or taken from ``rotations``).
    method : {"alexander_bloch", "vasa", "hungarian", "baum", "cornblath"}
        ``alexander_bloch`` (alias ``vazquez_rodriguez``): nearest rotated
        region, duplicates allowed. ``vasa``: greedy farthest-first unique
        assignment. ``hungarian``: minimum total distance assignment (SciPy).
        ``baum``: rotate vertex labels, each parcel takes its most frequent
        rotated label (-1 when only medial wall lands on it). ``cornblath``:
        project ``data`` to vertices, rotate, re-average per parcel (NaN when
        only medial wall lands on it) — returns float maps.
    hemi : (N,) or (V,) array_like, optional
        0/'L' left, 1/'R' right; default: all one hemisphere. Hemispheres
        are rotated separately, the right with the mirrored rotation.
    seed : int, optional
        Seed for :func:`rotations` (ignored when ``rotations`` is given);
        default 0. The same seed gives identical spins.
    rotations : (n_perm, 3, 3) or (n_perm, 2, 3, 3) array_like, optional
        Precomputed rotations (left; or left and right).
    parcellation : (V,) int array_like
        ``baum``/``cornblath``: parcel label of each vertex, 0 = medial wall;
        parcels are the sorted non-zero labels.
    data : (N,) array_like
        ``cornblath``: the parcel values to spin.
    backend, batch_size : optional
        Where the nearest-neighbour kernels run; rotations per block.
    memory_limit : int, str or float, optional
        Budget for the output and its temporaries (see
        :func:`recouple.engine.planner.parse_memory`; default half of the
        available memory). A request that does not fit is refused at once;
        draw many spins in blocks with ``rotations=rc.nulls.rotations(k,
        seed=..., start=...)`` (spin k depends only on rotation k).

    Returns
    -------
    (n_perm, N) int array (float array for ``cornblath``)
        Row k, entry i names the original region whose rotated position lands
        nearest to region i; -1 marks a parcel covered by medial wall.

    Notes
    -----
    Nearest neighbours are exact: a batched product + argmin for up to a few
    hundred points per hemisphere, and above that a cube-map grid of
    candidate lists built once (cached per sphere), queried by a cell lookup
    and a gather + argmin where a cell has several candidates. ``vasa`` runs
    the greedy loop for all rotations at once; ``hungarian`` calls SciPy per
    rotation; ``baum``/``cornblath`` tally rotated labels with ``bincount``.
    Duplicate spins are not re-drawn (neuromaps' ``check_duplicates``).

    References
    ----------
    Alexander-Bloch AF et al. NeuroImage 2018;178:540-551. Váša F et al.
    Cereb Cortex 2018;28:281-294. Markello RD, Mišić B. NeuroImage 2021;236:118052.
    """
    check_choice("method", method, SPIN_METHODS)
    if rotations is None:
        if n_perm is None:
            raise InputError("n_perm must be given when rotations are not; got None. Pass e.g. n_perm=1000.")
        n_perm = check_positive_int("n_perm", n_perm)
    coords_arr = as_array("coords", coords)
    hemi_arr = _check_hemi(hemi, coords_arr.shape[0] if coords_arr.ndim == 2 else -1)
    coords_arr = _check_sphere(coords_arr, hemi_arr)
    n = coords_arr.shape[0]
    k_total = n_perm if rotations is None else len(rotations)
    # the output, a hemisphere's block of assignments and its gather (and, when
    # drawn here, the rotations): refused before any of it is drawn
    require_memory(f"spin_permutations: the ({k_total:,}, {n:,}) spins", k_total,
                   3 * 8.0 * n + (_ROTATION_BYTES if rotations is None else 0), memory_limit=memory_limit,
                   fix="draw the spins in blocks with rotations=rc.nulls.rotations(k, seed=..., start=...)")
    if rotations is None:
        rots = _draw_rotations(n_perm, seed=seed, memory_limit=memory_limit)
    else:
        rots = _check_rotations(rotations, n_perm)
    be = get_backend(backend)

    if method in ("baum", "cornblath"):
        return _spin_parcellation(coords_arr, hemi_arr, rots, method, parcellation, data, be, batch_size,
                                  memory_limit)

    out = np.empty((len(rots), n), dtype=np.int64)
    for h in (0, 1):
        sel = np.flatnonzero(hemi_arr == h)
        if sel.size == 0:
            continue
        pts = coords_arr[sel]
        R = rots[:, h]
        if method in ("alexander_bloch", "vazquez_rodriguez"):
            # the grid pays for its build from ~500 points on (brute force is
            # O(n^2) a rotation); with the compiled lookup from a few dozen
            grid_from = 32 if be.name == "numpy" and _jit.enabled() else 512
            index = _spheres.sphere_index(pts, workers=host_thread_count()) if sel.size > grid_from else None
            col = _nearest_push(be, pts, R, index=index, batch=batch_size)
        elif method == "vasa":
            col = _spheres.vasa(pts, R, threads=host_thread_count(), parallel_map=host_map)
        else:
            col = _spheres.hungarian(pts, R, parallel_map=host_map)
        if sel[-1] - sel[0] + 1 == sel.size:  # a hemisphere stored as one block: an offset, not a gather
            np.add(col, sel[0], out=out[:, sel[0] : sel[-1] + 1])
        else:
            out[:, sel] = sel[col]
    return out


def _spin_parcellation(coords, hemi, rots, method, parcellation, data, be, batch_size, memory_limit):
    if parcellation is None:
        raise InputError(f"method={method!r} needs parcellation=(V,) vertex labels; got None. "
                         "Pass the label of each sphere vertex (0 = medial wall).")
    lab = np.asarray(parcellation)
    if lab.shape != (coords.shape[0],):
        raise ShapeError(f"parcellation must hold one label per vertex ({coords.shape[0]}); got shape {lab.shape}. "
                         "Use the labels of the same sphere.")
    lab = lab.astype(np.int64)
    codes = np.unique(lab[lab != 0])
    n_parc = codes.size
    pidx = np.where(lab == 0, -1, np.searchsorted(codes, lab))  # vertex -> parcel index or -1
    spins = spin_permutations(coords, method="alexander_bloch", hemi=hemi, rotations=rots, backend=be.name,
                              batch_size=batch_size, memory_limit=memory_limit)
    k_total, v = spins.shape
    if method == "cornblath":
        x = as_array("data", data)
        if x.shape != (n_parc,):
            raise ShapeError(f"data must hold one value per parcel ({n_parc}); got shape {x.shape}. "
                             "Order parcels by sorted parcellation label.")
        vert = np.where(pidx >= 0, x[np.maximum(pidx, 0)], np.nan)
        out = np.empty((k_total, n_parc))
        for k in range(k_total):
            vals = vert[spins[k]]
            ok = (pidx >= 0) & ~np.isnan(vals)
            s = np.bincount(pidx[ok], weights=vals[ok], minlength=n_parc)
            c = np.bincount(pidx[ok], minlength=n_parc)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[k] = np.where(c > 0, s / np.maximum(c, 1), np.nan)
        return out
    # baum: most frequent rotated (non-medial) label per parcel; ties -> lowest label.
    out = np.empty((k_total, n_parc), dtype=np.int64)
    own = pidx >= 0
    for k in range(k_total):
        rl = pidx[spins[k]]
        ok = own & (rl >= 0)
        counts = np.bincount(pidx[ok] * n_parc + rl[ok], minlength=n_parc * n_parc).reshape(n_parc, n_parc)
        best = counts.argmax(axis=1)
        out[k] = np.where(counts.max(axis=1) > 0, best, -1)
    return out


