"""Statements on a psycopg 3 connection, sync or async, in the caller's transaction.

A cursor of our own with plain tuple rows (whatever row factory the connection has);
the connection's cursor factory still applies, so a caller's logging cursor sees them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from graphile_worker_cli import db
from graphile_worker_cli.drivers import placeholders, rows
from graphile_worker_cli.operations import Row, Statement


class PsycopgExecutor:
    def __init__(self, conn: psycopg.Connection[Any], schema: str) -> None:
        self._conn = conn
        self._schema = schema

    @property
    def connection(self) -> Any:
        return self._conn

    def fetch(self, statement: Statement) -> list[Row]:
        sql, args = placeholders.format_style(statement)
        try:
            with self._conn.cursor(row_factory=tuple_row) as cursor:
                cursor.execute(sql, args)
                if cursor.description is None:
                    return []
                columns = [column.name for column in cursor.description]
                return list(rows.records(columns, cursor.fetchall()))
        except psycopg.Error as error:
            raise db.translate_error(error, self._schema) from error

    def in_transaction(self) -> bool:
        return _in_transaction(self._conn)


def _in_transaction(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Not in autocommit mode (the first statement begins a transaction), or in autocommit
    mode inside ``conn.transaction()``."""
    return not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE


class PsycopgAsyncExecutor:
    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str) -> None:
        self._conn = conn
        self._schema = schema

    @property
    def connection(self) -> Any:
        return self._conn

    async def fetch(self, statement: Statement) -> list[Row]:
        sql, args = placeholders.format_style(statement)
        try:
            async with self._conn.cursor(row_factory=tuple_row) as cursor:
                await cursor.execute(sql, args)
                if cursor.description is None:
                    return []
                columns = [column.name for column in cursor.description]
                return list(rows.records(columns, await cursor.fetchall()))
        except psycopg.Error as error:
            raise db.translate_error(error, self._schema) from error

    async def in_transaction(self) -> bool:
        return _in_transaction(self._conn)
