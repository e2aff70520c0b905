"""A whole study from one declarative file: ``recouple run STUDY.toml``.

The file names the cohort store, the coupling definition, the contrasts, the
clinical association, the spatial association targets (gene expression,
receptor or other maps), the nulls, enrichment gene sets and the compute
settings. :func:`run_study` runs every step through the engine, writes tables
and maps to the output folder with a provenance file, and renders an HTML
report with PNG figures. Each finished step leaves a completion marker, so a
re-run after a crash continues where it stopped.

A minimal file::

    [study]
    name = "ECT"
    store = "cohort.h5"
    output = "results"

    [[contrasts]]
    name = "post_vs_pre"
    type = "paired"
    group = "patient"
    sessions = ["pre", "post"]

Geometry for spin nulls of a store made elsewhere (paths relative to the file)::

    [regions]
    parcellation = ["lh.aparc.annot", "rh.aparc.annot"]
    sphere = ["lh.sphere", "rh.sphere"]
    # or: centroids = "centroids.csv"   (label, x, y, z, hemisphere)

:func:`load_config` checks every key and value; :func:`check_study` (run
first by every ``recouple run``, alone by ``recouple run --check``) reads
every input and checks it against the store before anything is computed.
See :data:`SCHEMA` for every key and its default.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from pathlib import Path

from .workflows.coupling import LEVELS
from .engine.planner import parse_memory
from .exceptions import ConfigError, InputError, describe
from .kernels.coupling import EDGE_SETS, METHODS as COUPLING_METHODS
from .kernels.pvalues import ALTERNATIVES, PRECISIONS
from .nulls import SPIN_METHODS
from .validation import safe_name
from .workflows.check import StudyPlan, check_study

__all__ = ["SCHEMA", "StudyPlan", "check_study", "load_config", "run_study", "write_config"]

# section -> {key: default}; None marks a key without a default (optional).
SCHEMA: dict[str, dict] = {
    "study": {"name": "study", "store": None, "output": "results", "description": ""},
    "coupling": {"method": "spearman", "edges": "sc_nonzero", "level": "region", "min_edges": 3,
                 "symmetrize": False, "allow_negative": False},
    "contrasts": {"name": None, "type": None, "group": None, "groups": None, "session": None, "sessions": None,
                  "covariates": []},
    "clinical": {"score": None, "group": "patient", "sessions": ["pre", "post"], "change": "improvement",
                 "covariates": [], "method": "pearson", "regions": "significant"},
    "association": {"target": None, "expression": "store", "maps": [], "method": "spearman", "pls_components": 1,
                    "pls_bootstrap": 1000, "top_genes": 20, "duplicate_genes": "error"},
    "nulls": {"method": "vasa", "n_perm": 1000, "seed": 0, "file": None},
    "regions": {"parcellation": None, "sphere": None, "names": None, "centroids": None},
    "permutation": {"n_perm": 5000, "seed": 0, "alpha": 0.05, "precision": "float64"},
    "enrichment": {"gene_sets": None, "min_size": 10, "max_size": 200, "alternative": "two-sided"},
    "compute": {"backend": "numpy", "scheduler": None, "memory_limit": None, "chunk_size": None},
}
CONTRAST_TYPES = ("paired", "two_sample", "group_by_time")
REQUIRED = {"study": ("store",)}


def _suggest(word, options):
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(sorted(options))}."


def _check_keys(section: str, table: dict, where: str):
    known = SCHEMA[section]
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} in [{section}].{_suggest(key, known)}")


def load_config(path) -> dict:
    """Read and validate a study file; return the config with defaults filled
    and paths resolved relative to the file's folder.

    Raises :class:`~recouple.exceptions.ConfigError` (an ``InputError``),
    naming the key, what was expected and what came, before anything is
    computed: for files that are not UTF-8 TOML, unknown sections or keys,
    missing required keys, missing files, values of the wrong type or range
    (e.g. ``[permutation] alpha`` outside (0, 1), a fractional or quoted
    ``n_perm``), a string where a list is expected, repeated groups or
    sessions, contrast names that are not safe file names
    (:func:`recouple.validation.safe_name`), bad contrast types, and
    contrasts or ``[clinical]`` settings that name groups, sessions or
    columns absent from the store.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file must exist; got {str(path)!r}, which does not. Check the path.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not a text (UTF-8) TOML file (byte {exc.start} cannot be decoded). Pass the "
                          "study file (see `recouple demo` for an example), not a binary file.") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc}). Fix the syntax at that line.") from exc
    return validate_config(raw, base=path.parent, where=str(path))


