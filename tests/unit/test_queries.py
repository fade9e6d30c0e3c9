"""The SQL convention (issue 13): every statement is a ``queries.Query`` constant in
``graphile_worker_cli/queries/``; no other module holds SQL text."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import graphile_worker_cli
from graphile_worker_cli import queries
from graphile_worker_cli.queries import Query

PACKAGE = Path(graphile_worker_cli.__file__).parent

# Modules still written the old way (functions that build SQL text), owned by work in
# progress elsewhere: the lead empties this list. A module fixed early must leave it (the
# test says so). worker/, recovery/, hooks/recovery.py and cli/ hold no SQL text already.
NOT_YET_CONVERTED: frozenset[str] = frozenset()

SQL = re.compile(
    r"""(?isx)
    \b(
        select\b.+\bfrom\b
      | insert\s+into\b
      | delete\s+from\b
      | update\s+\S+\s+set\b
      | (create|alter|drop)\s+(or\s+replace\s+)?(table|index|schema|function|database|type)\b
      | pg_notify\s*\(
      | pg_(try_)?advisory_\w*lock
      | on\s+conflict\b
      | returning\s+\S
    )
    """
)
"""Text that only SQL contains (prose in messages and docstrings does not)."""

EXECUTE_METHODS = frozenset({
    "execute", "executemany", "fetch", "fetchrow", "fetchval", "fetchall", "fetchone",
})


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _exempt(relative: str) -> bool:
    return relative in NOT_YET_CONVERTED


def _docstring_nodes(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            for statement in node.body:
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                    found.add(id(statement.value))
    # a string right after an assignment documents it (attribute docstrings)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for statement in body:
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                    found.add(id(statement.value))
    return found


def sql_in(source: str) -> list[tuple[int, str]]:
    """(line, excerpt) of each string literal holding SQL, and of each literal (or
    formatted) string passed straight to an execute/fetch method."""
    tree = ast.parse(source)
    docstrings = _docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and SQL.search(node.value)
        ):
            found.append((node.lineno, node.value.strip().splitlines()[0][:60]))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in EXECUTE_METHODS
            and node.args
            and isinstance(node.args[0], ast.Constant | ast.JoinedStr | ast.BinOp)
        ):
            found.append((node.lineno, f"a literal passed to {node.func.attr}()"))
    return found


def _package_modules(under: str | None = None) -> list[Path]:
    root = PACKAGE / under if under else PACKAGE
    return sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def test_the_scanner_sees_sql_and_ignores_prose() -> None:
    assert sql_in('conn.execute(f"drop schema {name} cascade")')
    assert sql_in('X = "select id from t where x = $1"')
    assert sql_in('await c.fetch("select 1")')
    assert not sql_in('"""Select a task from the list; update the settings."""')
    assert not sql_in('message = "listen on 127.0.0.1, or update it"')
    assert not sql_in("await conn.fetch(queries.GET_JOB.sql(schema), 1)")


def test_no_sql_outside_queries() -> None:
    offenders = []
    for path in _package_modules():
        relative = _relative(path)
        if relative.startswith("queries/") or _exempt(relative):
            continue
        offenders += [f"{relative}:{line}: {text}" for line, text in sql_in(path.read_text())]
    assert offenders == [], "SQL outside graphile_worker_cli/queries/:\n" + "\n".join(offenders)


def test_queries_modules_hold_statements_as_query_constants() -> None:
    """In queries/, SQL is a Query constant: no function returning SQL text, no bare
    string constant holding a statement (fragments composed into a Query are private)."""
    offenders = []
    for path in _package_modules("queries"):
        relative = _relative(path)
        if _exempt(relative):
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("_"):
                    continue
                if isinstance(node, ast.AsyncFunctionDef):
                    offenders.append(f"{relative}:{node.lineno}: async def {node.name} "
                                     "(running SQL belongs to the layer that owns it)")
                elif any(SQL.search(c.value) for c in ast.walk(node)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str)):
                    offenders.append(f"{relative}:{node.lineno}: def {node.name} builds SQL")
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                public = [name for name in names if not name.startswith("_")]
                is_query = isinstance(node.value, ast.Call) and getattr(
                    node.value.func, "id", None
                ) == "Query"
                if public and not is_query and any(
                    SQL.search(c.value) for c in ast.walk(node.value)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                ):
                    offenders.append(f"{relative}:{node.lineno}: {public[0]} is not a Query")
    assert offenders == [], "\n".join(offenders)


def test_the_allow_list_names_only_modules_that_still_need_it() -> None:
    """A module leaves NOT_YET_CONVERTED once it follows the convention."""
    clean = []
    for relative in sorted(NOT_YET_CONVERTED):
        path = PACKAGE / relative
        if not path.exists():
            clean.append(f"{relative} (gone)")
            continue
        tree = ast.parse(path.read_text())
        has_sql = bool(sql_in(path.read_text())) or any(
            isinstance(node, ast.FunctionDef) and node.name != "__init__" and any(
                SQL.search(c.value) for c in ast.walk(node)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
            for node in tree.body
        )
        if not has_sql:
            clean.append(relative)
    assert clean == [], f"remove from NOT_YET_CONVERTED: {clean}"


def _all_queries() -> list[tuple[str, str, Query]]:
    found = []
    for info in pkgutil.iter_modules(queries.__path__):
        module = importlib.import_module(f"graphile_worker_cli.queries.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Query):
                found.append((info.name, name, value))
    return found


ODD_SCHEMA = 'odd "schema" name'
QUOTED = '"odd ""schema"" name"'


@pytest.mark.parametrize(
    ("module", "name", "query"), _all_queries(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_query_renders_with_a_schema_that_needs_quoting(
    module: str, name: str, query: Query
) -> None:
    rendered = query.sql(ODD_SCHEMA)
    assert "{s}" not in rendered
    assert not re.search(r"\{[a-z_]+\}", rendered), f"{module}.{name}: a placeholder is left"
    if "{s}" in query.text:
        assert QUOTED in rendered
    assert ODD_SCHEMA not in rendered.replace(QUOTED, "")  # never unquoted
    assert query.name in ("", name), f"{module}.{name} is named {query.name!r}"
    assert rendered.strip(), f"{module}.{name} is empty"


def test_there_are_queries_to_check() -> None:
    modules = {module for module, _, _ in _all_queries()}
    assert {"jobs", "admin", "cron", "migrate", "metrics", "tracing", "testing"} <= modules
