"""A seeded simulator of an ECT-style cohort with known ground truth.

Structural connectivity follows an exponential distance rule between region
centroids on two mirrored hemispheres; functional connectivity mixes the
correlation implied by a linear stochastic (Ornstein-Uhlenbeck) model on SC
with a region-weighted non-structural component. Treatment lowers that
non-structural weight in a planted set of regions, so their SC-FC coupling
rises after treatment, in proportion to each patient's response, which also
drives the HAMD improvement. A region x gene expression matrix contains
genes whose spatial pattern tracks the planted change.

Everything is drawn from one seed; the same seed gives the same cohort.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from .exceptions import InputError
from .validation import check_positive_int

__all__ = ["SimulatedCohort", "SurfaceParcellation", "cohort", "region_centroids", "fsaverage5_parcellation"]

# weight of the non-structural FC component; sets baseline coupling near 0.35
_NONSTRUCTURAL_WEIGHT = 0.1
# share of the non-structural FC component that is a stable subject fingerprint
_FINGERPRINT = 0.6


@dataclass
class SimulatedCohort:
    """A simulated cohort.

    Attributes
    ----------
    sc, fc : (S, N, N) float arrays
        One SC and FC matrix per scan (FC on the Fisher-z scale, zero diagonal).
    scans : dict of (S,) arrays
        ``scan_id``, ``subject``, ``session`` ("pre"/"post"), ``group``
        ("patient"/"control"), ``age``, ``sex`` (0/1), ``hamd``.
    labels : (N,) str array
    hemisphere : (N,) str array, "L" or "R"
    centroids : (N, 3) float array, millimetres
    expression : (N, G) float array
    genes : (G,) str array
    planted_regions : (P,) int array
        Regions whose coupling rises after treatment.
    planted_genes : (Q,) str array
        Genes whose expression tracks the planted change.
    change_map : (N,) float array
        Expected coupling-change pattern (1 in planted regions, 0 elsewhere).
    timeseries : (S, N, T) float array or None
        Parcel time series when ``n_timepoints`` was given.
    params : dict
    """

    sc: np.ndarray
    fc: np.ndarray
    scans: dict
    labels: np.ndarray
    hemisphere: np.ndarray
    centroids: np.ndarray
    expression: np.ndarray
    genes: np.ndarray
    planted_regions: np.ndarray
    planted_genes: np.ndarray
    change_map: np.ndarray
    timeseries: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    @property
    def n_scans(self) -> int:
        return self.sc.shape[0]

    @property
    def n_regions(self) -> int:
        return self.sc.shape[-1]

    def select(self, **where) -> np.ndarray:
        """Indices of scans whose columns equal the given values, e.g. ``select(group="patient")``."""
        keep = np.ones(self.n_scans, dtype=bool)
        for key, value in where.items():
            keep &= np.asarray(self.scans[key]) == value
        return np.nonzero(keep)[0]


def region_centroids(n_regions: int, *, radius: float = 70.0, gap: float = 8.0, seed=0) -> np.ndarray:
    """Centroids of ``n_regions`` parcels on two mirrored hemispheres (left first).

    Points of a Fibonacci lattice on the x > 0 half of a sphere form the
    right hemisphere; the left is its mirror image. ``gap`` separates them.
    """
    half = n_regions // 2
    rng = np.random.default_rng(seed)
    # Fibonacci lattice on the full sphere with 2*half points, keep x > 0.
    m = 2 * half
    k = np.arange(m) + 0.5
    phi = np.arccos(1 - 2 * k / m)
    theta = np.pi * (1 + 5**0.5) * k
    pts = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)
    order = np.argsort(-pts[:, 0], kind="stable")[:half]
    right = pts[order] * radius
    right[:, 0] = np.abs(right[:, 0]) + gap / 2
    right += rng.normal(scale=1.0, size=right.shape)
    left = right * np.array([-1.0, 1.0, 1.0])
    return np.concatenate([left, right], axis=0)


def _group_sc(centroids, density, rng):
    n = centroids.shape[0]
    d = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=-1)
    iu = np.triu_indices(n, 1)
    # exponential distance rule: P(edge) ~ exp(-eta d); choose edges by Gumbel-top-k
    eta = 0.06
    score = -eta * d[iu] + rng.gumbel(size=iu[0].size)
    n_keep = int(round(density * iu[0].size))
    keep = np.argsort(-score)[:n_keep]
    w = np.zeros(iu[0].size)
    w[keep] = np.exp(-d[iu][keep] / 40.0) * rng.lognormal(0.0, 0.5, size=n_keep)
    sc = np.zeros((n, n))
    sc[iu] = w
    sc = sc + sc.T
    # ensure every node has at least 3 connections to its nearest neighbours
    for i in range(n):
        if (sc[i] > 0).sum() < 3:
            nn = np.argsort(d[i])[1:4]
            sc[i, nn] = sc[nn, i] = np.exp(-d[i, nn] / 40.0)
    return sc / sc.max(), d


def _ou_correlation(sc, coupling_gain=0.85):
    n = sc.shape[0]
    lam = np.max(np.abs(np.linalg.eigvalsh(sc)))
    a = -np.eye(n) + coupling_gain * sc / lam
    cov = linalg.solve_continuous_lyapunov(a, -np.eye(n))
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


def _nonstructural(rng, n):
    factors = rng.standard_normal((n, 6))
    e = factors @ factors.T / 6 + rng.standard_normal((n, n)) * 0.35
    return (e + e.T) / 2


def _smooth_maps(dist, n_maps, length, rng):
    n = dist.shape[0]
    k = np.exp(-(dist**2) / (2 * length**2)) + 1e-6 * np.eye(n)
    chol = np.linalg.cholesky(k)
    return (chol @ rng.standard_normal((n, n_maps))).T


def cohort(
    *,
    n_regions: int = 100,
    n_patients: int = 24,
    n_controls: int = 16,
    control_sessions: int = 2,
    n_planted: int | None = None,
    n_genes: int = 400,
    n_planted_genes: int = 20,
    sc_density: float = 0.2,
    effect: float = 0.7,
    n_timepoints: int | None = None,
    seed=0,
    centroids=None,
) -> SimulatedCohort:
    """Simulate an ECT-style cohort with a planted coupling increase.

    Parameters
    ----------
    n_regions : int
        Regions (even; half per hemisphere).
    n_patients : int
        Patients, each scanned before ("pre") and after ("post") treatment.
    n_controls : int
        Controls, scanned once ("pre") or twice ("pre", "post").
    control_sessions : {1, 2}
    n_planted : int, optional
        Regions whose coupling rises after treatment (default 10% of regions,
        half per hemisphere, spatially contiguous).
    n_genes, n_planted_genes : int
        Genes in the expression matrix; how many track the change map.
    sc_density : float
        Fraction of region pairs with a structural connection.
    effect : float
        Mean relative reduction of the non-structural FC component in planted
        regions after treatment (0 = no effect).
    n_timepoints : int, optional
        Also simulate parcel time series of this length (FC is then their
        Fisher-z correlation).
    seed : int
        Seed for every draw.
    centroids : (n_regions, 3) array, optional
        Region centroids in millimetres, left hemisphere first, mirrored
        order (region ``i + n_regions // 2`` is the homologue of region
        ``i``), for the distance rule; e.g. ``fsaverage5_parcellation(...).centroids_mm``.
        Default: :func:`region_centroids` (two mirrored half spheres).

    Returns
    -------
    SimulatedCohort
    """
    n_regions = check_positive_int("n_regions", n_regions, minimum=8)
    if n_regions % 2:
        n_regions += 1
    n_patients = check_positive_int("n_patients", n_patients, minimum=1)
    n_controls = check_positive_int("n_controls", n_controls, minimum=0)
    rng = np.random.default_rng(seed)
    lattice_seed = rng.integers(2**31)
    if centroids is None:
        centroids = region_centroids(n_regions, seed=lattice_seed)
    else:
        centroids = np.asarray(centroids, dtype=np.float64)
        if centroids.shape != (n_regions, 3) or not np.isfinite(centroids).all():
            raise InputError(f"centroids must be a finite ({n_regions}, 3) array (x, y, z in mm per region, left "
                             f"hemisphere first); got shape {centroids.shape}. Pass one row per region.")
    half = n_regions // 2
    hemisphere = np.array(["L"] * half + ["R"] * half)
    labels = np.array([f"{h}_region{(i % half) + 1:03d}" for i, h in enumerate(hemisphere)])

    group_sc, dist = _group_sc(centroids, sc_density, rng)
    f_struct = _ou_correlation(group_sc)
    np.fill_diagonal(f_struct, 0.0)

    if n_planted is None:
        n_planted = max(2, n_regions // 10)
    per_hemi = max(1, n_planted // 2)
    seed_region = int(rng.integers(half))
    planted_r = np.argsort(dist[half + seed_region, half:])[:per_hemi] + half
    planted = np.sort(np.concatenate([planted_r - half, planted_r]))
    change_map = np.zeros(n_regions)
    change_map[planted] = 1.0

    # scans
    rows = []
    for p in range(n_patients):
        response = rng.uniform(0.3, 1.0)
        base_hamd = rng.normal(24, 3.5)
        age = rng.normal(42, 11)
        sex = int(rng.random() < 0.6)
        improvement = 18 * response + rng.normal(0, 2.0)
        for session in ("pre", "post"):
            hamd = base_hamd if session == "pre" else base_hamd - improvement
            rows.append((f"sub-P{p + 1:03d}", session, "patient", age, sex, max(hamd, 0.0), response))
    for c in range(n_controls):
        age = rng.normal(40, 11)
        sex = int(rng.random() < 0.55)
        hamd0 = abs(rng.normal(3, 1.5))
        for s, session in enumerate(("pre", "post")[:control_sessions]):
            rows.append((f"sub-C{c + 1:03d}", session, "control", age, sex, abs(hamd0 + rng.normal(0, 1)), 0.0))

    n_scans = len(rows)
    sc = np.empty((n_scans, n_regions, n_regions))
    fc = np.empty((n_scans, n_regions, n_regions))
    ts = np.empty((n_scans, n_regions, n_timepoints)) if n_timepoints else None
    base_lambda = 0.9 + 0.3 * rng.random(n_regions)
    subj_noise = {}
    for s, (subject, session, group, *_rest, response) in enumerate(rows):
        if subject not in subj_noise:
            subj_noise[subject] = (rng.lognormal(0, 0.25, size=(n_regions, n_regions)), rng.integers(2**31))
        mult, sseed = subj_noise[subject]
        srng = np.random.default_rng([sseed, s])
        # subject SC: shared subject-specific edge variation + small session noise
        w = group_sc * np.sqrt(mult * mult.T) * srng.lognormal(0, 0.05, size=group_sc.shape)
        w = np.triu(w, 1)
        w = w + w.T
        sc[s] = w
        lam = base_lambda.copy()
        if group == "patient":
            lam[planted] *= 1.15  # patients start less coupled in the planted regions
            if session == "post":
                lam[planted] *= 1.0 - effect * response
        # non-structural component: low-rank random factors + independent noise
        # non-structural component: a subject fingerprint shared by the subject's
        # sessions plus session-specific variation (low-rank factors + noise)
        e = np.sqrt(_FINGERPRINT) * _nonstructural(np.random.default_rng([sseed, 10**6]), n_regions)
        e = e + np.sqrt(1 - _FINGERPRINT) * _nonstructural(srng, n_regions)
        mix = lam[:, None] * lam[None, :]
        if n_timepoints:
            target = 0.55 * f_struct + _NONSTRUCTURAL_WEIGHT * mix * e
            np.fill_diagonal(target, 1.0)
            evals, evecs = np.linalg.eigh(target)
            cov = (evecs * np.clip(evals, 0.05, None)) @ evecs.T
            x = np.linalg.cholesky(cov) @ srng.standard_normal((n_regions, n_timepoints))
            ts[s] = x
            r = np.corrcoef(x)
            np.fill_diagonal(r, 0.0)
            fc[s] = np.arctanh(np.clip(r, -0.999999, 0.999999))
        else:
            f = 0.55 * f_struct + _NONSTRUCTURAL_WEIGHT * mix * e
            np.fill_diagonal(f, 0.0)
            fc[s] = f

    scans = {
        "scan_id": np.array([f"{r[0]}_ses-{r[1]}" for r in rows]),
        "subject": np.array([r[0] for r in rows]),
        "session": np.array([r[1] for r in rows]),
        "group": np.array([r[2] for r in rows]),
        "age": np.array([r[3] for r in rows]),
        "sex": np.array([r[4] for r in rows], dtype=np.int64),
        "hamd": np.array([r[5] for r in rows]),
    }

    # expression: smooth random genes; the first n_planted_genes track the change map
    genes = np.array([f"GENE{g + 1:05d}" for g in range(n_genes)])
    expr = _smooth_maps(dist, n_genes, 30.0, rng)
    n_planted_genes = min(n_planted_genes, n_genes)
    smooth_change = np.exp(-(dist**2) / (2 * 15.0**2)) @ change_map
    smooth_change = (smooth_change - smooth_change.mean()) / smooth_change.std()
    signs = np.where(np.arange(n_planted_genes) % 2 == 0, 1.0, -1.0)
    expr[:n_planted_genes] = 0.8 * signs[:, None] * smooth_change[None, :] + 0.45 * expr[:n_planted_genes]
    expr = 0.5 + 0.1 * expr.T  # regions x genes, on abagen's [0, 1]-like scale
    # shuffle gene order so planted genes are not simply the first columns
    perm = rng.permutation(n_genes)
    expr = expr[:, perm]
    genes_shuffled = genes[perm]
    planted_genes = genes[:n_planted_genes]

    params = {
        "n_regions": n_regions,
        "n_patients": n_patients,
        "n_controls": n_controls,
        "control_sessions": control_sessions,
        "n_planted": int(planted.size),
        "n_genes": n_genes,
        "n_planted_genes": n_planted_genes,
        "sc_density": sc_density,
        "effect": effect,
        "n_timepoints": n_timepoints,
        "seed": seed if isinstance(seed, int) else None,
    }
    return SimulatedCohort(
        sc=sc,
        fc=fc,
        scans=scans,
        labels=labels,
        hemisphere=hemisphere,
        centroids=centroids,
        expression=expr,
        genes=genes_shuffled,
        planted_regions=planted,
        planted_genes=planted_genes,
        change_map=change_map,
        timeseries=ts,
        params=params,
    )


def gene_sets(sim: SimulatedCohort, *, n_random: int = 40, min_size: int = 10, max_size: int = 40,
              seed=0) -> dict[str, list[str]]:
    """Gene categories for a simulated cohort: ``PLANTED_POSITIVE`` / ``PLANTED_NEGATIVE``
    (planted genes whose expression rises / falls with the change map) and
    ``n_random`` categories of random genes."""
    rng = np.random.default_rng(seed)
    planted = list(sim.planted_genes)
    sets = {
        "PLANTED_POSITIVE": [g for i, g in enumerate(planted) if i % 2 == 0],
        "PLANTED_NEGATIVE": [g for i, g in enumerate(planted) if i % 2 == 1],
    }
    others = np.array([g for g in sim.genes if g not in set(planted)])
    for k in range(n_random):
        size_k = int(rng.integers(min_size, max_size + 1))
        sets[f"RANDOM_{k + 1:03d}"] = sorted(rng.choice(others, size=min(size_k, others.size), replace=False))
    return sets


def write_gmt(path, sets: dict[str, list[str]]) -> None:
    """Write gene sets in GMT format (name, description, genes; tab-separated)."""
    with open(path, "w") as fh:
        for name, genes in sets.items():
            fh.write("\t".join([name, "simulated"] + list(genes)) + "\n")


@dataclass(frozen=True)
class SurfaceParcellation:
    """A parcellation of the fsaverage5 sphere (see :func:`fsaverage5_parcellation`).

    Attributes
    ----------
    labels : (N,) str array
        ``L_region001`` ... then ``R_region001`` ...; region ``i + N/2`` is the
        mirror image of region ``i``.
    vertex_labels : tuple of two (10242,) str arrays
        Region name of each left / right vertex; ``""`` on the medial wall.
    sphere : tuple of two (10242, 3) float arrays
        fsaverage5 sphere vertices (radius 100) of the left / right hemisphere.
    centroids_mm : (N, 3) float array
        Mean pial-surface position of each region's vertices (millimetres).
    """

    labels: np.ndarray
    vertex_labels: tuple
    sphere: tuple
    centroids_mm: np.ndarray


def _kmeans_sphere(points, centres, n_iter):
    """Lloyd iterations on unit vectors (nearest centre by dot product); an empty
    cluster restarts at the point farthest from its centre."""
    for _ in range(n_iter):
        assign = np.argmax(points @ centres.T, axis=1)
        new = np.zeros_like(centres)
        np.add.at(new, assign, points)
        counts = np.bincount(assign, minlength=len(centres))
        for k in np.flatnonzero(counts == 0):
            far = int(np.argmin(np.sum(points * centres[assign], axis=1)))
            new[k] = points[far]
            assign[far] = k
        centres = new / np.linalg.norm(new, axis=1, keepdims=True)
    return np.argmax(points @ centres.T, axis=1), centres


def _open_mask(mask, faces, steps):
    """Morphological opening of a vertex mask on a mesh: drops lines and specks
    narrower than ``2 * steps`` edges (the flat patch's relaxation cuts)."""
    from scipy import sparse

    n = mask.size
    i = faces[:, [0, 1, 2, 1, 2, 0]].ravel()
    j = faces[:, [1, 2, 0, 0, 1, 2]].ravel()
    adj = sparse.csr_matrix((np.ones(i.size), (i, j)), shape=(n, n))
    for _ in range(steps):
        mask = mask & (adj @ (~mask).astype(float) == 0)
    for _ in range(steps):
        mask = mask | (adj @ mask.astype(float) > 0)
    return mask


def fsaverage5_parcellation(n_regions: int = 100, *, seed=0, n_iter: int = 15) -> SurfaceParcellation:
    """A seeded, mirror-symmetric parcellation of fsaverage5 into ``n_regions`` regions.

    The cortex of the left sphere (fsaverage5 as bundled with nilearn; the
    vertices outside nilearn's flat patch, the cut-out medial wall, are left
    out) is split into ``n_regions // 2`` regions by spherical k-means from
    seeded starting vertices; the right hemisphere starts from the mirror
    images of the left centres, so region ``i + n_regions // 2`` is the
    homologue of region ``i``. Same seed, same parcellation.
    """
    # nilearn is imported here: importing it takes seconds, and only this
    # function (and the report's brain maps) need it.
    from nilearn import datasets

    n_regions = check_positive_int("n_regions", n_regions, minimum=8)
    half = n_regions // 2
    n_regions = 2 * half
    fs = datasets.load_fsaverage("fsaverage5")
    rng = np.random.default_rng(seed)
    out_labels, spheres, centroids = [], [], np.empty((n_regions, 3))
    labels = np.array([f"{h}_region{i + 1:03d}" for h in "LR" for i in range(half)])
    centres = None
    for h, hemi in enumerate(("left", "right")):
        sphere = np.asarray(fs["sphere"].parts[hemi].coordinates, dtype=np.float64)
        pial = np.asarray(fs["pial"].parts[hemi].coordinates, dtype=np.float64)
        cortex = np.zeros(len(sphere), dtype=bool)
        cortex[np.unique(np.asarray(fs["flat"].parts[hemi].faces))] = True
        cortex = ~_open_mask(~cortex, np.asarray(fs["sphere"].parts[hemi].faces), steps=2)
        unit = sphere[cortex] / np.linalg.norm(sphere[cortex], axis=1, keepdims=True)
        if centres is None:
            start = unit[np.sort(rng.choice(len(unit), size=half, replace=False))]
        else:
            start = centres * np.array([-1.0, 1.0, 1.0])  # mirror of the left centres
        assign, centres_h = _kmeans_sphere(unit, start, n_iter)
        if centres is None:
            centres = centres_h
        names = np.full(len(sphere), "", dtype=object)
        names[cortex] = labels[h * half + assign]
        out_labels.append(names.astype(str))
        spheres.append(sphere)
        for k in range(half):
            centroids[h * half + k] = pial[np.flatnonzero(cortex)[assign == k]].mean(axis=0)
    return SurfaceParcellation(labels=labels, vertex_labels=tuple(out_labels), sphere=tuple(spheres),
                               centroids_mm=centroids)
