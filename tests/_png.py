"""One PNG checker for every test that looks at figures: decode the PNGs a
report embeds and find figures with (almost) nothing drawn, or brain panels
without coloured data. Used by tests/test_report.py and
tests/test_e2e_realdata.py (and on headless-browser screenshots)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np

BRAIN_FIGURES = ("Coupling by group and session", "Change map", "PLS1 regional scores")


def embedded_pngs(html: str) -> dict[str, np.ndarray]:
    """``{alt text: (H, W, 3) uint8 image}`` of every PNG embedded in a report."""
    import matplotlib.image as mpimg

    out = {}
    for alt, b64 in re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', html):
        img = mpimg.imread(io.BytesIO(base64.b64decode(b64)), format="png")
        out[alt] = (np.asarray(img)[..., :3] * 255).round().astype(np.uint8)
    assert len(out) == html.count("<img"), "an <img> that is not an embedded PNG"
    return out


def ink_runs(mask, min_gap=1):
    """(start, stop) of the runs of True in a 1-D mask; gaps narrower than
    ``min_gap`` (the spaces between words) do not split a run."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    runs = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))
    merged = []
    for a, b in runs:
        if merged and a - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def figure_problems(name: str, img: np.ndarray, *, brain: bool) -> list[str]:
    """What is wrong with a figure: (almost) nothing drawn, or (``brain``) a panel
    without coloured data. Panels are the blocks of columns between white gaps."""
    ink = np.any(img < 245, axis=2)
    chroma = img.max(axis=2).astype(int) - img.min(axis=2).astype(int)
    colour = chroma > 60
    problems = []
    if ink.mean() < 0.02:
        problems.append(f"{name}: almost blank ({100 * ink.mean():.1f}% of pixels drawn)")
    if brain:
        h, w = ink.shape
        for a, b in ink_runs(ink.any(axis=0), min_gap=12):
            if b - a < 0.06 * w:  # a colorbar, tick labels or a letter
                continue
            block_ink, block_colour = ink[:, a:b], colour[:, a:b]
            # text (titles, "L"/"R") and a bare grey surface have no colour; a drawn map has
            if block_colour.sum() < max(50, 0.002 * block_ink.size):
                problems.append(f"{name}: columns {a}-{b} hold a panel without coloured data "
                                "(only text, or a brain with nothing on it)")
    return problems


def check_report_figures(html: str) -> dict[str, np.ndarray]:
    imgs = embedded_pngs(html)
    problems = []
    for name, img in imgs.items():
        problems += figure_problems(name, img, brain=name in BRAIN_FIGURES)
    assert not problems, problems
    return imgs


def read_png(path) -> np.ndarray:
    """``(H, W, 3)`` uint8 pixels of a PNG file."""
    import matplotlib.image as mpimg

    img = mpimg.imread(str(path), format="png")
    return (np.asarray(img)[..., :3] * 255).round().astype(np.uint8)
