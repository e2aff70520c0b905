"""Command-line options shared by several verbs, written once."""

from __future__ import annotations

from ..kernels.pvalues import PRECISIONS, tie_rtol


def add_precision_argument(p, *, needs: str):
    """``--precision {float64,float32}``: the arithmetic of the null's matrix products.

    ``needs`` says what float32 requires or refuses for this verb (one clause).
    """
    p.add_argument("--precision", choices=PRECISIONS, default="float64",
                   help="arithmetic of the null's matrix products (default float64). float32: about twice as fast on "
                        "CPUs, more on GPUs with slow float64; observed statistics stay float64 and null draws within "
                        "the float32 rounding bound of the observed one count as ties, so p-values are never below "
                        f"float64's. {needs}")


def precision_note(precision: str, n_terms: int) -> str:
    """The line a verb prints when its nulls' products of ``n_terms`` terms
    ran in float32 ('' for float64)."""
    if precision == "float64":
        return ""
    return (f"float32 null products: draws within {tie_rtol(precision, n_terms):.1e} x max(|score|, 1) of the "
            "observed score count as ties (p-values never below float64's)")
