"""The layering rules of ../shared/DESIGN.md as executable contracts.

Every import statement of the package is read with `ast` (top-level and function-local alike) and
resolved to an absolute module name; each rule lists what a layer may not import. The modules every
layer may share are named explicitly in SHARED. A violation names the file, line and import.
"""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("console", "backends", "screens", "config")

# Shared by every layer: the error tree and the model's plain types (frozen dataclasses, ids).
SHARED = {"virtdeck.console.errors", "virtdeck.console.model"}

# (what, where (module prefix), forbidden import prefixes, allowed exceptions)
RULES = [
    ("backends never import textual, screens or console (other than SHARED)",
     "virtdeck.backends", ("textual", "virtdeck.screens", "virtdeck.console"), SHARED),
    ("config never imports textual, screens, backends or console (other than SHARED)",
     "virtdeck.config", ("textual", "virtdeck.screens", "virtdeck.backends", "virtdeck.console"), SHARED),
    ("screens never import libvirt, ovsdbapp or asyncssh",
     "virtdeck.screens", ("libvirt", "libvirtaio", "ovsdbapp", "ovs", "asyncssh"), set()),
    ("services never import libvirt, ovsdbapp, textual or screens",
     "virtdeck.console.services", ("libvirt", "libvirtaio", "ovsdbapp", "ovs", "textual",
                                   "virtdeck.screens"), set()),
    ("the domain model and errors import no backend library and no UI",
     "virtdeck.console.model", ("libvirt", "ovsdbapp", "asyncssh", "textual", "virtdeck.screens",
                                "virtdeck.backends"), set()),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "virtdeck." + ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports, absolute: [(line, 'virtdeck.backends.ssh'), …]."""
    mod = module_name(path)
    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import storage` imports a module: name it, so rules see submodules.
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return out


def sources():
    for layer in LAYERS:
        yield from sorted((ROOT / layer).rglob("*.py"))


def violations(rules=RULES, files=None) -> list[str]:
    found = []
    for path in files or sources():
        mod = module_name(path)
        for line, target in imports(path):
            for what, where, forbidden, allowed in rules:
                if not (mod == where or mod.startswith(where + ".")):
                    continue
                if any(target == a or target.startswith(a + ".") for a in allowed):
                    continue
                if any(target == f or target.startswith(f + ".") for f in forbidden):
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {target} ({what})")
    return found


def test_layering_contracts_hold():
    assert violations() == []


def test_no_bare_top_level_imports():
    """Inside the package every import of our own code is relative (one spelling: virtdeck.*)."""
    bad = [f"{p.relative_to(ROOT)}:{line} imports {t}" for p in sources()
           for line, t in imports(p) if t.split(".")[0] in LAYERS]
    assert bad == []


def test_contract_catches_a_violation(tmp_path):
    """The checker itself fails on a deliberate violation (a service importing libvirt)."""
    fake = ROOT / "console" / "services" / "_layering_probe.py"
    fake.write_text("import libvirt\nfrom ...screens import main\n")
    try:
        found = violations(files=[fake])
    finally:
        fake.unlink()
    assert len(found) == 2 and "imports libvirt" in found[0] and "virtdeck.screens.main" in found[1]


def test_every_package_is_installed_under_virtdeck():
    """pyproject's package list covers every folder with an __init__.py, mapped under virtdeck."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {module_name(p) for layer in LAYERS for p in (ROOT / layer).rglob("__init__.py")}
    assert on_disk == listed
    assert set(cfg["package-dir"]) == {f"virtdeck.{layer}" for layer in LAYERS}


def test_tests_import_no_other_test_module():
    """Shared fixtures and helpers live in conftest or helper modules, not in test_*.py."""
    bad = []
    for p in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{p.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                    if n.split(".")[-1].startswith("test_")]
    assert bad == []


@pytest.mark.parametrize("layer", LAYERS)
def test_bare_layer_names_are_not_importable_from_site_packages(layer):
    """Only `virtdeck` is installed: a bare `config`/`console` would clash with PyPI packages."""
    import importlib.util
    import sys
    saved = sys.path[:]
    try:
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "tests")]
        assert importlib.util.find_spec(layer) is None or "site-packages" not in str(
            importlib.util.find_spec(layer).origin or "")
    finally:
        sys.path[:] = saved
