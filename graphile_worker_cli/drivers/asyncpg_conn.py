"""Statements on an asyncpg connection (gw's own pool, or a caller's connection)."""

from __future__ import annotations

from typing import Any

import asyncpg

from graphile_worker_cli import db
from graphile_worker_cli.operations import Row, Statement


class AsyncpgExecutor:
    def __init__(self, conn: Any, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    @property
    def connection(self) -> Any:
        return self._conn

    async def fetch(self, statement: Statement) -> list[Row]:
        try:
            rows: list[Row] = await self._conn.fetch(statement.sql, *statement.args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            raise db.translate_error(error, self._schema) from error
        return rows
