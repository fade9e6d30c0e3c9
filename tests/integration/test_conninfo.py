"""Real connections to the local server (TLS is off there) with node-postgres's URL
parameters and libpq's PG* variables."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from graphile_worker_cli import conninfo, db
from graphile_worker_cli.errors import DatabaseConnectError
from tests.helpers.database import libpq_variables


async def test_ssl_0_and_sslmode_disable_connect_without_tls(db_url: str) -> None:
    for query in ("ssl=0", "sslmode=disable", "ssl=0&application_name=gw_ssl_test"):
        conn = await db.connect(f"{db_url}?{query}")
        try:
            assert await conn.fetchval(
                "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
            ) is False
        finally:
            await conn.close()


async def test_ssl_1_against_a_server_without_tls_is_one_clear_error(db_url: str) -> None:
    with pytest.raises(DatabaseConnectError) as raised:
        await db.connect(f"{db_url}?ssl=1")
    message = raised.value.message
    expected = f"could not connect to {db_url}?ssl=1: the server does not offer TLS ("
    assert message.startswith(expected)
    assert "\n" not in message


async def test_pg_variables_name_the_server_for_the_library(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in libpq_variables(db_url).items():
        monkeypatch.setenv(name, value)
    conn = await db.connect(conninfo.FROM_ENVIRONMENT)
    try:
        assert await conn.fetchval("select current_database()") == urlsplit(db_url).path[1:]
    finally:
        await conn.close()
    monkeypatch.setenv("PGPORT", "1")  # nothing listens there: the message says where
    with pytest.raises(DatabaseConnectError) as raised:
        await db.connect(conninfo.FROM_ENVIRONMENT)
    assert raised.value.message.startswith(
        "could not connect to the server of the PG* environment variables (PGHOST=127.0.0.1 "
        "PGPORT=1 "
    )
