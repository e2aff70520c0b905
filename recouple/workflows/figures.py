"""Brain maps for the study report.

Regional values are drawn on the fsaverage5 inflated surfaces that nilearn
bundles (no download), through the store's surface parcellation (the region
of each sphere vertex), in lateral and medial views of both hemispheres, with
nilearn's surface plotting (matplotlib engine). That needs a store whose
sphere is fsaverage5's (10242 vertices per hemisphere, the same vertices);
:func:`surface_problem` says in words why a store's regions cannot be drawn
so, and the report then falls back to dot maps of region centroids.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["FSAVERAGE5_VERTICES", "VIEWS", "surface_problem", "vertex_values", "draw_views", "add_colorbar"]

FSAVERAGE5_VERTICES = 10242
# (hemisphere, view, matplotlib azimuth); elevation 0. Left lateral looks from -x.
VIEWS = (("left", "lateral", 180.0), ("left", "medial", 0.0), ("right", "medial", 180.0),
         ("right", "lateral", 0.0))
# greatest angle (degrees) between a stored sphere vertex and fsaverage5's same vertex
_SPHERE_TOLERANCE_DEG = 1.0
# faces whose normal points away from the camera by more than this cosine are hidden
# behind the rest of the closed surface and are not drawn (halves the drawing time)
_BACKFACE_COS = -0.25


@functools.lru_cache(maxsize=1)
def _fsaverage5() -> dict:
    """Inflated meshes, sulcal depth and the sphere of fsaverage5 (nilearn's package data)."""
    # nilearn is imported here rather than at module level: importing it takes
    # seconds, and only reports with a surface parcellation need it.
    from nilearn import datasets

    meshes = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data(mesh="fsaverage5", mesh_type="inflated", data_type="sulcal")
    out = {"sphere": {}}
    for hemi in ("left", "right"):
        infl = meshes["inflated"].parts[hemi]
        coords = np.asarray(infl.coordinates, dtype=np.float64)
        faces = np.asarray(infl.faces, dtype=np.int64)
        tri = coords[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        # orient normals outwards (the mesh is closed and roughly convex)
        if np.mean(np.sum(normals * (tri.mean(axis=1) - coords.mean(axis=0)), axis=1)) < 0:
            normals = -normals
        sphere = np.asarray(meshes["sphere"].parts[hemi].coordinates, dtype=np.float64)
        out[hemi] = {"coords": coords, "faces": faces, "normals": normals,
                     "sulc": np.asarray(sulc.data.parts[hemi], dtype=np.float64).ravel()}
        out["sphere"][hemi] = sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
    return out


def surface_problem(geometry) -> str:
    """Why regional maps of ``geometry`` cannot be drawn on fsaverage5; ``""`` when they can.

    ``geometry`` is a :class:`recouple.io.surfaces.RegionGeometry` (or None).
    """
    if geometry is None or getattr(geometry, "vertex_region", None) is None:
        return "the store holds no surface parcellation"
    sizes = [len(v) for v in geometry.vertex_region]
    if any(s != FSAVERAGE5_VERTICES for s in sizes):
        return (f"the store's parcellation is on a sphere of {sizes[0]} + {sizes[1]} vertices, not fsaverage5 "
                f"({FSAVERAGE5_VERTICES} per hemisphere), the only mesh the report draws")
    if not any(np.any(np.asarray(v) >= 0) for v in geometry.vertex_region):
        return "no vertex of the store's surface parcellation belongs to a region"
    fs = _fsaverage5()
    for hemi, sph in zip(("left", "right"), geometry.sphere):
        s = np.asarray(sph, dtype=np.float64)
        s = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
        cos = np.clip(np.sum(s * fs["sphere"][hemi], axis=1), -1.0, 1.0)
        if np.degrees(np.arccos(cos.min())) > _SPHERE_TOLERANCE_DEG:
            return (f"the store's {hemi} sphere has {FSAVERAGE5_VERTICES} vertices but they are not fsaverage5's "
                    "(a different mesh or vertex order)")
    return ""


def vertex_values(values, vertex_region) -> np.ndarray:
    """Per-vertex values of a regional map: ``values[vertex_region]``, NaN where the index is -1."""
    values = np.asarray(values, dtype=np.float64)
    vr = np.asarray(vertex_region, dtype=np.int64)
    return np.where(vr >= 0, values[np.clip(vr, 0, None)], np.nan)


def draw_views(fig, spec, values, geometry, *, cmap, vmin, vmax, outline=None, title=None) -> list:
    """Draw a regional map in the four views (left lateral, left medial, right medial,
    right lateral) inside the gridspec cell ``spec`` of ``fig``.

    ``values``: (N,) per region (NaN: no value, drawn as the grey cortex);
    ``outline``: (N,) bool, regions outlined in black. Returns the four 3-D axes.
    """
    from nilearn import plotting, surface  # lazy: see _fsaverage5

    fs = _fsaverage5()
    values = np.asarray(values, dtype=np.float64)
    sub = spec.subgridspec(1, len(VIEWS), wspace=-0.12)
    axes = []
    for k, (hemi, view, azim) in enumerate(VIEWS):
        ax = fig.add_subplot(sub[0, k], projection="3d")
        h = fs[hemi]
        vr = np.asarray(geometry.vertex_region[0 if hemi == "left" else 1], dtype=np.int64)
        direction = np.array([np.cos(np.radians(azim)), np.sin(np.radians(azim)), 0.0])
        faces = h["faces"][h["normals"] @ direction > _BACKFACE_COS]
        mesh = surface.InMemoryMesh(h["coords"], faces)
        data = vertex_values(values, vr)
        plotting.plot_surf(mesh, data, bg_map=h["sulc"], hemi=hemi, view=(0.0, azim), engine="matplotlib",
                           cmap=cmap, vmin=vmin, vmax=vmax, avg_method="median", colorbar=False, axes=ax,
                           figure=fig)
        if outline is not None:
            marked = np.flatnonzero(np.asarray(outline, dtype=bool))
            roi = np.where(np.isin(vr, marked), vr + 1, 0)
            # contour only the regions with a visible face in this view
            levels = [int(r) for r in np.unique(roi[roi > 0])
                      if (np.isin(faces, np.flatnonzero(roi == r)).sum(axis=1) >= 2).any()]
            if levels:
                plotting.plot_surf_contours(mesh, roi, levels=levels, colors=["black"] * len(levels), axes=ax,
                                            figure=fig, legend=False)
        ax.set_title(f"{hemi} {view}", fontsize=8, color="0.35", pad=-4)
        axes.append(ax)
    if title:
        axes[0].text2D(0.0, 1.08, title, transform=axes[0].transAxes, fontsize=10, ha="left", va="bottom")
    return axes


def add_colorbar(fig, axes, *, cmap, vmin, vmax, label):
    """One colorbar for maps drawn with ``cmap`` between ``vmin`` and ``vmax``."""
    import matplotlib.cm as cm
    from matplotlib.colors import Normalize

    sm = cm.ScalarMappable(norm=Normalize(vmin=vmin, vmax=vmax), cmap=cmap)
    return fig.colorbar(sm, ax=axes, shrink=0.7, fraction=0.025, pad=0.01, label=label)