def validate_config(raw: dict, *, base=".", where="study") -> dict:
    """Validate a config dict (as read from TOML) and fill defaults."""
    base = Path(base)
    for section in raw:
        if section not in SCHEMA:
            raise ConfigError(f"{where}: unknown section [{section}].{_suggest(section, SCHEMA)}")
    cfg: dict = {}
    for section, defaults in SCHEMA.items():
        if section == "contrasts":
            items = raw.get("contrasts", [])
            if not isinstance(items, list):
                raise ConfigError(f"{where}: contrasts must be an array of tables ([[contrasts]]); got a "
                                  f"{type(items).__name__}. Write each contrast under its own [[contrasts]].")
            cfg["contrasts"] = []
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise ConfigError(f"{where}: contrast #{i + 1} must be a table under [[contrasts]]; got "
                                      f"{describe(item)}. Write each contrast under its own [[contrasts]].")
                _check_keys("contrasts", item, f"{where} contrast #{i + 1}")
                c = copy.deepcopy(defaults) | item
                if not c.get("name") or not c.get("type"):
                    raise ConfigError(f"{where}: contrast #{i + 1} needs a name and a type (one of "
                                      f"{', '.join(CONTRAST_TYPES)}); got {item}.")
                _check_contrast(c, i, where)
                cfg["contrasts"].append(c)
            names = [c["name"] for c in cfg["contrasts"]]
            if len(set(names)) != len(names):
                raise ConfigError(f"{where}: contrast names must be unique; got {names}. Rename the duplicates.")
            continue
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}] must be a table; got {table!r}.")
        _check_keys(section, table, where)
        present = section in raw
        cfg[section] = copy.deepcopy(defaults) | table
        _check_values(section, cfg[section], where)
        cfg[section]["_present"] = present
    for section, keys in REQUIRED.items():
        for key in keys:
            if cfg[section].get(key) in (None, ""):
                raise ConfigError(f"{where}: [{section}] {key} is required; add e.g. {key} = \"cohort.h5\".")

    def resolve(value):
        if value in (None, "", "store"):
            return value
        p = Path(value)
        return str(p if p.is_absolute() else (base / p))

    cfg["study"]["store"] = resolve(cfg["study"]["store"])
    cfg["study"]["output"] = resolve(cfg["study"]["output"])
    if not Path(cfg["study"]["store"]).is_file():
        raise ConfigError(f"{where}: [study] store {cfg['study']['store']!r} does not exist. Create it with "
                          "`recouple ingest` (or rc.store.create) or fix the path.")
    cfg["association"]["expression"] = resolve(cfg["association"]["expression"])
    cfg["association"]["maps"] = [resolve(m) for m in cfg["association"]["maps"]]
    cfg["enrichment"]["gene_sets"] = resolve(cfg["enrichment"]["gene_sets"])
    cfg["nulls"]["file"] = resolve(cfg["nulls"]["file"])
    reg = cfg["regions"]
    for key in ("parcellation", "sphere"):
        if reg.get(key) is not None:
            reg[key] = [resolve(v) for v in reg[key]]
    for key in ("names", "centroids"):
        reg[key] = resolve(reg.get(key))
    for key, value in (("association.expression", cfg["association"]["expression"]),
                       ("enrichment.gene_sets", cfg["enrichment"]["gene_sets"]),
                       ("nulls.file", cfg["nulls"]["file"]),
                       *((f"regions.{k}", v) for k in ("parcellation", "sphere") for v in (reg.get(k) or [])),
                       ("regions.names", reg.get("names")), ("regions.centroids", reg.get("centroids")),
                       *(("association.maps", m) for m in cfg["association"]["maps"])):
        if value not in (None, "", "store") and not Path(value).is_file():
            raise ConfigError(f"{where}: {key} file {value!r} does not exist. Fix the path or remove the key.")
    _check_against_store(cfg, where)
    return cfg


# ----------------------------------------------------------------------------- value checks
# Every value is checked here, when the file is loaded, so a wrong type or range
# is a ConfigError naming the key before anything is computed.

NULL_METHODS = (*SPIN_METHODS, "permutation")
DUPLICATE_GENES = ("error", "drop", "mean", "first")
CORRELATION_METHODS = ("pearson", "spearman")
BACKENDS = ("numpy", "jax", "cupy", "auto")


def _bad(where, key, expected, value, fix):
    return ConfigError(f"{where}: {key} must be {expected}; got {describe(value)}. {fix}")


def _string(where, key, value, example):
    if not isinstance(value, str) or not value:
        raise _bad(where, key, "a non-empty string", value, f"Write e.g. {key.split()[-1]} = {example}.")
    return value


