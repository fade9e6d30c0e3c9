"""Throwaway databases on the test server (the plumbing behind tests/conftest.py's fixtures)
and small queries that tests of several tiers share."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from graphile_worker_cli import config

DEFAULT_LOCAL_URL = "postgres://postgres@127.0.0.1:5432/postgres"
SCHEMA = "graphile_worker"
SECRETS = ("Sup3r", "Secr3t", "Sup3r#Secr3t", "Sup3r?Secr3t", "Sup3r/Secr3t")
"""Pieces of the passwords the redaction tests put in connection strings: none may be shown."""


def local_server_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def libpq_variables(url: str) -> dict[str, str]:
    """The PG* variables that name the server and database of ``url``, as libpq reads them."""
    parts = urlsplit(url)
    return {
        "PGHOST": parts.hostname or "", "PGPORT": str(parts.port or 5432),
        "PGUSER": parts.username or "", "PGDATABASE": parts.path.lstrip("/"),
    }


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def listening(conn: asyncpg.Connection, application_name: str | None = None) -> bool:
    """Whether a session of this database (of that application, if named) waits on LISTEN
    for new jobs."""
    count: int = await conn.fetchval(
        "select count(*) from pg_stat_activity where datname = current_database() "
        "and state = 'idle' and query like 'LISTEN %jobs:insert%' "
        "and ($1::text is null or application_name = $1)",
        application_name,
    )
    return count > 0


async def count(conn: asyncpg.Connection, sql: str) -> int:
    """The number a ``select count(*) ...`` returns."""
    value: int = await conn.fetchval(sql)
    return value


def settings_without_url(data_dir: Path) -> config.Settings:
    """Settings that name no database: gw starts an embedded server in ``data_dir``."""
    return config.Settings(database_url=None, embedded_data_dir=data_dir)
