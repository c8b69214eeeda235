"""The package's layering: a module reaches only downward, so no import runs from a lower layer back up.

A static check over the source files (every ``import`` and ``from ... import`` anywhere in a module, also
inside functions), so an import that runs back up fails here even when no test executes it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "rebalance_hca"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent / PACKAGE

FORBIDDEN_IMPORTS = [
    ("modeling", "engine"),
    ("evaluation", "modeling"),
    ("data", "engine"),
]
"""(importing subpackage, imported subpackage) pairs that must never occur."""


def module_name(path: Path, package_root: Path) -> str:
    """Dotted name of a source file under ``package_root`` (``rebalance_hca/modeling/build.py`` →
    ``rebalance_hca.modeling.build``; a package's ``__init__.py`` is the package)."""
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, package_root: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every module the file under ``package_root`` imports; relative imports
    are resolved against the file's package, and ``from X import name`` also counts ``X.name`` (it may be a
    submodule)."""
    name = module_name(path, package_root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_import_resolution_sees_relative_and_absolute_imports(tmp_path):
    source = tmp_path / PACKAGE / "modeling" / "detector" / "build.py"
    source.parent.mkdir(parents=True)
    source.write_text("import os\nfrom ...engine.checkpoint import x\nfrom .. import weights\n"
                      "def f():\n    import rebalance_hca.engine.trainer\n", encoding="utf-8")
    assert imported_modules(source, tmp_path / PACKAGE) == [
        (1, "os"), (2, "rebalance_hca.engine.checkpoint"), (2, "rebalance_hca.engine.checkpoint.x"),
        (3, "rebalance_hca.modeling"), (3, "rebalance_hca.modeling.weights"), (5, "rebalance_hca.engine.trainer")]


@pytest.mark.parametrize("importer, imported", FORBIDDEN_IMPORTS, ids=[f"{a}-not-{b}" for a, b in FORBIDDEN_IMPORTS])
def test_no_import_runs_back_up(importer, imported):
    sources = sorted((PACKAGE_ROOT / importer).rglob("*.py"))
    assert sources, f"no source files under {PACKAGE_ROOT / importer}"
    offending = [f"{path.relative_to(PACKAGE_ROOT.parent)}:{line} imports {module}"
                 for path in sources for line, module in imported_modules(path, PACKAGE_ROOT)
                 if is_within(module, f"{PACKAGE}.{imported}")]
    assert not offending, f"{PACKAGE}.{importer} must not import {PACKAGE}.{imported}:\n" + "\n".join(offending)
