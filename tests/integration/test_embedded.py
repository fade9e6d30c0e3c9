"""The embedded PostgreSQL server: started when no URL is configured, stopped on exit."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphile_worker_cli import conninfo, db, embedded
from tests.helpers.database import settings_without_url


@pytest.fixture(autouse=True)
def no_libpq_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PG* variable would name a server, and the embedded one would not start."""
    for name in conninfo.LIBPQ_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A directory for a data dir, outside pytest's tmp root.

    As root, PostgreSQL runs as another user that must reach the data dir; pytest (any
    session on the machine) resets its own tmp root to mode 0700 at start, which could lock
    that user out mid-test.
    """
    path = Path(tempfile.mkdtemp(prefix="gw-embedded-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def postmaster_running(data_dir: Path) -> bool:
    return (data_dir / "postmaster.pid").exists()


async def test_no_url_starts_an_embedded_server_that_is_stopped_on_exit(
    data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = data_root / "state" / "pgdata"  # the parent does not exist yet
    caplog.set_level(logging.INFO, logger="gw.embedded")
    async with embedded.database_url(settings_without_url(data_dir)) as url:
        assert postmaster_running(data_dir)
        conn = await db.connect(url)
        try:
            assert await conn.fetchval("select 1 + 1") == 2
            assert await conn.fetchval("select current_setting('data_directory')") == str(
                data_dir.resolve()
            )
        finally:
            await conn.close()
        # A nested user of the same directory shares the server and does not stop it.
        async with embedded.database_url(settings_without_url(data_dir)) as same_url:
            assert same_url == url
        assert postmaster_running(data_dir)
    assert not postmaster_running(data_dir)
    lines = [r for r in caplog.records if r.name == "gw.embedded"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert lines[0].getMessage() == (
        "no database configured (DATABASE_URL, --connection or a PG* variable): using the "
        f"embedded PostgreSQL server in {data_dir.resolve()}"
    )
    assert getattr(lines[0], "gw", None) == {"data_dir": str(data_dir.resolve())}
