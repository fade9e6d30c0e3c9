"""gw's migrations on their own: ledger, breaking flags, notifications, concurrency,
gw's own ledger, refusing newer schemas, and the ``gw migrate`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli import migrate
from graphile_worker_cli.errors import EXIT_SCHEMA_TOO_NEW, MigrationError, SchemaTooNewError
from tests.catalog import diff_catalogs, dump_catalog
from tests.conftest import REPO_ROOT

SCHEMA = "graphile_worker"
ODD_SCHEMA = 'odd "name"'
GW = str(REPO_ROOT / ".venv" / "bin" / "gw")


@pytest.fixture
async def empty_conn(empty_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_db_url)
    try:
        yield connection
    finally:
        await connection.close()


def run_gw(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GW, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql, encoding="utf-8")


# --- the files -------------------------------------------------------------------------


def test_twenty_files_with_breaking_markers_matching_the_ledger_flags() -> None:
    steps = migrate.reference_migrations()
    assert [step.number for step in steps] == list(range(1, 21))
    assert migrate.LATEST_MIGRATION == 20
    assert migrate.BREAKING_MIGRATIONS == (1, 3, 11, 13, 14, 16, 19)
    for step in steps:
        marked = step.path.read_text().startswith("--! breaking")
        assert marked == step.breaking, step.path.name


def test_sql_files_never_name_the_schema_literally() -> None:
    reference = migrate.REFERENCE_MIGRATIONS_DIR.glob("*.sql")
    paths = [*reference, *migrate.GW_MIGRATIONS_DIR.glob("*.sql")]
    for path in paths:
        text = path.read_text()
        assert "graphile_worker." not in text, path.name
        assert "__SCHEMA__" in text or path.name == "000019.sql", path.name


def test_placeholder_is_replaced_by_the_quoted_name() -> None:
    step = migrate.reference_migrations()[0]
    sql = step.sql(ODD_SCHEMA)
    assert "__SCHEMA__" not in sql
    assert 'create table "odd ""name""".job_queues' in sql


# --- migrating a database ----------------------------------------------------------------


async def test_fresh_database_gets_twenty_ledger_rows_and_a_second_run_is_a_no_op(
    empty_conn: asyncpg.Connection,
) -> None:
    first = await migrate.apply_migrations(empty_conn, SCHEMA)
    assert first.applied == list(range(1, 21))
    rows = await empty_conn.fetch("select id, breaking from graphile_worker.migrations order by id")
    assert [(r["id"], r["breaking"]) for r in rows] == [
        (n, n in migrate.BREAKING_MIGRATIONS) for n in range(1, 21)
    ]
    assert first.status == migrate.MigrationStatus(SCHEMA, 20, 19, first.status.gw_latest)

    before = await dump_catalog(empty_conn, SCHEMA, include_gw=True)
    second = await migrate.apply_migrations(empty_conn, SCHEMA)
    assert second.applied == [] and second.gw_applied == []
    assert await dump_catalog(empty_conn, SCHEMA, include_gw=True) == before


async def test_status_of_an_unmigrated_schema(empty_conn: asyncpg.Connection) -> None:
    status = await migrate.migration_status(empty_conn, SCHEMA)
    assert status == migrate.MigrationStatus(SCHEMA, None, None, None)
    assert not await empty_conn.fetchval(
        "select exists(select 1 from pg_namespace where nspname = $1)", SCHEMA
    )