def _choice(where, key, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise _bad(where, key, f"one of {', '.join(map(repr, choices))}", value,
                   f"Write e.g. {key.split()[-1]} = \"{choices[0]}\".")
    return value


def _integer(where, key, value, minimum, example):
    # TOML integers; an integral float (1e4) is accepted, a fraction is not truncated
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(where, key, f"an integer >= {minimum}", value, f"Write e.g. {key.split()[-1]} = {example}.")
    return value


def _boolean(where, key, value):
    if not isinstance(value, bool):
        raise _bad(where, key, "true or false", value, f"Write e.g. {key.split()[-1]} = false (no quotes).")
    return value


def _strings(where, key, value, *, count=None, example):
    """A list of distinct non-empty strings (exactly ``count`` when given)."""
    n = f"{count} " if count else ""
    expected = f"a list of {n}distinct names" if count else "a list of names"
    fix = f"Write e.g. {key.split()[-1]} = {example}."
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(where, key, expected, value, fix)
    if count is not None and len(value) != count:
        raise _bad(where, key, expected, value, fix)
    if len(set(value)) != len(value):
        dup = sorted({v for v in value if value.count(v) > 1})
        raise ConfigError(f"{where}: {key} must name distinct entries; got {value} ({', '.join(map(repr, dup))} "
                          f"twice), which would compare a set with itself. {fix}")
    return value


def _check_values(section, t, where):
    """Types and ranges of the keys of one (non-contrast) section, defaults filled."""
    k = f"[{section}]"

    def opt_str(key, example):
        if t.get(key) is not None:
            _string(where, f"{k} {key}", t[key], example)

    if section == "study":
        opt_str("name", '"ECT"')
        opt_str("store", '"cohort.h5"')
        opt_str("output", '"results"')
        if not isinstance(t.get("description"), str):
            raise _bad(where, f"{k} description", "a string", t.get("description"), 'Write e.g. description = "".')
    elif section == "coupling":
        _choice(where, f"{k} method", t["method"], COUPLING_METHODS)
        _choice(where, f"{k} edges", t["edges"], tuple(e for e in EDGE_SETS if e != "mask"))
        _choice(where, f"{k} level", t["level"], LEVELS)
        t["min_edges"] = _integer(where, f"{k} min_edges", t["min_edges"], 2, 3)
        _boolean(where, f"{k} symmetrize", t["symmetrize"])
        _boolean(where, f"{k} allow_negative", t["allow_negative"])
    elif section == "clinical":
        opt_str("score", '"hamd"')
        _string(where, f"{k} group", t["group"], '"patient"')
        _strings(where, f"{k} sessions", t["sessions"], count=2, example='["pre", "post"]')
        _choice(where, f"{k} change", t["change"], ("improvement", "difference"))
        _strings(where, f"{k} covariates", t["covariates"], example='["age"]')
        _choice(where, f"{k} method", t["method"], CORRELATION_METHODS)
        _choice(where, f"{k} regions", t["regions"], ("significant", "all"))
    elif section == "association":
        opt_str("target", '"post_vs_pre"')
        opt_str("expression", '"store"')
        _strings(where, f"{k} maps", t["maps"], example='["receptor.csv"]')
        _choice(where, f"{k} method", t["method"], CORRELATION_METHODS)
        t["pls_components"] = _integer(where, f"{k} pls_components", t["pls_components"], 1, 1)
        t["pls_bootstrap"] = _integer(where, f"{k} pls_bootstrap", t["pls_bootstrap"], 0, 1000)
        t["top_genes"] = _integer(where, f"{k} top_genes", t["top_genes"], 1, 20)
        _choice(where, f"{k} duplicate_genes", t["duplicate_genes"], DUPLICATE_GENES)
    elif section == "nulls":
        _choice(where, f"{k} method", t["method"], NULL_METHODS)
        t["n_perm"] = _integer(where, f"{k} n_perm", t["n_perm"], 1, 1000)
        t["seed"] = _integer(where, f"{k} seed", t["seed"], 0, 0)
        opt_str("file", '"spins.npy"')
        if t.get("file") and not str(t["file"]).lower().endswith((".npy", ".csv", ".tsv")):
            raise _bad(where, f"{k} file", "a .npy array (n_nulls, regions) or a CSV with one column per region",
                       t["file"], 'Write e.g. file = "spins.npy".')
    elif section == "regions":
        parc = t.get("parcellation")
        if isinstance(parc, str):
            parc = t["parcellation"] = [parc]
        if parc is not None:
            if not isinstance(parc, list) or len(parc) not in (1, 2) or not all(isinstance(v, str) and v for v in parc):
                raise _bad(where, f"{k} parcellation", "a list of the left and right parcellation files (or one file "
                           "for both)", t.get("parcellation"), 'Write e.g. parcellation = ["lh.aparc.annot", '
                           '"rh.aparc.annot"].')
        if t.get("sphere") is not None:
            _strings(where, f"{k} sphere", t["sphere"], count=2, example='["lh.sphere", "rh.sphere"]')
        opt_str("names", '"codes.csv"')
        opt_str("centroids", '"centroids.csv"')
        if t.get("centroids") and (parc or t.get("sphere")):
            raise ConfigError(f"{where}: [regions] takes centroids or parcellation + sphere, not both; got both. "
                              "Keep one source of region geometry.")
        if bool(parc) != bool(t.get("sphere")):
            given, need = ("parcellation", "sphere") if parc else ("sphere", "parcellation")
            raise ConfigError(f"{where}: [regions] {given} needs {need} too; got only {given}. Write both "
                              '(parcellation = ["lh.annot", "rh.annot"], sphere = ["lh.sphere", "rh.sphere"]).')
        if t.get("names") and not parc:
            raise ConfigError(f"{where}: [regions] names names the codes of a parcellation; got no parcellation. "
                              "Add parcellation and sphere, or remove names.")
    elif section == "permutation":
        t["n_perm"] = _integer(where, f"{k} n_perm", t["n_perm"], 1, 5000)
        t["seed"] = _integer(where, f"{k} seed", t["seed"], 0, 0)
        a = t["alpha"]
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < 1:
            raise _bad(where, f"{k} alpha", "a number between 0 and 1 (exclusive)", a,
                       "Write e.g. alpha = 0.05 (no quotes).")
        _choice(where, f"{k} precision", t["precision"], PRECISIONS)
    elif section == "enrichment":
        opt_str("gene_sets", '"gene_sets.gmt"')
        t["min_size"] = _integer(where, f"{k} min_size", t["min_size"], 1, 10)
        if t["max_size"] is None or (isinstance(t["max_size"], str) and t["max_size"].strip().lower() == "none"):
            t["max_size"] = None  # no upper bound (cell-type sets such as LAKE hold 50-1100 genes)
        elif isinstance(t["max_size"], str):
            raise _bad(where, f"{k} max_size", f'an integer >= min_size ({t["min_size"]}) or "none" (no upper '
                       "bound)", t["max_size"], 'Write e.g. max_size = 200, or max_size = "none".')
        else:
            t["max_size"] = _integer(where, f"{k} max_size", t["max_size"], t["min_size"], '200 (or "none")')
        _choice(where, f"{k} alternative", t["alternative"], ALTERNATIVES)
    elif section == "compute":
        _choice(where, f"{k} backend", t["backend"], BACKENDS)
        opt_str("scheduler", '"tcp://10.0.0.5:8786"')
        if t.get("chunk_size") is not None:
            t["chunk_size"] = _integer(where, f"{k} chunk_size", t["chunk_size"], 1, 8)
        if t.get("memory_limit") is not None:
            try:
                parse_memory(t["memory_limit"])
            except InputError:
                raise _bad(where, f"{k} memory_limit", "a size such as \"4GB\", a number of bytes or a fraction "
                           "of RAM in (0, 1]", t["memory_limit"], 'Write e.g. memory_limit = "4GB".') from None


def _check_contrast(c, i, where):
    """Types of one contrast's keys; its name becomes a file name (the safe-name rule)."""
    k = f"[[contrasts]] #{i + 1}"
    try:
        safe_name(c["name"], f"{k} name")
    except InputError as exc:
        raise ConfigError(f"{where}: {exc} It names the contrast's table (tables/<name>.csv).") from None
    k = f"[[contrasts]] {c['name']!r}"
    if c["type"] not in CONTRAST_TYPES:
        raise ConfigError(f"{where}: contrast {c['name']!r} has type {c['type']!r}; expected one of "
                          f"{', '.join(CONTRAST_TYPES)}.")
    if c.get("group") is not None:
        _string(where, f"{k} group", c["group"], '"patient"')
    if c.get("session") is not None:
        _string(where, f"{k} session", c["session"], '"pre"')
    if c.get("groups") is not None:
        _strings(where, f"{k} groups", c["groups"], count=2, example='["patient", "control"]')
    if c.get("sessions") is not None:
        _strings(where, f"{k} sessions", c["sessions"], count=2, example='["pre", "post"]')
    _strings(where, f"{k} covariates", c["covariates"], example='["age"]')


def _check_against_store(cfg, where):
    from .store import open as open_store

    with open_store(cfg["study"]["store"]) as st:
        scans = st.scans
    groups = set(map(str, scans["group"])) if "group" in scans else set()
    sessions = set(map(str, scans["session"])) if "session" in scans else set()
    for c in cfg["contrasts"]:
        named_groups = [g for g in ([c.get("group")] + list(c.get("groups") or [])) if g]
        named_sessions = [s for s in ([c.get("session")] + list(c.get("sessions") or [])) if s]
        for g in named_groups:
            if g not in groups:
                raise ConfigError(f"{where}: contrast {c['name']!r} names group {g!r}, absent from the store "
                                  f"(groups: {', '.join(sorted(groups)) or 'none'}).")
        for s in named_sessions:
            if s not in sessions:
                raise ConfigError(f"{where}: contrast {c['name']!r} names session {s!r}, absent from the store "
                                  f"(sessions: {', '.join(sorted(sessions)) or 'none'}).")
        if c["type"] == "paired" and (not c.get("group") or len(c.get("sessions") or []) != 2):
            raise ConfigError(f"{where}: paired contrast {c['name']!r} needs group = \"...\" and "
                              "sessions = [\"pre\", \"post\"].")
        if c["type"] == "two_sample" and (len(c.get("groups") or []) != 2 or not c.get("session")):
            raise ConfigError(f"{where}: two_sample contrast {c['name']!r} needs groups = [\"a\", \"b\"] and "
                              "session = \"...\".")
        if c["type"] == "group_by_time" and (len(c.get("groups") or []) != 2 or len(c.get("sessions") or []) != 2):
            raise ConfigError(f"{where}: group_by_time contrast {c['name']!r} needs groups = [\"a\", \"b\"] and "
                              "sessions = [\"pre\", \"post\"].")
        for cov in c.get("covariates") or []:
            if cov not in scans:
                raise ConfigError(f"{where}: contrast {c['name']!r} covariate {cov!r} is not a scans column "
                                  f"(columns: {', '.join(scans.columns)}).")
    clin = cfg["clinical"]
    if clin["_present"] and clin.get("score"):
        if clin["score"] not in scans:
            raise ConfigError(f"{where}: [clinical] score {clin['score']!r} is not a scans column "
                              f"(columns: {', '.join(scans.columns)}).")
        if clin["group"] not in groups:
            raise ConfigError(f"{where}: [clinical] group {clin['group']!r} is absent from the store (groups: "
                              f"{', '.join(sorted(groups)) or 'none'}). Set group = one of those.")
        for s in clin["sessions"]:
            if s not in sessions:
                raise ConfigError(f"{where}: [clinical] sessions names {s!r}, absent from the store (sessions: "
                                  f"{', '.join(sorted(sessions)) or 'none'}). Name two of those.")
        for cov in clin["covariates"]:
            if cov not in scans:
                raise ConfigError(f"{where}: [clinical] covariate {cov!r} is not a scans column "
                                  f"(columns: {', '.join(scans.columns)}).")
    target = cfg["association"].get("target")
    if target and target not in {c["name"] for c in cfg["contrasts"]}:
        raise ConfigError(f"{where}: [association] target {target!r} is not a contrast name "
                          f"({', '.join(c['name'] for c in cfg['contrasts']) or 'none defined'}).")


def write_config(path, cfg: dict) -> Path:
    """Write a config dict (as accepted by :func:`validate_config`) as TOML."""
    lines = []

    def fmt(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    for section, table in cfg.items():
        if section == "contrasts":
            for c in table:
                lines.append("[[contrasts]]")
                lines += [f"{k} = {fmt(v)}" for k, v in c.items() if v is not None and not k.startswith("_")]
                lines.append("")
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {fmt(v)}" for k, v in table.items() if v is not None and not k.startswith("_")]
        if section == "enrichment" and "max_size" in table and table["max_size"] is None:
            lines.append('max_size = "none"')  # no upper bound; TOML has no null
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines))
    return path


def run_study(config, *, output=None, progress=False, overwrite=False, log=print):
    """Run a study described by a TOML file (path) or a config dict.

    Parameters
    ----------
    config : str, Path or dict
    output : str or Path, optional
        Overrides ``[study] output``.
    overwrite : bool
        Recompute every step, ignoring completion markers.
    log : callable
        Receives one line per step (``print`` by default).

    Returns
    -------
    StudyResult
        Paths of the report and tables and the in-memory results of every step.
    """
    from .workflows.pipeline import execute

    cfg = load_config(config) if not isinstance(config, dict) else validate_config(config)
    if output is not None:
        cfg["study"]["output"] = str(output)
    return execute(cfg, progress=progress, overwrite=overwrite, log=log)
