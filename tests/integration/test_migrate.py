"""gw's migrations on a real database: ledger, breaking flags, notifications, concurrency,
gw's own ledger, refusing newer schemas."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli import migrate
from graphile_worker_cli.errors import EXIT_SCHEMA_TOO_NEW, MigrationError, SchemaTooNewError
from tests.helpers.catalog import diff_catalogs, dump_catalog
from tests.helpers.migrations import ODD_SCHEMA, write

SCHEMA = "graphile_worker"


@pytest.fixture
async def empty_conn(empty_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_db_url)
    try:
        yield connection
    finally:
        await connection.close()


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


async def test_a_gw_step_numbered_below_the_latest_applied_one_still_runs(
    empty_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    # Two lines of work each brought a step: the database saw 3 before 2 existed.
    write(tmp_path, "000001_first.sql", "create table __SCHEMA__._gw_first (id int);")
    write(tmp_path, "000003_third.sql", "create table __SCHEMA__._gw_third (id int);")
    early = await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert early.gw_applied == [1, 3]

    write(tmp_path, "000002_second.sql", "create table __SCHEMA__._gw_second (id int);")
    late = await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert late.gw_applied == [2] and late.status.gw_latest == 3
    assert await empty_conn.fetchval("select to_regclass('graphile_worker._gw_second')::text")


async def test_a_failing_gw_migration_leaves_no_ledger_row(
    empty_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    write(tmp_path, "000001_broken.sql", "create table __SCHEMA__._gw_x (id int); select 1/0;")
    with pytest.raises(MigrationError, match=r"gw migration broken .* division by zero"):
        await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert await empty_conn.fetchval("select count(*) from graphile_worker._gw_migrations") == 0
    assert await empty_conn.fetchval("select to_regclass('graphile_worker._gw_x')") is None
    assert await empty_conn.fetchval("select max(id) from graphile_worker.migrations") == 20


async def test_a_gw_migration_numbered_below_an_applied_one_still_runs(
    empty_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    """gw's steps are independent: a release (or a branch merged later) may add 000002
    after a database already has 000003; the ledger, not the highest number, decides."""
    write(tmp_path, "000001_first.sql", "create table __SCHEMA__._gw_first (id int);")
    write(tmp_path, "000003_third.sql", "create table __SCHEMA__._gw_third (id int);")
    first = await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert first.gw_applied == [1, 3]

    write(tmp_path, "000002_second.sql", "create table __SCHEMA__._gw_second (id int);")
    second = await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert second.gw_applied == [2] and second.status.gw_latest == 3
    assert await empty_conn.fetchval("select to_regclass('graphile_worker._gw_second')")
    again = await migrate.apply_migrations(empty_conn, SCHEMA, gw_migrations_dir=tmp_path)
    assert again.gw_applied == []