async def test_each_step_notifies_worker_migrate(
    empty_db_url: str, empty_conn: asyncpg.Connection
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(empty_db_url)
    try:
        await listener.add_listener(
            "worker:migrate", lambda _c, _pid, _channel, payload: received.put_nowait(payload)
        )
        await migrate.migrate(empty_conn, SCHEMA)
        payloads = [await asyncio.wait_for(received.get(), 10) for _ in range(20)]
    finally:
        await listener.close()
    assert payloads[0] == '{"migrationNumber":1,"breaking":true}'
    assert [json.loads(p) for p in payloads] == [
        {"migrationNumber": n, "breaking": n in migrate.BREAKING_MIGRATIONS} for n in range(1, 21)
    ]


async def test_odd_schema_name_gets_the_same_catalog(empty_conn: asyncpg.Connection) -> None:
    await migrate.migrate(empty_conn, SCHEMA)
    await migrate.migrate(empty_conn, ODD_SCHEMA)
    plain = await dump_catalog(empty_conn, SCHEMA, include_gw=True)
    odd = await dump_catalog(empty_conn, ODD_SCHEMA, include_gw=True)
    assert diff_catalogs(plain, odd) == []
    job = await empty_conn.fetchrow(
        'select * from "odd ""name""".add_job($1, $2::json, job_key => $3)', "t", '{"a":1}', "k"
    )
    assert job is not None and json.loads(job["payload"]) == {"a": 1}


async def test_schema_name_with_dollar_quotes_works(empty_conn: asyncpg.Connection) -> None:
    await migrate.migrate(empty_conn, SCHEMA)
    await migrate.migrate(empty_conn, "a$$b$gw_body0$")
    plain = await dump_catalog(empty_conn, SCHEMA, include_gw=True)
    dollar = await dump_catalog(empty_conn, "a$$b$gw_body0$", include_gw=True)
    assert diff_catalogs(plain, dollar) == []
    job = await empty_conn.fetchrow('select * from "a$$b$gw_body0$".add_job($1)', "t")
    assert job is not None and job["key"] is None


async def test_concurrent_migrators_apply_each_step_exactly_once(empty_db_url: str) -> None:
    connections = [await asyncpg.connect(empty_db_url) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(migrate.apply_migrations(c, SCHEMA) for c in connections)
        )
    finally:
        for connection in connections:
            await connection.close()
    applied = sorted(n for result in results for n in result.applied)
    assert applied == list(range(1, 21))
    gw_applied = sorted(n for result in results for n in result.gw_applied)
    assert gw_applied == [m.number for m in migrate.gw_migrations()]
    assert all(result.status.latest == 20 for result in results)


# --- newer schemas -------------------------------------------------------------------------


async def test_newer_breaking_migration_is_refused(conn: asyncpg.Connection) -> None:
    await conn.execute("insert into graphile_worker.migrations (id, breaking) values (21, true)")
    with pytest.raises(SchemaTooNewError) as caught:
        await migrate.migrate(conn, SCHEMA)
    assert caught.value.exit_code == EXIT_SCHEMA_TOO_NEW
    assert "breaking migration 21" in caught.value.message


async def test_newer_non_breaking_migration_only_warns(
    conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await conn.execute("insert into graphile_worker.migrations (id, breaking) values (21, false)")
    with caplog.at_level(logging.WARNING, logger="gw.migrate"):
        result = await migrate.apply_migrations(conn, SCHEMA)
    assert result.applied == []
    assert any("migration 21" in record.getMessage() for record in caplog.records)


# --- gw's own ledger ------------------------------------------------------------------------


async def test_gw_migrations_have_their_own_ledger(
    empty_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    none = await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert none.gw_applied == [] and none.status.gw_latest is None

    write(tmp_path, "000001_first.sql", "create table __SCHEMA__._gw_first (id int);")
    write(tmp_path, "000002_second.sql", "create table __SCHEMA__._gw_second (id int);")
    two = await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert two.applied == [] and two.gw_applied == [1, 2]

    write(tmp_path, "000003_third.sql", "alter table __SCHEMA__._gw_first add column x text;")
    three = await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert three.gw_applied == [3] and three.status.gw_latest == 3

    ledger = await empty_conn.fetch(
        "select id, name from graphile_worker._gw_migrations order by id"
    )
    assert [(r["id"], r["name"]) for r in ledger] == [(1, "first"), (2, "second"), (3, "third")]
    assert await empty_conn.fetchval("select max(id) from graphile_worker.migrations") == 20


async def test_a_failing_gw_migration_leaves_no_ledger_row(
    empty_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    write(tmp_path, "000001_broken.sql", "create table __SCHEMA__._gw_x (id int); select 1/0;")
    with pytest.raises(MigrationError, match=r"gw migration broken .* division by zero"):
        await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert await empty_conn.fetchval("select count(*) from graphile_worker._gw_migrations") == 0
    assert await empty_conn.fetchval("select to_regclass('graphile_worker._gw_x')") is None
    assert await empty_conn.fetchval("select max(id) from graphile_worker.migrations") == 20


@pytest.mark.parametrize("name", ["1_short.sql", "000001-dash.sql", "000001_Upper.sql"])
def test_bad_gw_migration_file_names_are_rejected(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "select 1;")
    with pytest.raises(MigrationError, match=r"NNNNNN_name\.sql"):
        migrate.gw_migrations(tmp_path)


def test_duplicate_gw_migration_numbers_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, "000001_a.sql", "select 1;")
    write(tmp_path, "000001_b.sql", "select 1;")
    with pytest.raises(MigrationError, match="numbered 1"):
        migrate.gw_migrations(tmp_path)


# --- the command ----------------------------------------------------------------------------


def test_cli_migrates_and_reports(empty_db_url: str) -> None:
    first = run_gw("migrate", "-c", empty_db_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Schema graphile_worker is at migration 20 (applied 20 now)")
    again = run_gw("migrate", "-c", empty_db_url, "--schema", ODD_SCHEMA)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith('Schema odd "name" is at migration 20 (applied 20 now)')
    status = run_gw("migrate", "-c", empty_db_url, "--status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["migration"] == 20
    assert json.loads(status.stdout)["applied"] == []


def test_four_cli_processes_at_once_all_succeed(empty_db_url: str) -> None:
    processes = [
        subprocess.Popen(
            [GW, "migrate", "-c", empty_db_url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    applied = [int(out.split("(applied ")[1].split(" ")[0]) for out, _ in outputs]
    assert sum(applied) == 20

    async def ledger() -> list[int]:
        connection = await asyncpg.connect(empty_db_url)
        try:
            return [r[0] for r in await connection.fetch(
                "select id from graphile_worker.migrations order by id"
            )]
        finally:
            await connection.close()

    assert asyncio.run(ledger()) == list(range(1, 21))


def _assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert text in lines[0]


def test_cli_schema_too_new_exits_57(db_url: str) -> None:
    async def add_row() -> None:
        connection = await asyncpg.connect(db_url)
        try:
            await connection.execute(
                "insert into graphile_worker.migrations (id, breaking) values (21, true)"
            )
        finally:
            await connection.close()

    asyncio.run(add_row())
    _assert_one_line_error(run_gw("migrate", "-c", db_url), 57, "breaking migration 21")


def test_cli_newer_non_breaking_warns_and_exits_0(db_url: str) -> None:
    async def add_row() -> None:
        connection = await asyncpg.connect(db_url)
        try:
            await connection.execute(
                "insert into graphile_worker.migrations (id, breaking) values (21, false)"
            )
        finally:
            await connection.close()

    asyncio.run(add_row())
    result = run_gw("migrate", "-c", db_url)
    assert result.returncode == 0, result.stderr
    assert "at migration 21 (applied 0 now)" in result.stdout
    assert "newer than this gw knows" in result.stderr


@pytest.mark.parametrize(
    ("url", "code", "text"),
    [
        ("not a url", 2, "invalid connection string"),
        ("postgres://postgres@127.0.0.1:99999/x", 2, "invalid connection string"),
        ("postgres://postgres@127.0.0.1:1/postgres", 1, "server unreachable"),
    ],
)
def test_cli_bad_connection_is_one_line(url: str, code: int, text: str) -> None:
    _assert_one_line_error(run_gw("migrate", "-c", url), code, text)


def test_cli_module_entry_point_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "graphile_worker_cli", "migrate", "--help"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert result.returncode == 0 and "--status" in result.stdout



@pytest.mark.parametrize(("version_num", "supported"), [
    (110022, False), (119999, False), (120000, True), (150019, True), (170000, True),
])
def test_servers_older_than_postgresql_12_are_refused(version_num: int, supported: bool) -> None:
    """This machine only has PostgreSQL 15, so the threshold is checked on the number the
    server reports (`server_version_num`); the live path is the same call."""
    from graphile_worker_cli.errors import UnsupportedServerError

    if supported:
        migrate.require_supported_server(version_num)
        return
    with pytest.raises(UnsupportedServerError) as raised:
        migrate.require_supported_server(version_num)
    assert raised.value.message == (
        f"PostgreSQL 12 or newer is required (the server reports version number {version_num})"
    )
