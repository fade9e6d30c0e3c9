"""Statements on a psycopg2 connection, in the caller's transaction.

The connection's own cursor factory is used (a caller's logging or dict cursor keeps
working); dict rows are read back in column order.
"""

from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.extensions

from graphile_worker_cli import db
from graphile_worker_cli.drivers import placeholders, rows
from graphile_worker_cli.operations import Row, Statement


class Psycopg2Executor:
    def __init__(self, conn: Any, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    @property
    def connection(self) -> Any:
        return self._conn

    def fetch(self, statement: Statement) -> list[Row]:
        sql, args = placeholders.format_style(statement)
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(sql, args)
                if cursor.description is None:
                    return []
                columns = [column[0] for column in cursor.description]
                return list(rows.records(columns, cursor.fetchall()))
        except psycopg2.Error as error:
            raise db.translate_error(error, self._schema) from error

    def in_transaction(self) -> bool:
        idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
        return not self._conn.autocommit or self._conn.get_transaction_status() != idle
