"""The package's rooms and their one rule: a lower room never imports an
upper one, and kernels never import a backend-specific library.

Rooms, lowest first: exceptions and validation (and the _arrays helper they
share with the engine) < kernels < host < engine and io (peers) < the public
API < workflows < cli. Every import in every module counts, at module level
or inside a function, except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import recouple

PACKAGE = Path(recouple.__file__).resolve().parent

RANK = {"bottom": 0, "kernels": 1, "host": 2, "engine": 3, "io": 3, "api": 4, "workflows": 5, "cli": 6}
BOTTOM = {"exceptions", "validation", "_arrays"}
API = {"coupling", "graph", "stats", "nulls", "permutation", "genes", "simulate", "store"}
# rc.study is the study workflow's public face (configuration + run_study): a workflow.
WORKFLOW_MODULES = {"study"}

# Backend-specific libraries and process state that kernels must not touch
# (kernels are array-API functions; NumPy fast paths behind is_numpy_namespace
# are allowed, SciPy's linear algebra and special functions too).
KERNEL_FORBIDDEN = ("jax", "cupy", "cupyx", "numba", "scipy.ndimage", "os", "dask", "h5py", "threading")

# Known exceptions, each being removed by work in progress elsewhere in the
# tree; delete an entry when its fix merges.
KNOWN_UPWARD: set = set()
KNOWN_KERNEL_LIBS: set = set()


def _room(module: str) -> str:
    """Room of a dotted module name relative to the package ("" = the package)."""
    head = module.split(".")[0] if module else ""
    if head in BOTTOM:
        return "bottom"
    if head in WORKFLOW_MODULES:
        return "workflows"
    if head in ("kernels", "host", "engine", "io", "workflows", "cli"):
        return head
    if head in API:
        return "api"
    if head in ("", "__init__", "__main__"):
        return "package"
    raise AssertionError(f"recouple.{module} belongs to no room; add it to tests/test_layers.py and docs/ARCHITECTURE.md")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield ".".join(parts), is_pkg, path


def _imports(name: str, is_pkg: bool, path: Path):
    """(line, absolute module) of every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    package = ["recouple"] + (name.split(".") if name else [])
    if not is_pkg:
        package = package[:-1]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield node.lineno, mod
            # `from .. import graph`, `from scipy import ndimage`: a name may be a module
            for alias in node.names:
                if not alias.name.startswith("__") and alias.name != "*":
                    yield node.lineno, f"{mod}.{alias.name}"


def _uses_os_environ(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and n.attr in ("environ", "getenv")
            and isinstance(n.value, ast.Name) and n.value.id == "os"]


def _known(name: str, target: str, table) -> bool:
    """``(module, library)`` entries cover the library and its submodules."""
    return any(name == n and (target == t or target.startswith(t + ".")) for n, t in table)


MODULES = list(_modules())


def test_every_module_has_a_room():
    for name, _, _ in MODULES:
        _room(name)


def test_lower_rooms_never_import_upper_ones():
    bad = []
    for name, is_pkg, path in MODULES:
        room = _room(name)
        if room == "package":
            continue
        for line, target in _imports(name, is_pkg, path):
            if target != "recouple" and not target.startswith("recouple."):
                continue
            rel = target[len("recouple."):] if target != "recouple" else ""
            other = _room(rel.split(".")[0] if rel else rel)
            if other == "package":
                # `from .. import __version__` reads the package's version string only
                continue
            if RANK[other] > RANK[room] and not _known(name, target, KNOWN_UPWARD):
                bad.append(f"recouple/{path.relative_to(PACKAGE)}:{line} ({room}) imports {target} ({other})")
    assert not bad, "lower room imports an upper one:\n" + "\n".join(bad)


def test_kernels_import_no_backend_specific_library():
    bad = []
    for name, is_pkg, path in MODULES:
        if _room(name) != "kernels":
            continue
        for line, target in _imports(name, is_pkg, path):
            for lib in KERNEL_FORBIDDEN:
                if (target == lib or target.startswith(lib + ".")) and not _known(name, target, KNOWN_KERNEL_LIBS):
                    bad.append(f"recouple/{path.relative_to(PACKAGE)}:{line} imports {target}")
        bad += [f"recouple/{path.relative_to(PACKAGE)}:{line} reads os.environ" for line in _uses_os_environ(path)]
    assert not bad, "kernels must be pure array-API code:\n" + "\n".join(bad)


def test_known_exceptions_are_still_needed():
    # an exception whose import is gone must be deleted from the lists above
    seen = set()
    for name, is_pkg, path in MODULES:
        for _, target in _imports(name, is_pkg, path):
            seen.add((name, target))
    stale = sorted(e for e in KNOWN_UPWARD | KNOWN_KERNEL_LIBS if not any(_known(n, t, [e]) for n, t in seen))
    assert not stale, f"remove these entries from tests/test_layers.py: {stale}"


@pytest.mark.parametrize("source, room", [
    ("import jax\n", "kernels"),
    ("from scipy import ndimage\n", "kernels"),
    ("import os\nx = os.environ.get('A')\n", "kernels"),
])
def test_the_checks_catch_a_violation(tmp_path, source, room):
    path = tmp_path / "mod.py"
    path.write_text(source)
    found = [t for _, t in _imports("kernels.mod", False, path)]
    hits = [t for t in found if any(t == lib or t.startswith(lib + ".") for lib in KERNEL_FORBIDDEN)]
    assert hits or _uses_os_environ(path)


def test_the_upward_check_catches_a_violation(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("from ..engine.dispatch import call_kernel\nfrom .. import graph\n")
    targets = [t for _, t in _imports("kernels.mod", False, path)]
    assert targets == ["recouple.engine.dispatch", "recouple.engine.dispatch.call_kernel", "recouple",
                       "recouple.graph"]
    targets = [t for t in targets if t != "recouple"]
    assert all(RANK[_room(t[len("recouple."):])] > RANK["kernels"] for t in targets)
