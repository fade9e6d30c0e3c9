"""Statements on an asyncpg connection (gw's own pool, or a caller's connection)."""

from __future__ import annotations

from typing import Any, TypeVar

import asyncpg

from graphile_worker_cli import db
from graphile_worker_cli.operations import Operation, Row, Statement

T = TypeVar("T")


class AsyncpgExecutor:
    def __init__(self, conn: Any, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    @property
    def connection(self) -> Any:
        return self._conn

    async def fetch(self, statement: Statement) -> list[Row]:
        try:
            if statement.script:
                await self._conn.execute(statement.sql)
                return []
            rows: list[Row] = await self._conn.fetch(statement.sql, *statement.args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            raise db.translate_error(error, self._schema) from error
        return rows

    async def in_transaction(self) -> bool:
        # asyncpg has no implicit transaction: each statement outside one commits.
        return bool(self._conn.is_in_transaction())


async def run_raw(conn: Any, operation: Operation[T]) -> T:
    """Run ``operation`` on an asyncpg connection, its errors left as asyncpg raised them
    (for code of gw's own that handles asyncpg's errors itself)."""
    try:
        statement = next(operation)
        while True:
            if statement.script:
                await conn.execute(statement.sql)
                rows: list[Row] = []
            else:
                rows = await conn.fetch(statement.sql, *statement.args)
            statement = operation.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result
