"""TLS connections with node-postgres's URL forms, against a throwaway cluster that has
TLS on and refuses connections without it (tests/tls_cluster.py). The same URLs are given
to the reference, to show where both agree and where gw reads ``sslmode`` as libpq does."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphile_worker_cli import conninfo, db
from graphile_worker_cli.errors import DatabaseConnectError
from tests.interop import reference
from tests.tls_cluster import make_certificates, tls_cluster

GW = str(Path(sys.executable).parent / "gw")


@pytest.fixture(scope="module")
def certificates() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="gw-tls-files-"))
    folder.chmod(0o755)
    try:
        make_certificates(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_port(certificates: Path) -> Iterator[int]:
    with tls_cluster(certificates) as port:
        yield port


def url(port: int, query: str) -> str:
    return f"postgres://postgres@127.0.0.1:{port}/postgres?{query}"


async def uses_tls(target: str) -> bool:
    conn = await db.connect(target)
    try:
        on: bool = await conn.fetchval("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        return on
    finally:
        await conn.close()


def accepted(target: str) -> bool:
    try:
        return asyncio.run(uses_tls(target))
    except DatabaseConnectError:
        return False


def reference_accepts(target: str, cwd: Path) -> bool:
    result = subprocess.run(
        reference.reference_command("-c", target, "--schema-only"), cwd=cwd,
        env=reference.reference_env(), capture_output=True, text=True, timeout=120,
    )
    return result.returncode == 0


def test_node_postgres_url_forms_on_a_tls_server(
    tls_port: int, certificates: Path, tmp_path: Path
) -> None:
    ca = certificates / "ca.crt"
    # query -> (gw connects, the reference connects)
    expected = {
        f"ssl=true&sslrootcert={ca}": (True, True),
        f"ssl=1&sslrootcert={ca}": (True, True),
        "ssl=1": (False, False),  # the test CA is not one of the system's
        "ssl=no-verify": (True, True),
        "sslmode=no-verify": (True, True),
        "ssl=0": (False, False),  # the server refuses connections without TLS
        "sslmode=disable": (False, False),
        f"sslmode=verify-full&sslrootcert={ca}": (True, True),
        # libpq's reading: encrypted, certificate not checked. node-postgres reads require
        # as verify-full, and the test CA is not one it knows.
        "sslmode=require": (True, False),
        "ssl=0&sslmode=require": (True, False),  # sslmode wins over ssl in both
    }
    found = {
        query: (accepted(url(tls_port, query)), reference_accepts(url(tls_port, query), tmp_path))
        for query in expected
    }
    assert found == expected


def test_a_failed_certificate_check_is_one_clear_line(tls_port: int) -> None:
    with pytest.raises(DatabaseConnectError) as raised:
        asyncio.run(uses_tls(url(tls_port, "ssl=1")))
    message = raised.value.message
    assert message.startswith(f"could not connect to {url(tls_port, 'ssl=1')}: TLS failed (")
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


def test_gw_commands_take_a_tls_url(tls_port: int, certificates: Path, tmp_path: Path) -> None:
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("GW_", "PG")) and name != "DATABASE_URL"
    }
    env["DATABASE_URL"] = url(tls_port, f"ssl=true&sslrootcert={certificates / 'ca.crt'}")
    for args in (["migrate"], ["add-job", "tls_task"], ["jobs", "list"]):
        result = subprocess.run(
            [GW, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (args, result.stderr)
        assert result.stderr == ""
    assert "tls_task" in result.stdout
