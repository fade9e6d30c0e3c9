"""A connection for the ``gw workers`` commands: to a schema that has gw's registry, with
database problems turned into one-line errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from graphile_worker_cli import db
from graphile_worker_cli.errors import BadInputError, DatabaseError
from graphile_worker_cli.recovery import registry


@asynccontextmanager
async def registry_connection(
    url: str, schema: str, *, prepared_statements: bool = True
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to ``url`` whose ``schema`` is migrated and has the worker registry."""
    async with db.connection(url, **db.statement_cache(prepared_statements)) as conn:
        state = await registry.schema_state(conn, schema)
        if not state.migrated:
            raise BadInputError(
                f"schema {schema!r} has no Graphile Worker tables: "
                "check --schema, or run `gw migrate`"
            )
        if not state.has_registry:
            raise DatabaseError(
                f"schema {schema!r} has no gw worker registry (_gw_workers): "
                "run `gw migrate` to add it"
            )
        try:
            yield conn
        except asyncpg.PostgresError as error:
            raise DatabaseError(f"database error: {error}") from error
