"""TLS connections against a throwaway cluster that has TLS on and refuses connections
without it (tests/helpers/tls_cluster.py): a failed certificate check, and PGSSLMODE.
tests/interop/test_tls_connections_interop.py gives node-postgres's URL forms to both gw
and the reference; tests/acceptance/test_tls_connections.py runs ``gw`` commands on it."""

from __future__ import annotations

import asyncio

import pytest

from graphile_worker_cli import conninfo
from graphile_worker_cli.errors import DatabaseConnectError
from tests.helpers.tls_cluster import accepted, cluster_url, uses_tls


def test_a_failed_certificate_check_is_one_clear_line(tls_port: int) -> None:
    with pytest.raises(DatabaseConnectError) as raised:
        asyncio.run(uses_tls(cluster_url(tls_port, "ssl=1")))
    message = raised.value.message
    assert message.startswith(
        f"could not connect to {cluster_url(tls_port, 'ssl=1')}: TLS failed ("
    )
    assert "certificate verify failed" in message and "\n" not in message


def test_pgsslmode_from_the_environment(
    tls_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"PGHOST": "127.0.0.1", "PGPORT": str(tls_port), "PGUSER": "postgres",
                        "PGDATABASE": "postgres"}.items():
        monkeypatch.setenv(name, value)
    for mode, connects in {"require": True, "no-verify": True, "disable": False}.items():
        monkeypatch.setenv("PGSSLMODE", mode)
        assert accepted(conninfo.FROM_ENVIRONMENT) is connects, mode
