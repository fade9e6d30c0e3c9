"""Statements on a SQLAlchemy Connection or Session, sync or async.

Through ``exec_driver_sql``, not the DB-API connection underneath: that is what makes
SQLAlchemy begin its transaction (and, with asyncpg, issue the BEGIN it otherwise sends
only before its own first statement), so the job commits or rolls back with the
caller's work. Placeholders follow the dialect's paramstyle.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy.exc
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection

from graphile_worker_cli import db
from graphile_worker_cli.drivers import placeholders, rows
from graphile_worker_cli.operations import Row, Statement


def _rows(result: CursorResult[Any]) -> list[Row]:
    if not result.returns_rows:
        return []
    return list(rows.records(list(result.keys()), result.all()))


class SqlalchemyExecutor:
    """``conn``: a Connection, or a Session (or scoped_session) whose connection is used."""

    def __init__(self, conn: Any, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    @property
    def connection(self) -> Any:
        return self._conn

    def fetch(self, statement: Statement) -> list[Row]:
        connection: Connection = (
            self._conn if isinstance(self._conn, Connection) else self._conn.connection()
        )
        sql, args = placeholders.for_paramstyle(statement, connection.dialect.paramstyle)
        try:
            result = (
                connection.exec_driver_sql(sql) if args is None
                else connection.exec_driver_sql(sql, args)
            )
            return _rows(result)
        except sqlalchemy.exc.DBAPIError as error:
            raise db.translate_error(error, self._schema) from error


class SqlalchemyAsyncExecutor:
    """``conn``: an AsyncConnection, or an AsyncSession (or async_scoped_session)."""

    def __init__(self, conn: Any, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    @property
    def connection(self) -> Any:
        return self._conn

    async def fetch(self, statement: Statement) -> list[Row]:
        connection: AsyncConnection = (
            self._conn if isinstance(self._conn, AsyncConnection)
            else await self._conn.connection()
        )
        sql, args = placeholders.for_paramstyle(statement, connection.dialect.paramstyle)
        try:
            result = (
                await connection.exec_driver_sql(sql) if args is None
                else await connection.exec_driver_sql(sql, args)
            )
            return _rows(result)
        except sqlalchemy.exc.DBAPIError as error:
            raise db.translate_error(error, self._schema) from error
