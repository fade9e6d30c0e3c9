"""The test bed: a real PostgreSQL for every database test.

Server: ``GW_TEST_DATABASE_URL`` if set, else the local server at 127.0.0.1:5432 if it
answers, else an embedded pgserver instance (``GW_TEST_EMBEDDED=1`` forces that one).
Each test that asks for ``db_url`` gets its own database cloned from a template that gw
migrated once per session, and dropped afterwards.
``empty_db_url`` gives a database with nothing in it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from graphile_worker_cli import embedded, migrate

DEFAULT_LOCAL_URL = "postgres://postgres@127.0.0.1:5432/postgres"
SCHEMA = "graphile_worker"


def _local_server_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A URL to a maintenance database on a server where we may create databases."""
    explicit = os.environ.get("GW_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if _local_server_answers() and not os.environ.get("GW_TEST_EMBEDDED"):
        yield DEFAULT_LOCAL_URL
        return
    # No server here: start an embedded one (the [dev] extra installs pgserver). Its data
    # dir must not be under pytest's 0700 tmp folder: as root, pgserver runs PostgreSQL as
    # another user that needs to reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="gw-test-pg-")) / "pgdata"
    data_dir.parent.chmod(0o755)
    url = embedded.start(data_dir)
    try:
        yield url
    finally:
        embedded.stop(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


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


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url: str) -> Iterator[str]:
    """The name of a template database that gw migrated once for this session."""
    name = unique_name("gw_tpl")

    async def build() -> None:
        url = await create_database(pg_admin_url, name)
        conn = await asyncpg.connect(url)
        try:
            await migrate.migrate(conn, SCHEMA)
        finally:
            await conn.close()

    asyncio.run(build())
    try:
        yield name
    finally:
        asyncio.run(drop_database(pg_admin_url, name))


@pytest.fixture
async def db_url(pg_admin_url: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh database with the Graphile Worker schema already migrated by gw."""
    name = unique_name("gw_test")
    url = await create_database(pg_admin_url, name, template=migrated_template)
    try:
        yield url
    finally:
        await drop_database(pg_admin_url, name)


@pytest.fixture
async def empty_db_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh database with nothing in it."""
    name = unique_name("gw_empty")
    url = await create_database(pg_admin_url, name)
    try:
        yield url
    finally:
        await drop_database(pg_admin_url, name)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a migrated per-test database."""
    connection = await asyncpg.connect(db_url)
    try:
        yield connection
    finally:
        await connection.close()


REPO_ROOT = Path(__file__).resolve().parent.parent
