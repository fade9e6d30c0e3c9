"""The embedded PostgreSQL server: started when no URL is configured, stopped on exit."""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphile_worker_cli import config, conninfo, db, embedded
from graphile_worker_cli.errors import EmbeddedDatabaseError


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


def settings_without_url(data_dir: Path) -> config.Settings:
    return config.Settings(database_url=None, embedded_data_dir=data_dir)


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


async def test_a_configured_url_is_used_as_is_and_nothing_is_started(tmp_path: Path) -> None:
    settings = config.Settings(
        database_url="postgres://u@example.invalid/db", embedded_data_dir=tmp_path / "pg"
    )
    async with embedded.database_url(settings) as url:
        assert url == "postgres://u@example.invalid/db"
    with embedded.database_url_sync(settings) as url:
        assert url == "postgres://u@example.invalid/db"
    assert not (tmp_path / "pg").exists()


async def test_missing_extra_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # makes `import pgserver` fail
    with pytest.raises(EmbeddedDatabaseError) as caught:
        async with embedded.database_url(settings_without_url(tmp_path / "pg")):
            pass
    assert caught.value.message == (
        "no database configured (DATABASE_URL, --connection or a PG* variable) and the "
        "embedded server needs the extra: pip install 'graphile-worker-cli[embedded]'"
    )
    assert caught.value.exit_code == 2  # configuration: a restart cannot fix it


async def test_a_data_dir_that_cannot_be_created_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(EmbeddedDatabaseError) as caught:
        async with embedded.database_url(settings_without_url(blocker / "sub" / "pgdata")):
            pass
    message = caught.value.message
    assert message.startswith(f"could not start the embedded PostgreSQL server in {blocker}")
    assert "\n" not in message
