"""The embedded PostgreSQL server, none started: a configured URL is used as is; a missing
extra and a data dir that cannot be made are one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from graphile_worker_cli import config, conninfo, embedded
from graphile_worker_cli.errors import EmbeddedDatabaseError
from tests.helpers.database import settings_without_url


@pytest.fixture(autouse=True)
def no_libpq_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PG* variable would name a server, and the embedded one would not start."""
    for name in conninfo.LIBPQ_VARIABLES:
        monkeypatch.delenv(name, raising=False)


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
