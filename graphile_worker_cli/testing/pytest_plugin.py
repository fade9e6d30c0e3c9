"""pytest fixtures for testing gw tasks. Enable with ``-p graphile_worker_cli.testing.
pytest_plugin`` or ``pytest_plugins = ["graphile_worker_cli.testing.pytest_plugin"]`` in
your top-level conftest.py.

- ``gw_database_url``: a fresh database with gw's schema, per test, cloned from a template
  migrated once per session and dropped afterwards. Server: ``--gw-database-url`` or the
  ``GW_TEST_DATABASE_URL`` environment variable (a URL to a database of a server where
  you may create databases), else an embedded PostgreSQL (the ``embedded`` extra).
- ``gw_utils``: a ``SyncWorkerUtils`` on it (its pool closed after the test).
- ``gw_run_jobs``: ``gw_run_jobs(tasks)`` runs what is queued in that database until
  idle and returns the outcomes (``testing.run_jobs_until_idle_sync``).

The fixtures are synchronous, so they serve sync and async tests alike.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from graphile_worker_cli import sync
from graphile_worker_cli.testing import databases, runner

URL_OPTION = "--gw-database-url"
URL_ENV = "GW_TEST_DATABASE_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        URL_OPTION, default=None,
        help=f"PostgreSQL URL for gw's test databases (default: ${URL_ENV}, else an "
        "embedded server)",
    )


@pytest.fixture(scope="session")
def gw_server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL to a maintenance database of the server the test databases are made on."""
    explicit = request.config.getoption(URL_OPTION) or os.environ.get(URL_ENV)
    if explicit:
        yield str(explicit)
        return
    from graphile_worker_cli import embedded

    data_dir = Path(tempfile.mkdtemp(prefix="gw-test-pg-")) / "pgdata"
    data_dir.parent.chmod(0o755)  # the server may run as another user (as root)
    url = embedded.start(data_dir)
    try:
        yield url
    finally:
        embedded.stop(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def gw_template_database(gw_server_url: str) -> Iterator[str]:
    """A database gw migrated once for the session: each test's database is its clone."""
    url = asyncio.run(databases.create_migrated_database(gw_server_url))
    try:
        yield url
    finally:
        asyncio.run(databases.drop_database(gw_server_url, url))


@pytest.fixture
def gw_database_url(gw_server_url: str, gw_template_database: str) -> Iterator[str]:
    template = urlsplit(gw_template_database).path.lstrip("/")
    url = asyncio.run(databases.create_migrated_database(gw_server_url, template=template))
    try:
        yield url
    finally:
        asyncio.run(databases.drop_database(gw_server_url, url))


@pytest.fixture
def gw_utils(gw_database_url: str) -> Iterator[sync.SyncWorkerUtils]:
    with sync.SyncWorkerUtils.connect(gw_database_url, max_size=2) as utils:
        yield utils


@pytest.fixture
def gw_run_jobs(gw_database_url: str) -> Callable[..., list[runner.JobOutcome]]:
    def run(task_set: Iterable[Any], **options: Any) -> list[runner.JobOutcome]:
        return runner.run_jobs_until_idle_sync(gw_database_url, task_set, **options)

    return run
