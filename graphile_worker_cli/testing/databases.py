"""Throwaway, migrated databases and schemas for tests, on a real PostgreSQL server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

from graphile_worker_cli import db, migrate
from graphile_worker_cli.queries import testing as queries


def with_database(url: str, database: str) -> str:
    """The same server URL, pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


async def create_migrated_database(admin_url: str, *, template: str | None = None) -> str:
    """A new database (cloned from ``template``, or migrated by gw); its URL."""
    name = f"gw_test_{secrets.token_hex(6)}"
    conn = await db.connect(admin_url)
    try:
        statement = await conn.fetchval(
            queries.CREATE_DATABASE_STATEMENT.sql(db.DEFAULT_SCHEMA), name, template
        )
        await conn.execute(statement)
    finally:
        await conn.close()
    url = with_database(admin_url, name)
    if template is None:
        conn = await db.connect(url)
        try:
            await migrate.migrate(conn, db.DEFAULT_SCHEMA)
        finally:
            await conn.close()
    return url


async def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await db.connect(admin_url)
    try:
        statement = await conn.fetchval(
            queries.DROP_DATABASE_STATEMENT.sql(db.DEFAULT_SCHEMA), name
        )
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def throwaway_database(admin_url: str) -> AsyncIterator[str]:
    """A new database with gw's schema migrated, dropped on exit. ``admin_url``: any
    database of a server where this role may create databases (e.g. ``postgres``)."""
    url = await create_migrated_database(admin_url)
    try:
        yield url
    finally:
        await drop_database(admin_url, url)


@asynccontextmanager
async def throwaway_schema(url: str, prefix: str = "gw_test") -> AsyncIterator[str]:
    """A new gw schema migrated in the database at ``url`` (yours, e.g. the one your
    framework made for the tests), dropped on exit; yields its name: pass it as
    ``schema=`` to WorkerUtils and run_jobs_until_idle."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    conn = await db.connect(url)
    try:
        await migrate.migrate(conn, schema)
        yield schema
    finally:
        await conn.execute(queries.DROP_SCHEMA.sql(schema))
        await conn.close()
