"""node-postgres's URL parameters and libpq's PG* variables: how they become asyncpg's
arguments, real connections to the local server with them, and which commands start the
embedded server (and say so)."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from graphile_worker_cli import conninfo, db
from graphile_worker_cli.errors import BadInputError, DatabaseConnectError

GW = str(Path(sys.executable).parent / "gw")
URL = "postgres://app:secret@db.example:5433/app"


def test_ssl_1_and_true_mean_tls_checked_against_the_system_authorities() -> None:
    for value in ("1", "true"):
        arguments = conninfo.connect_arguments(f"{URL}?ssl={value}&application_name=x", {})
        assert arguments == conninfo.ConnectArguments(f"{URL}?application_name=x", True)


def test_ssl_0_means_no_tls() -> None:
    assert conninfo.connect_arguments(f"{URL}?ssl=0", {}) == conninfo.ConnectArguments(URL, False)


@pytest.mark.parametrize("query", ["ssl=no-verify", "sslmode=no-verify", "ssl=1&sslmode=no-verify"])
def test_no_verify_is_tls_without_checking_the_certificate(query: str) -> None:
    arguments = conninfo.connect_arguments(f"{URL}?{query}", {})
    assert arguments.dsn == URL
    context = arguments.ssl
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_certificate_files_with_ssl_1_make_a_checking_context(tls_files: Path) -> None:
    ca = tls_files / "ca.crt"
    arguments = conninfo.connect_arguments(f"{URL}?ssl=true&sslrootcert={ca}&x=1", {})
    assert arguments.dsn == f"{URL}?x=1"
    context = arguments.ssl
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [cert["subject"] for cert in context.get_ca_certs()]
    assert subjects == [((("commonName", "gw test CA"),),)]


@pytest.mark.parametrize(
    ("query", "dsn_query"),
    [
        ("sslmode=require", "sslmode=require"),
        ("ssl=1&sslmode=disable", "sslmode=disable"),  # sslmode wins, as in node-postgres
        ("sslmode=verify-full&sslrootcert=/ca.pem&uselibpqcompat=true",
         "sslmode=verify-full&sslrootcert=%2Fca.pem"),
    ],
)
def test_sslmode_is_left_to_asyncpg_which_reads_it_as_libpq(query: str, dsn_query: str) -> None:
    assert conninfo.connect_arguments(f"{URL}?{query}", {}) == conninfo.ConnectArguments(
        f"{URL}?{dsn_query}", None
    )


def test_pgsslmode_no_verify_is_understood_too() -> None:
    arguments = conninfo.connect_arguments(URL, {"PGSSLMODE": "no-verify"})
    assert arguments.dsn == URL and isinstance(arguments.ssl, ssl.SSLContext)
    assert conninfo.connect_arguments(URL, {"PGSSLMODE": "require"}).ssl is None


@pytest.mark.parametrize("value", ["false", "yes", ""])
def test_other_ssl_values_are_refused_in_one_line(value: str) -> None:
    with pytest.raises(BadInputError) as raised:
        conninfo.connect_arguments(f"{URL}?ssl={value}", {})
    assert raised.value.message == (
        f"invalid connection string 'postgres://app:***@db.example:5433/app?ssl={value}': "
        f"ssl={value} is not one of node-postgres's values (to it, anything but ssl=0 turns "
        "TLS on); expected ssl=1, ssl=true, ssl=0 or ssl=no-verify, or "
        "sslmode=disable|prefer|require|verify-ca|verify-full|no-verify"
    )


def test_the_environment_names_the_server_when_there_is_no_url() -> None:
    assert conninfo.url_from_environment({}) is None
    assert conninfo.url_from_environment({"PGHOST": ""}) is None
    environ = {"PGHOST": "db", "PGPASSWORD": "hunter2", "HOME": "/root"}
    assert conninfo.url_from_environment(environ) == conninfo.FROM_ENVIRONMENT
    assert conninfo.describe(conninfo.FROM_ENVIRONMENT, environ) == (
        "the server of the PG* environment variables (PGHOST=db PGPASSWORD=***)"
    )


# Real connections to the local server (TLS is off there) --------------------------------


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


def libpq_variables(db_url: str) -> dict[str, str]:
    parts = urlsplit(db_url)
    return {
        "PGHOST": parts.hostname or "", "PGPORT": str(parts.port or 5432),
        "PGUSER": parts.username or "", "PGDATABASE": parts.path.lstrip("/"),
    }


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


def command_env(**extra: str) -> dict[str, str]:
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("GW_", "PG")) and name not in ("DATABASE_URL",)
    }
    env.update(extra)
    return env


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A working directory the embedded server's user can reach (not under pytest's 0700
    tmp root, see tests/test_embedded.py)."""
    path = Path(tempfile.mkdtemp(prefix="gw-conninfo-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def run_gw(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [GW, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )


async def test_commands_use_the_pg_variables_and_start_nothing(
    db_url: str, workdir: Path
) -> None:
    env = command_env(**libpq_variables(db_url))
    added = await run_gw(workdir, env, "add-job", "from_env", '{"a": 1}')
    assert added.returncode == 0, added.stderr
    listed = await run_gw(workdir, env, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"from_env"' in listed.stdout
    assert added.stderr == listed.stderr == ""
    assert not (workdir / ".gw").exists()


async def test_a_node_style_url_works_for_every_command(db_url: str, workdir: Path) -> None:
    env = command_env(DATABASE_URL=f"{db_url}?ssl=0")
    for args in (["migrate"], ["add-job", "x"], ["jobs", "list"], ["workers", "list"]):
        result = await run_gw(workdir, env, *args)
        assert result.returncode == 0, (args, result.stderr)


async def test_commands_that_start_the_embedded_server_say_so_in_one_line(workdir: Path) -> None:
    env = command_env()
    data_dir = (workdir / ".gw" / "pgdata").resolve()
    note = (
        "note: no database configured (DATABASE_URL, --connection or a PG* variable): using "
        f"the embedded PostgreSQL server in {data_dir}\n"
    )
    migrated = await run_gw(workdir, env, "migrate")  # logs: the note is a log line there
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stderr.count("using the embedded PostgreSQL server in") == 1
    added = await run_gw(workdir, env, "add-job", "x", '{"a": 1}')
    assert added.returncode == 0, added.stderr
    assert added.stderr == note
    listed = await run_gw(workdir, env, "jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == note
    assert data_dir.is_dir()


async def test_the_embedded_server_is_not_used_when_only_a_pg_variable_is_set(
    workdir: Path,
) -> None:
    # PGPORT alone: libpq's defaults for the rest, and no silent fallback to ./.gw/pgdata.
    result = await run_gw(workdir, command_env(PGHOST="127.0.0.1", PGPORT="1"), "jobs", "list")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: could not connect to the server of the PG* environment variables "
        "(PGHOST=127.0.0.1 PGPORT=1): server unreachable"
    )
    assert not (workdir / ".gw").exists()


@pytest.fixture(scope="session")
def tls_files() -> Iterator[Path]:
    from tests.tls_cluster import make_certificates

    folder = Path(tempfile.mkdtemp(prefix="gw-tls-files-"))
    try:
        make_certificates(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
