"""The test bed: test tiers by folder, and a real PostgreSQL for every database test.

Tiers (docs/contributing.md): tests/unit (no database, no process, no network: its
conftest refuses them), tests/integration (PostgreSQL, in-process), tests/acceptance (``gw``
and other processes), tests/interop (the Node.js reference), tests/browser (chromium). Each
test is marked with its tier's name, so ``-m "not interop and not browser"`` runs every
test that needs neither Node.js nor chromium; a test outside these folders, or marked
``interop`` outside tests/interop, is a collection error.

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
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli import embedded, migrate
from tests.helpers.connection_kinds import KINDS, Opener
from tests.helpers.database import (
    DEFAULT_LOCAL_URL,
    SCHEMA,
    create_database,
    drop_database,
    local_server_answers,
    unique_name,
)
from tests.helpers.faults import RUNS_TABLE
from tests.helpers.recovery import ensure_registry
from tests.helpers.tls_cluster import make_certificates, tls_cluster

TIERS = ("unit", "integration", "acceptance", "interop", "browser")
TESTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.resolve().relative_to(TESTS_DIR).parts[0]
        if tier not in TIERS:
            folders = ", ".join(f"tests/{name}" for name in TIERS)
            raise pytest.UsageError(f"{item.nodeid}: a test lives in one of {folders}")
        if item.get_closest_marker("interop") and tier != "interop":
            raise pytest.UsageError(f"{item.nodeid}: an interop test belongs in tests/interop")
        item.add_marker(tier)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A URL to a maintenance database on a server where we may create databases."""
    explicit = os.environ.get("GW_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if local_server_answers() and not os.environ.get("GW_TEST_EMBEDDED"):
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


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GW_ variables from the outside, and a working directory without worker.toml."""
    for name in list(os.environ):
        if name.startswith("GW_") or name in ("DATABASE_URL", "GRAPHILE_WORKER_SCHEMA"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def rconn(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """``conn`` on a database that has gw's worker registry (the recovery tests)."""
    await ensure_registry(conn)
    yield conn


@pytest.fixture
async def fconn(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """``conn`` on a database with the table the fault tests' task records its runs in."""
    await conn.execute(RUNS_TABLE)
    yield conn


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> Opener:
    """Each kind of caller connection in turn (the driver tests)."""
    opener: Opener = KINDS[request.param]
    return opener


@pytest.fixture
async def observer(conn: asyncpg.Connection) -> asyncpg.Connection:
    """The test's own view of the database, with the application's table."""
    await conn.execute("create table orders (id serial primary key, note text not null)")
    return conn


@pytest.fixture(scope="session")
def tls_certificates() -> Iterator[Path]:
    """A folder with a certificate authority and a server certificate it signed."""
    folder = Path(tempfile.mkdtemp(prefix="gw-tls-files-"))
    folder.chmod(0o755)
    try:
        make_certificates(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_port(tls_certificates: Path) -> Iterator[int]:
    """The port of a throwaway cluster that requires TLS (the TLS connection tests)."""
    with tls_cluster(tls_certificates) as port:
        yield port
