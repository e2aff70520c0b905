"""How a ``recouple bench`` run reads: fixed-width text tables
(:func:`format_table`), the README's markdown speed section
(:func:`format_markdown`, put in place by :func:`replace_readme_block`), and
the per-step lines of the study row. The run itself is
:mod:`recouple.workflows.bench`; this module only formats its result dict.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import InputError

__all__ = ["README_END", "README_START", "format_markdown", "format_table", "replace_readme_block",
           "report_header"]


def _pct(density):
    return f"{100 * density:g}%"


def _extra_lines(extra: dict) -> list:
    """Per-step times against the bare kernels, one line a step."""
    if "steps_s" not in extra:
        return []
    bare, ratio = extra["bare_s"], extra["step_over_bare"]
    lines = []
    for k, t in extra["steps_s"].items():
        tail = f"  bare kernel {bare[k]:8.3f} s  step/bare {ratio[k]:5.2f}" if k in ratio else ""
        lines.append(f"{k:<40} {t:8.3f} s{tail}")
    lines += [f"{k:<40} {'':10}  bare kernel {v:8.3f} s" for k, v in bare.items() if ":" in k]
    return lines


def _fmt(x, spec, suffix=""):
    return "-" if x is None else f"{x:{spec}}{suffix}"


def _pct_or_dash(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def _table_rows(result):
    return [r for r in result["rows"] if r["operation"] not in ("voxel_fc", "float32_option")]


def _precision_lines(result):
    """One line per null-based test (association, sign-flip, Freedman-Lane) and backend of ``float32_option``."""
    lines = []
    for r in result["rows"]:
        if r["operation"] == "float32_option":
            e = r["extra"]
            lines.append([r["variant"], r["backend"], f"{e['float64_s']:.3g}", f"{r['time_s']:.3g}",
                          f"{e['float32_over_float64']:.2f}x", _pct_or_dash(e["gemm32_fraction"]),
                          f"{e['tie_rtol']:.1e}",
                          f"{e['pvalues_moved']} of {e['n_elements']}, by at most {e['max_draws_moved']} draws"
                          + (f" (LOWER by {-e['min_draws_moved']})" if e["min_draws_moved"] < 0 else "")])
    return lines


PRECISION_HEAD = ["float32 option", "backend", "float64 (s)", "float32 (s)", "float64/float32", "float32 GEMM frac",
                  "tie band", "p-values moved"]
PRECISION_NOTE = ("float32 option: `precision=\"float32\"` (`compare_maps`, `Resampling`) on the same data and nulls; "
                  "float32 GEMM "
                  "frac: essential flops / time / the measured float32 GEMM rate; tie band: null draws within it "
                  "of the observed score count as ties; p-values moved: elements whose p is above float64's and "
                  "by how many null draws (a p-value below float64's would be flagged LOWER).")


def _voxel_rows(result):
    """One entry per backend and density: the dense, sampled and auto rows of ``voxel_fc``."""
    out = {}
    for r in result["rows"]:
        if r["operation"] == "voxel_fc":
            e = r["extra"]
            out.setdefault((r["backend"], e["density"]), {})[e["fc_mode"]] = r
    return out


def _text_table(head, lines):
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    return out, widths


def format_table(result: dict) -> str:
    """The benchmark rows as fixed-width text tables: one row per operation and
    backend, then the voxel FC paths per density, then the footer."""
    head = ["operation", "size", "backend", "time (s)", "throughput", "vs numpy", "vs peer", "GEMM frac",
            "jax/numpy", "1st call (s)"]
    rows = _table_rows(result)
    lines = [[r["operation"], r["size"], r["backend"], f"{r['time_s']:.3f}", f"{r['throughput']:.4g} {r['unit']}",
              _fmt(r["speedup_vs_numpy"], ".2f", "x"), _fmt(r["speedup_vs_peer"], ".1f", "x"),
              _pct_or_dash(r["gemm_fraction"]), _fmt(r.get("jax_vs_numpy"), ".2f", "x"),
              _fmt(r.get("first_call_s"), ".3f")] for r in rows]
    out, widths = _text_table(head, lines) if lines else ([], [])
    for r, l in zip(rows, lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(l, widths)).rstrip())
        out += ["    " + line for line in _extra_lines(r.get("extra") or {})]
    vox = _voxel_rows(result)
    if vox:
        vhead = ["voxel FC", "backend", "nnz/row", "rows", "dense vox/s", "dense GEMM", "sampled vox/s",
                 "sampled/dense", "auto vox/s", "auto path", "jax/numpy d/s/a"]
        vlines = []
        for (b, density), m in vox.items():
            vlines.append([f"density {_pct(density)}", b, str(m["dense"]["extra"]["nnz_per_row"]),
                           str(m["dense"]["extra"]["chunk"]), f"{m['dense']['throughput']:.4g}",
                           _pct_or_dash(m["dense"]["gemm_fraction"]), f"{m['sampled']['throughput']:.4g}",
                           _fmt(m["sampled"]["extra"]["vs_dense"], ".2f", "x"), f"{m['auto']['throughput']:.4g}",
                           m["auto"]["extra"]["path"],
                           "/".join(_fmt(m[k].get("jax_vs_numpy"), ".2f") for k in m)])
        vout, vw = _text_table(vhead, vlines)
        out += [""] + vout + ["  ".join(c.ljust(w) for c, w in zip(l, vw)).rstrip() for l in vlines]
        e0 = next(iter(vox.values()))["dense"]["extra"]
        out.append(f"voxel FC: V = {e0['n_voxels']}, T = {e0['n_timepoints']}; sampled/dense = dense time / "
                   "sampled time; jax/numpy d/s/a: NumPy time / JAX time of the dense, sampled, auto paths")
    plines = _precision_lines(result)
    if plines:
        pout, pw = _text_table(PRECISION_HEAD, plines)
        out += [""] + pout + ["  ".join(c.ljust(w) for c, w in zip(l, pw)).rstrip() for l in plines]
        out.append(PRECISION_NOTE.replace("`", ""))
    gem = ", ".join(f"{b} {g:.1f}" for b, g in result["gemm_gflops"].items())
    out.append(f"measured float64 GEMM GFLOP/s: {gem}")
    if result["machine"].get("host_loops"):
        out.append(f"host loops (spins, TFCE, Floyd-Warshall): {result['machine']['host_loops']}")
    peers = sorted({r["peer_note"] for r in result["rows"] if r["peer_note"]})
    if peers:
        out.append("peers: " + "; ".join(peers))
    return "\n".join(out)


def report_header(result: dict) -> str:
    """One line: the command, the date, the machine (cores, CPU, BLAS, measured GEMM rate) and the sizes."""
    m = result["machine"]
    gem = ", ".join(f"{b} {g:.0f}" for b, g in result["gemm_gflops"].items())
    devices = ", ".join(f"{b} on {d}" for b, d in m.get("devices", {}).items())
    sizes = "small sizes (`--quick`)" if result.get("quick") else "default sizes"
    cmd = result.get("command") or "recouple bench"
    return (f"Generated by `{cmd}` on {result.get('date', '?')[:10]}: {m['cpus']} cores ({m.get('cpu_model', '?')}), "
            f"{m.get('blas', '?')} (NumPy {m.get('numpy', '?')}), float64 GEMM {gem} GFLOP/s "
            f"({result.get('gemm_size', '?')}^2); Python {m['python']}; {devices}; {sizes}, best of "
            f"{result.get('repeats', '?')}; whole run {result.get('wall_s', float('nan')):.0f} s.")


def _md_table(head, lines):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(c.replace("|", "/") for c in l) + " |" for l in lines]


def format_markdown(result: dict) -> str:
    """The run as the README's speed section: a header line naming the
    command, date and machine; one row per operation (NumPy time, peer time,
    ratio, GEMM fraction, the other backends' times and ratios to NumPy); the
    voxel FC paths per density; the study's steps against their bare kernels;
    the peers."""
    others = [b for b in result["backends"] if b != "numpy"]
    by_op: dict = {}
    for r in _table_rows(result):
        by_op.setdefault(r["operation"], {})[r["backend"]] = r
    head = ["operation", "size", "NumPy (s)", "peer (s)", "vs peer", "GEMM fraction"]
    for b in others:
        head += [f"{b} (s)", f"{b} vs NumPy", f"{b} 1st call (s)"]
    lines = []
    for op, per in by_op.items():
        ref = per.get("numpy") or next(iter(per.values()))
        gf = " / ".join(f"{_pct_or_dash(per[b]['gemm_fraction'])} {b}" for b in per
                        if per[b]["gemm_fraction"] is not None) or "-"
        line = [op, ref["size"], _fmt(per["numpy"]["time_s"] if "numpy" in per else None, ".3g"),
                _fmt(ref.get("peer_time_s"), ".3g"), _fmt(ref.get("speedup_vs_peer"), ".1f", "x"), gf]
        for b in others:
            r = per.get(b)
            line += ["-", "-", "-"] if r is None else [
                f"{r['time_s']:.3g}", _fmt(r.get("speedup_vs_numpy"), ".2f", "x"), _fmt(r.get("first_call_s"), ".3g")]
        lines.append(line)
    out = [report_header(result), ""] + _md_table(head, lines)
    out += ["", "NumPy (s): recouple on the NumPy backend, best of the repeats after a warm-up call; "
                "vs peer: peer time / recouple time; GEMM fraction: essential float64 flops / time / the "
                "GEMM rate timed just before and after each repeat (median over the repeats; the voxel FC "
                "paths below: against the rate above); <backend> vs NumPy: NumPy time / that backend's time (>1: faster than NumPy); "
                "1st call: the warm-up call (on JAX it includes compilation)."]
    vox = _voxel_rows(result)
    if vox:
        vhead = ["density", "backend", "non-zeros a row", "dense voxels/s", "dense GEMM fraction",
                 "sampled voxels/s", "sampled/dense", "auto voxels/s (path)", "vs NumPy dense / sampled / auto"]
        vlines = []
        for (b, density), m in vox.items():
            vlines.append([_pct(density), b, str(m["dense"]["extra"]["nnz_per_row"]),
                           f"{m['dense']['throughput']:.4g}", _pct_or_dash(m["dense"]["gemm_fraction"]),
                           f"{m['sampled']['throughput']:.4g}", _fmt(m["sampled"]["extra"]["vs_dense"], ".2f", "x"),
                           f"{m['auto']['throughput']:.4g} ({m['auto']['extra']['path']})",
                           " / ".join(_fmt(m[k].get("speedup_vs_numpy"), ".2f", "x") for k in m)])
        e0 = next(iter(vox.values()))["dense"]["extra"]
        out += ["", f"Voxel FC paths (`voxel_fc`, V = {e0['n_voxels']}, T = {e0['n_timepoints']}; one chunk a "
                    "density, at most "
                    f"{max(m['dense']['extra']['chunk'] for m in vox.values())} rows; sampled/dense: dense time / "
                    "sampled time):", ""] + _md_table(vhead, vlines)
    plines = _precision_lines(result)
    if plines:
        out += ["", PRECISION_NOTE, ""] + _md_table(PRECISION_HEAD, plines)
    for r in _table_rows(result):
        extra = r.get("extra") or {}
        if "steps_s" in extra:
            bare, ratio = extra["bare_s"], extra["step_over_bare"]
            slines = [[k, f"{t:.3g}", _fmt(bare.get(k), ".3g"), _fmt(ratio.get(k), ".2f")]
                      for k, t in extra["steps_s"].items()]
            slines += [[k, "-", f"{v:.3g}", "-"] for k, v in bare.items() if ":" in k]
            out += ["", f"Study steps (`{r['operation']}`, {r['backend']}, {r['size']}; total {extra['study_s']:.3g} s; "
                        "bare kernel: the same public function on the same arrays in memory):", ""]
            out += _md_table(["step", "step (s)", "bare kernel (s)", "step/bare"], slines)
    peers = sorted({r["peer_note"] for r in result["rows"] if r["peer_note"]})
    if peers:
        out += ["", "Peers (timed on fewer items, scaled linearly): " + "; ".join(peers) + "."]
    return "\n".join(out) + "\n"


README_START = "<!-- recouple bench --markdown: start -->"
README_END = "<!-- recouple bench --markdown: end -->"


def replace_readme_block(path, markdown: str) -> None:
    """Replace the text between the ``README_START`` and ``README_END`` marker lines of ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"--readme must name a readable file; reading {str(path)!r} failed: {exc}.") from exc
    i, j = text.find(README_START), text.find(README_END)
    if i < 0 or j < i:
        raise InputError(f"--readme {str(path)!r} must hold the lines {README_START!r} and then {README_END!r} "
                         "around the speed table; add them where the table goes.")
    path.write_text(text[: i + len(README_START)] + "\n" + markdown + text[j:])
