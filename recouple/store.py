"""The cohort store: one HDF5 file per cohort (schema in ``docs/STORE.md``).

>>> import recouple as rc
>>> cohort = rc.simulate.cohort(n_regions=20, n_patients=2, n_controls=1, seed=0)
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "cohort.h5")
>>> rc.store.from_simulated(cohort, path).close()
>>> with rc.store.open(path) as st:
...     st.read("sc").shape
(6, 20, 20)
"""

from __future__ import annotations

import numpy as np

from .exceptions import StoreError
from .io.ingest import set_region_geometry
from .io.store import (  # create, open and validate are io.store's functions, under the same names
    SCHEMA_VERSION,
    CohortStore,
    LazyDataset,
    ValidationReport,
    create,
    open,
    validate,
)

__all__ = [
    "SCHEMA_VERSION",
    "CohortStore",
    "LazyDataset",
    "StoreError",
    "ValidationReport",
    "create",
    "open",
    "validate",
    "from_simulated",
    "read_table",
    "set_geometry",
]


def set_geometry(store, *, parcellation=None, sphere=None, names=None, centroids=None):
    """Store where a store's regions lie: centroids, hemisphere, surface parcellation.

    ``rc.store.set_geometry("cohort.h5", parcellation=("lh.aparc.annot",
    "rh.aparc.annot"), sphere=("lh.sphere", "rh.sphere"))`` matches the
    parcels to the store's labels by name, stores each region's centroid
    on the sphere and hemisphere, and the per-vertex region index and sphere
    coordinates under ``/regions/surface``; ``centroids="table.csv"``
    (``label, x, y, z, hemisphere``) is the alternative. Returns the
    :class:`recouple.io.surfaces.RegionGeometry`; its ``message`` names the
    parcellation entries that are not regions (medial wall, ``unknown``,
    ``corpuscallosum``), which are left out. See
    :func:`recouple.io.ingest.set_region_geometry`.
    """
    return set_region_geometry(store, parcellation=parcellation, sphere=sphere, names=names, centroids=centroids)


def read_table(path, table: str = "scans"):
    """The ``scans`` or ``regions`` table of a store as a pandas DataFrame."""
    with open(path) as st:
        if table == "scans":
            return st.scans
        if table == "regions":
            return st.regions
    raise StoreError(f"table must be 'scans' or 'regions'; got {table!r}.")


def from_simulated(cohort, path, *, overwrite: bool = False) -> CohortStore:
    """Write a :class:`recouple.simulate.SimulatedCohort` into a new store.

    Writes the scans and region tables, ``sc``, ``fc``, ``ts`` (when the
    cohort has time series), ``maps/change_map`` and the expression matrix as
    ``maps/expression`` (N, G) with the gene names in its ``genes`` attribute.
    Returns the store open for writing.
    """
    st = create(path, scans=dict(cohort.scans), labels=cohort.labels, hemisphere=cohort.hemisphere,
                centroids=cohort.centroids, overwrite=overwrite)
    try:
        st.write_array("sc", cohort.sc)
        st.write_array("fc", cohort.fc)
        if getattr(cohort, "timeseries", None) is not None:
            st.write_array("ts", cohort.timeseries)
        st.write_array("maps/change_map", np.asarray(cohort.change_map, dtype=np.float64),
                       attrs={"space": "region"})
        st.write_array("maps/expression", np.asarray(cohort.expression, dtype=np.float64),
                       attrs={"space": "region", "genes": [str(g) for g in cohort.genes]})
    except BaseException:
        st.close()
        raise
    return st
