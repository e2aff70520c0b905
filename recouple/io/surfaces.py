"""Surface inputs for spatial nulls: GIfTI spheres, parcellation labels
(FreeSurfer annot, GIfTI label, CSV/TSV/NPY of one label per vertex),
parcel centroids on the sphere, and the geometry of the regions of a study
(:func:`region_geometry`: centroids, hemisphere and per-vertex region index
of named regions, matched by name)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import InputError, ShapeError

__all__ = [
    "load_sphere",
    "load_labels",
    "parcel_centroids",
    "MEDIAL_WALL_NAMES",
    "RegionGeometry",
    "region_geometry",
    "centroid_table",
    "read_code_names",
    "region_key",
]

MEDIAL_WALL_NAMES = frozenset({
    "unknown", "corpuscallosum", "Background+FreeSurfer_Defined_Medial_Wall", "???", "Unknown",
    "Medial_wall", "Medial wall", "medial_wall",
})


def _exists(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"file {str(p)!r} must exist; it was not found. Check the path.")
    return p


def load_sphere(path) -> np.ndarray:
    """Vertex coordinates ``(V, 3)`` of a GIfTI (``.gii``) or FreeSurfer sphere."""
    import nibabel as nib

    p = _exists(path)
    try:
        if p.suffix == ".gii":
            img = nib.load(str(p))
            coords = img.agg_data("pointset")
            if coords is None:
                coords = img.darrays[0].data
        else:
            coords, _ = nib.freesurfer.read_geometry(str(p))
    except Exception as exc:  # nibabel raises many kinds
        raise InputError(f"{p.name} must be a GIfTI or FreeSurfer surface; reading it failed ({exc}). "
                         "Pass e.g. lh.sphere or fsa5_sphere_lh.gii.") from exc
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ShapeError(f"{p.name} must hold (V, 3) vertex coordinates; got shape {coords.shape}. Pass a surface.")
    return coords


def load_labels(path) -> tuple[np.ndarray, dict[int, str]]:
    """Per-vertex integer labels and a ``{label: name}`` table (empty for CSV/NPY).

    Supports FreeSurfer ``.annot``, GIfTI ``.label.gii`` and a column of
    integers (``.csv``/``.tsv``/``.txt``/``.npy``; 0 = medial wall).
    """
    import nibabel as nib

    p = _exists(path)
    name = p.name.lower()
    names: dict[int, str] = {}
    if name.endswith(".annot"):
        labels, ctab, nm = nib.freesurfer.read_annot(str(p))
        names = {i: (n.decode() if isinstance(n, bytes) else str(n)) for i, n in enumerate(nm)}
        labels = np.asarray(labels)
        # Vertices without a label are -1 in read_annot: treat as medial wall.
        labels = np.where(labels < 0, -1, labels)
    elif name.endswith(".gii"):
        img = nib.load(str(p))
        labels = np.asarray(img.agg_data())
        names = {int(k): v for k, v in img.labeltable.get_labels_as_dict().items()}
    elif name.endswith(".npy"):
        labels = np.load(p)
    else:
        delim = "\t" if name.endswith(".tsv") else ","
        try:
            labels = np.loadtxt(p, delimiter=delim, ndmin=1)
        except ValueError:
            labels, names = _text_labels(p, delim)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ShapeError(f"{p.name} must hold one label per vertex; got shape {labels.shape}. Pass a single column.")
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise InputError(f"{p.name} must hold integer labels; found non-integer values. Pass parcel codes.")
    return labels.astype(np.int64), names


def _text_labels(p: Path, delim: str):
    """One label per line that is not all numbers: a header line over integer
    codes, or region names (coded 1, 2, ... in order of first appearance;
    an empty cell is -1, no region)."""
    tokens = [ln.split(delim)[0].strip().strip('"') for ln in p.read_text().rstrip().splitlines()]

    def number(t):
        try:
            float(t)
            return True
        except ValueError:
            return False

    if tokens and not number(tokens[0]) and all(number(t) for t in tokens[1:]):
        return np.array([float(t) for t in tokens[1:]]), {}
    codes: dict[str, int] = {}
    out = np.empty(len(tokens), dtype=np.int64)
    for i, t in enumerate(tokens):
        out[i] = -1 if t == "" else codes.setdefault(t, len(codes) + 1)
    return out, {c: n for n, c in codes.items()}


def medial_mask(labels, names=None, *, medial=(0,)) -> np.ndarray:
    """True for vertices in the medial wall: label in ``medial`` or named like one."""
    labels = np.asarray(labels)
    mask = np.isin(labels, list(medial)) | (labels < 0)
    if names:
        bad = [k for k, v in names.items() if v in MEDIAL_WALL_NAMES]
        mask |= np.isin(labels, bad)
    return mask


def parcel_centroids(coords, labels, *, hemi=None, method="surface", parcels=None, medial=(0,), names=None):
    """Parcel centroids on a sphere, one per parcel.

    Parameters
    ----------
    coords : (V, 3) array
        Sphere vertices (left then right when ``hemi`` is given).
    labels : (V,) int array
        Parcel code of each vertex; ``medial`` codes (and negative codes) are
        medial wall.
    hemi : (V,) array, optional
        0 left, 1 right per vertex: centroids snap to their own hemisphere.
    method : {"surface", "average"}
        ``surface`` (neuromaps default): mean of the parcel's vertices snapped
        to the nearest vertex of its hemisphere; ``average``: the mean itself
        (not on the sphere).
    parcels : sequence of int, optional
        Codes to return, in this order (default: sorted non-medial codes).
        A code with no vertex is an error.

    Returns
    -------
    centroids : (N, 3) array
    parcel_hemi : (N,) int array
    codes : (N,) int array
    """
    coords = np.asarray(coords, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape != (coords.shape[0],):
        raise ShapeError(f"labels must hold one code per vertex ({coords.shape[0]}); got shape {labels.shape}. "
                         "Use the parcellation of this sphere (left then right).")
    if method not in ("surface", "average"):
        raise InputError(f"method must be 'surface' or 'average'; got {method!r}. Pick one of those.")
    hemi = np.zeros(len(labels), dtype=np.int64) if hemi is None else np.asarray(hemi).astype(np.int64)
    wall = medial_mask(labels, names, medial=medial)
    present = np.unique(labels[~wall])
    if parcels is None:
        codes = present
    else:
        codes = np.asarray(parcels).astype(np.int64)
        missing = np.setdiff1d(codes, present)
        if missing.size:
            raise InputError(
                f"parcels must all appear in the parcellation; {missing.size} do not (first: {missing[:5].tolist()}). "
                "Check that the map's labels match the parcellation's codes."
            )
    cent = np.empty((codes.size, 3))
    phemi = np.empty(codes.size, dtype=np.int64)
    for i, c in enumerate(codes):
        sel = (labels == c) & ~wall
        hs = np.unique(hemi[sel])
        if hs.size != 1:
            raise InputError(f"parcel {c} must lie in one hemisphere; it has vertices in both. "
                             "Give left and right parcels distinct codes.")
        h = int(hs[0])
        m = coords[sel].mean(axis=0)
        if method == "surface":
            pool = np.flatnonzero(hemi == h)
            d = np.sqrt(np.sum((coords[pool] - m) ** 2, axis=1))
            m = coords[pool[np.argmin(d)]]
        cent[i], phemi[i] = m, h
    return cent, phemi, codes


# ----------------------------------------------------------------------------- region geometry

_HEMI_PATTERNS = (
    (re.compile(r"^(?:ctx[-_.])?(lh|rh|l|r|left|right)[-_.](.+)$", re.I), 1, 2),
    (re.compile(r"^(.+?)[-_.](lh|rh|l|r|left|right)$", re.I), 2, 1),
)


def region_key(label, hemisphere=None) -> str:
    """Canonical key of a region name, for matching names across files.

    Hemisphere prefixes and suffixes (``L_``/``R_``, ``lh_``/``rh_``,
    ``lh.``/``rh.``, ``ctx-lh-``, ``Left-``/``Right-``, ``_L``/``_R``) become
    ``l:``/``r:``; the rest is lower-cased with spaces, dashes, dots and
    underscores removed. ``hemisphere`` ("L"/"R"/"lh"/"rh") names the
    hemisphere of a bare name. The one matching rule of the package (stores,
    parcellations, expression tables, nulls); also :func:`recouple.genes.region_key`.

    >>> region_key("L_bankssts") == region_key("ctx-lh-bankssts") == region_key("bankssts", "L")
    True
    """
    text = str(label).strip()
    hemi = None
    for pattern, h, n in _HEMI_PATTERNS:
        m = pattern.match(text)
        if m:
            hemi, text = m.group(h), m.group(n)
            break
    if hemi is None and hemisphere is not None and str(hemisphere).strip().upper() not in ("", "B", "NAN", "NONE"):
        hemi = str(hemisphere)
    name = re.sub(r"[\s\-_.]+", "", text).lower()
    if hemi is None:
        return name
    return f"{hemi.strip()[0].lower()}:{name}"


HEMISPHERES = ("lh", "rh")


@dataclass(frozen=True)
class RegionGeometry:
    """Where the regions of a study lie.

    Attributes
    ----------
    labels : (N,) str array
        Region names, in matrix order.
    hemisphere : (N,) str array
        ``"L"``/``"R"``: the hemisphere whose parcellation file holds the
        region (from the table's ``hemisphere`` column, or the label prefix,
        for a centroid table).
    centroids : (N, 3) float64 array
        From a parcellation: the sphere vertex of the region's hemisphere
        nearest to the mean of the region's vertices
        (:func:`parcel_centroids` with ``method="surface"``, as neuromaps),
        so every centroid lies on the sphere. From a table: its x, y, z.
    vertex_region : tuple of (V_lh,), (V_rh,) int64 arrays, or None
        Index into ``labels`` of each sphere vertex; -1 for vertices in no
        region of the matrices (medial wall, ``unknown``, ``corpuscallosum``,
        parcels that are not regions of the study).
    sphere : tuple of (V_lh, 3), (V_rh, 3) float64 arrays, or None
        Sphere vertex coordinates of each hemisphere.
    excluded : tuple of str
        Parcellation entries (``lh:unknown``, ``rh:corpuscallosum``, ...) or
        table rows that are not regions of the matrices, left out.
    source : str
        ``"surface"`` or ``"table"``.
    """

    labels: np.ndarray
    hemisphere: np.ndarray
    centroids: np.ndarray
    vertex_region: tuple | None = None
    sphere: tuple | None = None
    excluded: tuple = ()
    source: str = "surface"

    @property
    def message(self) -> str:
        """One line naming what was left out (empty when nothing was)."""
        if not self.excluded:
            return ""
        what = "parcellation entries" if self.source == "surface" else "centroid table rows"
        return (f"{len(self.excluded)} {what} are not regions of the matrices and were left out: "
                f"{', '.join(self.excluded)}")

    @property
    def has_surface(self) -> bool:
        return self.vertex_region is not None

    def vertex_labels(self) -> np.ndarray:
        """``(V_lh + V_rh,)`` region number per vertex, left then right: index + 1, 0 for no region.

        The ``parcellation`` argument of vertex-based spin nulls
        (``method="baum"``/``"cornblath"``), whose parcels in sorted order are
        then the regions in matrix order.
        """
        self._need_surface()
        return np.concatenate(self.vertex_region) + 1

    def vertex_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """``(V, 3)`` sphere coordinates (left then right) and ``(V,)`` hemisphere (0 left, 1 right)."""
        self._need_surface()
        coords = np.vstack(self.sphere)
        hemi = np.concatenate([np.full(len(c), h, dtype=np.int64) for h, c in enumerate(self.sphere)])
        return coords, hemi

    def _need_surface(self):
        if self.vertex_region is None:
            raise InputError("this region geometry has no surface parcellation (it came from a centroid table); "
                             "build it from a parcellation and a sphere (parcellation=(lh, rh), sphere=(lh, rh)).")


def _pair(value, what, allow_single=False):
    if isinstance(value, (str, Path)) or (isinstance(value, np.ndarray) and value.ndim == 1 and allow_single):
        if allow_single:
            return (value,)
        raise InputError(f"{what} must be a pair (left, right); got one {type(value).__name__}. "
                         f"Pass {what}=(lh_file, rh_file).")
    items = tuple(value)
    if len(items) == 2 or (allow_single and len(items) == 1):
        return items
    raise InputError(f"{what} must be (left, right){' or one file for both' if allow_single else ''}; "
                     f"got {len(items)} items. Pass {what}=(lh_file, rh_file).")


def read_code_names(path) -> dict[int, str]:
    """``{code: name}`` from a text file of ``code,name`` (or ``code name ...``
    as a FreeSurfer colour LUT) per line; blank and ``#`` lines are skipped."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"parcellation names file {str(path)!r} must exist; it was not found. Check the path.")
    out: dict[int, str] = {}
    for k, line in enumerate(p.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = [t.strip() for t in re.split(r"[,\t]", text)] if re.search(r"[,\t]", text) else text.split()
        if len(parts) < 2 or not parts[0].lstrip("-").isdigit():
            if k == 1:
                continue  # a header line
            raise InputError(f"parcellation names file {str(p)!r} line {k} must be 'code,name'; got {text!r}.")
        out[int(parts[0])] = parts[1]
    if not out:
        raise InputError(f"parcellation names file {str(p)!r} holds no 'code,name' lines. Write one per parcel code.")
    return out


def _load_parcellation(src, names):
    """Codes and ``{code: name}`` of one parcellation source (path or array)."""
    if isinstance(src, (str, Path)):
        codes, table = load_labels(src)
        where = Path(src).name
    else:
        codes, table, where = np.asarray(src), {}, "parcellation array"
        if codes.dtype.kind in "US":
            uniq = {}
            codes = np.array([-1 if n == "" else uniq.setdefault(str(n), len(uniq) + 1) for n in codes.tolist()])
            table = {c: n for n, c in uniq.items()}
        elif codes.dtype.kind == "f" and np.any(codes != np.round(codes)):
            raise InputError("parcellation must hold integer codes or names per vertex; found non-integers.")
        codes = codes.astype(np.int64)
        if codes.ndim != 1:
            raise ShapeError(f"parcellation must hold one code per vertex; got shape {codes.shape}.")
    if names is not None:
        table = {**table, **names}
    return codes, table, where


def region_geometry(labels, parcellation, sphere, *, names=None, method="surface") -> RegionGeometry:
    """Centroids, hemisphere and per-vertex region index of named regions from a surface parcellation.

    Parameters
    ----------
    labels : (N,) sequence of str
        The regions of the matrices, in matrix order (e.g. ``L_bankssts``).
    parcellation : (lh, rh) pair, or one source for both hemispheres
        FreeSurfer ``.annot``, GIfTI ``.label.gii``, or a per-vertex column
        (CSV/TSV/TXT/NPY) of integer codes or of region names; arrays work
        too. One source for both holds the left vertices then the right ones.
    sphere : (lh, rh) pair
        FreeSurfer (``lh.sphere``) or GIfTI spheres, or ``(V, 3)`` arrays.
    names : dict {code: name} or path, optional
        Names of integer codes that the parcellation does not name itself
        (a per-vertex CSV of codes): ``code,name`` per line. A name may carry
        a hemisphere prefix (``L_bankssts``) or not (``bankssts``).
    method : {"surface", "average"}
        Centroid rule of :func:`parcel_centroids`: ``surface`` (default) the
        sphere vertex nearest to the mean of the region's vertices;
        ``average`` the mean itself.

    Returns
    -------
    RegionGeometry
        Parcellation entries that are not regions of the matrices (medial
        wall, ``unknown``, ``corpuscallosum``, extra parcels) are left out and
        listed in ``excluded``; they are never counted as regions.

    Matching is by name (:func:`region_key`): ``L_x``, ``lh_x``, ``lh.x``,
    ``ctx-lh-x``, ``Left-x``, ``x_L`` and a bare ``x`` found in the left file
    are one region; the hemisphere is the one of the file (or of the vertex
    block) where the name was found. A region of the matrices that no vertex
    carries is an error naming it.
    """
    labels = np.asarray(labels).astype(str)
    if labels.ndim != 1 or labels.size == 0:
        raise ShapeError(f"labels must be a 1-D list of region names; got shape {labels.shape}.")
    if isinstance(names, (str, Path)):
        names = read_code_names(names)
    spheres = tuple(load_sphere(s) if isinstance(s, (str, Path)) else np.asarray(s, dtype=np.float64)
                    for s in _pair(sphere, "sphere"))
    for h, c in zip(HEMISPHERES, spheres):
        if c.ndim != 2 or c.shape[1] != 3:
            raise ShapeError(f"sphere ({h}) must hold (V, 3) vertex coordinates; got shape {c.shape}.")
    sources = _pair(parcellation, "parcellation", allow_single=True)
    sizes = [len(c) for c in spheres]
    if len(sources) == 1:
        codes, table, where = _load_parcellation(sources[0], names)
        if codes.size != sum(sizes):
            raise ShapeError(f"parcellation {where} must label every vertex of both spheres, left then right "
                             f"({sizes[0]} + {sizes[1]} = {sum(sizes)}); got {codes.size}. Pass one file per "
                             "hemisphere or the parcellation of these spheres.")
        parts = [(codes[:sizes[0]], table, f"{where} (left block)"),
                 (codes[sizes[0]:], table, f"{where} (right block)")]
    else:
        parts = [_load_parcellation(s, names) for s in sources]
        for (codes, _, where), h, v in zip(parts, HEMISPHERES, sizes):
            if codes.size != v:
                raise ShapeError(f"parcellation {where} ({h}) must label every vertex of its sphere ({v}); got "
                                 f"{codes.size}. Use the parcellation of this sphere.")

    # name keys of the regions of the matrices
    full, bare = {}, {}
    for i, lab in enumerate(labels.tolist()):
        key = region_key(lab)
        if key in full or key in bare:
            raise InputError(f"labels must name distinct regions; {lab!r} matches another label. Rename it.")
        (full if ":" in key else bare)[key] = i

    vertex_region, excluded = [], []
    unnamed = []
    for (codes, table, where), hemi in zip(parts, "LR"):
        vr = np.full(codes.size, -1, dtype=np.int64)
        for c in np.unique(codes).tolist():
            if c < 0:
                continue  # no label (FreeSurfer -1)
            name = table.get(c)
            if name is None:
                if table or names is not None:
                    excluded.append(f"{hemi.lower()}h:code {c}")
                else:
                    unnamed.append((where, c))
                continue
            key = region_key(name, hemi)
            if key[0] != hemi.lower():
                raise InputError(f"parcellation {where} holds {name!r} (code {c}), a {key[0].upper()} region, in the "
                                 f"{'left' if hemi == 'L' else 'right'} hemisphere. Pass the left file first "
                                 "(parcellation=(lh, rh)).")
            i = full.get(key, bare.get(key.split(":", 1)[1]))
            if i is None:
                excluded.append(f"{hemi.lower()}h:{name}")
                continue
            vr[codes == c] = i
        vertex_region.append(vr)
    if unnamed:
        codes_ = sorted({c for _, c in unnamed})
        raise InputError(
            f"parcellation codes must come with names to be matched to the regions of the matrices; "
            f"{unnamed[0][0].split(' (')[0]} holds {len(codes_)} distinct unnamed codes (e.g. {codes_[:5]}). "
            "Pass names='codes.csv' (--parcellation-names) with 'code,name' per line, a per-vertex column of "
            "names, or an .annot/.label.gii parcellation."
        )
    # a bare label found in both hemispheres is ambiguous
    for key, i in bare.items():
        hemis = [h for h, vr in zip("LR", vertex_region) if np.any(vr == i)]
        if len(hemis) > 1:
            raise InputError(f"labels entry {labels[i]!r} has no hemisphere and is a parcel of both hemispheres. "
                             "Prefix the labels with their hemisphere (L_/R_, lh_/rh_).")
    present = np.zeros(labels.size, dtype=bool)
    for vr in vertex_region:
        present[vr[vr >= 0]] = True
    if not present.all():
        miss = labels[~present].tolist()
        raise InputError(
            f"every region of the matrices needs vertices in the parcellation; {len(miss)} have none: "
            f"{', '.join(miss[:20])}{' ...' if len(miss) > 20 else ''}. Use the parcellation the matrices were built "
            "with (names are matched up to L_/R_, lh_/rh_, ctx-lh- prefixes), or give centroids in a table."
        )
    coords = np.vstack(spheres)
    hemi_v = np.concatenate([np.full(v, h, dtype=np.int64) for h, v in enumerate(sizes)])
    cent, phemi, _ = parcel_centroids(coords, np.concatenate(vertex_region) + 1, hemi=hemi_v, method=method,
                                      parcels=np.arange(1, labels.size + 1), medial=(0,))
    return RegionGeometry(
        labels=labels, hemisphere=np.array(["L", "R"])[phemi], centroids=cent,
        vertex_region=tuple(vertex_region), sphere=spheres, excluded=tuple(excluded), source="surface",
    )


def centroid_table(labels, path) -> RegionGeometry:
    """Region geometry from a table with columns ``label, x, y, z`` and optionally ``hemisphere``.

    Rows are matched to ``labels`` by name (:func:`region_key`); rows that
    are not regions of the matrices are listed in ``excluded``; a region
    without a row is an error naming it. Without a ``hemisphere`` column
    (or where it is empty) the hemisphere comes from the label prefix.
    """
    import pandas as pd

    labels = np.asarray(labels).astype(str)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"centroid table {str(path)!r} must exist; it was not found. Check the path.")
    sep = "\t" if p.suffix.lower() in (".tsv", ".txt") else ","
    try:
        df = pd.read_csv(p, sep=sep, dtype={"label": str})
    except Exception as exc:
        raise InputError(f"centroid table {str(p)!r} could not be parsed ({exc}).") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    need = [c for c in ("label", "x", "y", "z") if c not in df.columns]
    if need:
        raise InputError(f"centroid table {str(p)!r} must have columns label, x, y, z (and hemisphere); missing "
                         f"{need} (got {list(df.columns)}). Rename its columns.")
    xyz = df[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    rows_h = (df["hemisphere"].fillna("").astype(str).str.strip().tolist() if "hemisphere" in df.columns
              else [""] * len(df))
    lookup = {}
    for i, lab in enumerate(labels.tolist()):
        lookup[region_key(lab)] = i
    cent = np.full((labels.size, 3), np.nan)
    hemi = np.array([""] * labels.size, dtype=object)
    seen = np.zeros(labels.size, dtype=bool)
    excluded = []
    for r, (lab, h) in enumerate(zip(df["label"].astype(str).tolist(), rows_h)):
        key = region_key(lab, h or None)
        i = lookup.get(key, lookup.get(region_key(lab)))
        if i is None:
            excluded.append(lab)
            continue
        if seen[i]:
            raise InputError(f"centroid table {str(p)!r} has two rows for region {labels[i]!r}. Keep one.")
        if not np.isfinite(xyz[r]).all():
            raise InputError(f"centroid table {str(p)!r} row {r + 2} ({lab!r}) must hold finite numbers in x, y, z.")
        seen[i] = True
        cent[i] = xyz[r]
        hk = (h or "").upper()[:1]
        if hk not in ("L", "R"):
            k = region_key(labels[i])
            hk = k[0].upper() if ":" in k else ""
        hemi[i] = hk
    if not seen.all():
        miss = labels[~seen].tolist()
        raise InputError(f"centroid table {str(p)!r} must have a row for every region of the matrices; "
                         f"{len(miss)} have none: {', '.join(miss[:20])}. Add them.")
    return RegionGeometry(labels=labels, hemisphere=hemi.astype(str), centroids=cent, excluded=tuple(excluded),
                          source="table")
