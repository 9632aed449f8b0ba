"""Test modules never import each other: what several share lives in tests/support/ (or
tests/e2e/support.py), so moving or deleting a test never breaks another."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _test_modules_imported(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tests":
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found += [n for n in names if n.rsplit(".", 1)[-1].startswith("test_")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("tests.") and ".test_" in a.name]
    return found


def test_no_test_module_imports_another() -> None:
    offenders = {
        str(path.relative_to(TESTS)): imported
        for path in sorted(TESTS.rglob("*.py"))
        if (imported := _test_modules_imported(path))
    }
    assert not offenders, f"move the shared helpers into tests/support/: {offenders}"
