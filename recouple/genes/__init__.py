"""Imaging transcriptomics: relate brain maps to regional gene expression.

* :mod:`~recouple.genes.expression`: :func:`load_expression`, :func:`align`,
  :func:`select_regions`, :func:`filter_genes`: region x gene tables (abagen
  CSV, HDF5, arrays), matched to a map's regions by label, never by position.
* :mod:`~recouple.genes.association`: :func:`associate`: every gene against
  one or more maps with spatial nulls (r, permutation p, FDR, FWER) and a
  ranked gene table / ``.rnk`` file.
* :mod:`~recouple.genes.pls`: :func:`pls`: SIMPLS PLS regression with
  variance-explained nulls and bootstrap Z-scores of gene weights, batched
  as matrix products.
* :mod:`~recouple.genes.enrichment`: :func:`enrichment`: gene-category
  enrichment with ensemble spatial nulls (Fulcher et al. 2021) or
  random-gene nulls, from GMT gene sets.

Functions take the maps first, then the expression:
``associate(maps, expression)``, ``pls(maps, expression)``,
``enrichment(map, expression, gene_sets)``. Nulls follow
:mod:`recouple.nulls.spec` (arrays ``(n_perm, N)`` of integer resampling
indices or float surrogate maps, ``.npy`` paths, method names, spec dicts);
they refer to the map's own regions (``labels``) and are applied before
alignment. ``seed`` defaults to 0: the same seed gives identical nulls.
"""

from __future__ import annotations

from ..kernels.pvalues import ALTERNATIVES
from ..nulls.spec import SPIN_METHODS, resolve_nulls
from . import association, expression
from .association import GeneAssociation, associate
from .enrichment import EnrichmentResult, enrichment, load_gene_sets, membership_matrix
from .expression import (
    METHODS,
    Alignment,
    Expression,
    align,
    filter_genes,
    from_annotations,
    load_expression,
    region_key,
    select_regions,
)
from .pls import PLSResult, pls

__all__ = [
    "Expression",
    "Alignment",
    "GeneAssociation",
    "PLSResult",
    "EnrichmentResult",
    "load_expression",
    "from_annotations",
    "region_key",
    "align",
    "select_regions",
    "filter_genes",
    "resolve_nulls",
    "associate",
    "pls",
    "enrichment",
    "load_gene_sets",
    "membership_matrix",
]
