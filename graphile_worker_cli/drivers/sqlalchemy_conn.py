"""Statements on a SQLAlchemy Connection or Session, sync or async.

Through ``exec_driver_sql``, not the DB-API connection underneath: that is what makes
SQLAlchemy begin its transaction (and, with asyncpg, issue the BEGIN it otherwise sends
only before its own first statement), so the job commits or rolls back with the
caller's work. Placeholders follow the dialect's paramstyle.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import sqlalchemy.exc
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection

from graphile_worker_cli import db
from graphile_worker_cli.drivers import placeholders, rows
from graphile_worker_cli.errors import DatabaseError
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

    def in_transaction(self) -> bool:
        # SQLAlchemy begins a transaction before the first statement, unless the
        # connection (or its engine) runs in AUTOCOMMIT isolation.
        connection: Connection = (
            self._conn if isinstance(self._conn, Connection) else self._conn.connection()
        )
        return not connection._is_autocommit_isolation()


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
        if statement.script and connection.dialect.driver == "asyncpg":
            await self._asyncpg_script(connection, statement.sql)
            return []
        sql, args = placeholders.for_paramstyle(statement, connection.dialect.paramstyle)
        try:
            result = (
                await connection.exec_driver_sql(sql) if args is None
                else await connection.exec_driver_sql(sql, args)
            )
            return _rows(result)
        except sqlalchemy.exc.DBAPIError as error:
            raise db.translate_error(error, self._schema) from error

    async def _asyncpg_script(self, connection: AsyncConnection, sql: str) -> None:
        """SQLAlchemy's asyncpg dialect prepares every statement, and a prepared statement
        holds one command: a script goes to the asyncpg connection underneath, inside the
        transaction SQLAlchemy began there for the statements before it."""
        raw = await connection.get_raw_connection()
        driver_connection: asyncpg.Connection = raw.driver_connection
        if not driver_connection.is_in_transaction():
            raise DatabaseError(
                "no transaction is open on the SQLAlchemy connection: a script would "
                "commit on its own"
            )
        try:
            await driver_connection.execute(sql)
        except asyncpg.PostgresError as error:
            raise db.translate_error(error, self._schema) from error

    async def in_transaction(self) -> bool:
        connection: AsyncConnection = (
            self._conn if isinstance(self._conn, AsyncConnection)
            else await self._conn.connection()
        )
        return not connection.sync_connection._is_autocommit_isolation()  # type: ignore[union-attr]
