"""Statements on a Django database connection, through Django's own cursor.

Django's cursor keeps its rules (no statement in a transaction already marked broken,
``execute_wrapper``s and query logging see the statement) and runs on the connection of
the current ``atomic()`` block: the job commits or rolls back with it.
"""

from __future__ import annotations

from typing import Any

import django.db

from graphile_worker_cli import db
from graphile_worker_cli.drivers import placeholders, rows
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.operations import Row, Statement


class DjangoExecutor:
    def __init__(self, conn: Any, schema: str) -> None:
        if conn.vendor != "postgresql":
            raise BadInputError(
                f"Django database {conn.alias!r} is {conn.vendor}: gw needs PostgreSQL"
            )
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
        except django.db.Error as error:
            raise db.translate_error(error, self._schema) from error

    def in_transaction(self) -> bool:
        """Inside ``atomic()``, or with autocommit turned off."""
        return bool(self._conn.in_atomic_block or not self._conn.get_autocommit())
