"""gw writes SQL with asyncpg's ``$1..$n`` placeholders; other drivers want ``%s``."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from graphile_worker_cli.operations import Statement

_DOLLAR = re.compile(r"\$(\d+)")


@lru_cache(maxsize=512)
def _format_style(sql: str) -> tuple[str, tuple[int, ...]]:
    """``sql`` with each ``$n`` as ``%s`` and literal ``%`` doubled, and the argument
    index each ``%s`` takes (a ``$n`` used twice takes its argument twice)."""
    order: list[int] = []

    def placeholder(match: re.Match[str]) -> str:
        order.append(int(match.group(1)) - 1)
        return "%s"

    return _DOLLAR.sub(placeholder, sql.replace("%", "%%")), tuple(order)


def format_style(statement: Statement) -> tuple[str, tuple[Any, ...] | None]:
    """SQL and arguments for a DB-API driver of paramstyle ``format``/``pyformat``
    (psycopg, psycopg2, Django). No arguments: the SQL as it is and None, so the driver
    reads no placeholder at all."""
    if not statement.args:
        return statement.sql, None
    sql, order = _format_style(statement.sql)
    args = statement.args
    return sql, tuple(args[at] for at in order)


def for_paramstyle(statement: Statement, paramstyle: str) -> tuple[str, tuple[Any, ...] | None]:
    """SQL and arguments in a DB-API ``paramstyle`` (SQLAlchemy tells its dialect's)."""
    if paramstyle in ("format", "pyformat"):
        return format_style(statement)
    if paramstyle == "numeric_dollar":
        return statement.sql, statement.args or None
    raise ValueError(f"unsupported paramstyle {paramstyle!r}")
