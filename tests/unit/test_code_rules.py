"""House rules checked on the package's source: no ``assert`` for runtime checks (``python
-O`` strips them, and a failed one is no clear error)."""

from __future__ import annotations

import ast
from pathlib import Path

import graphile_worker_cli

PACKAGE = Path(graphile_worker_cli.__file__).parent

ASSERTS_NOT_YET_REMOVED: frozenset[str] = frozenset()


def _asserts() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = [
            node.lineno for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Assert)
        ]
        if lines:
            found[path.relative_to(PACKAGE).as_posix()] = lines
    return found


def test_no_assert_in_the_package() -> None:
    found = _asserts()
    unexpected = {name: lines for name, lines in found.items()
                  if name not in ASSERTS_NOT_YET_REMOVED}
    assert unexpected == {}, "raise a clear error instead, or narrow the type another way"
    assert sorted(ASSERTS_NOT_YET_REMOVED - set(found)) == [], (
        "remove these from ASSERTS_NOT_YET_REMOVED"
    )
