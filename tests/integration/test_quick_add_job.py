"""quick_add_job / quick_add_job_sync (the reference's quickAddJob) on a real database:
the database and schema come from arguments, the environment or worker.toml; the
connection is closed afterwards; an unmigrated schema is refused before anything is added."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import graphile_worker_cli
from graphile_worker_cli import migrate
from graphile_worker_cli.errors import MigrationError, SchemaTooNewError
from graphile_worker_cli.job import JobKeyMode, JobSpec
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.usefixtures("clean_environment")


async def stored(
    conn: asyncpg.Connection, schema: str = "graphile_worker"
) -> list[tuple[str, Any, int]]:
    qualified = f'"{schema}"'
    rows = await conn.fetch(
        f"select t.identifier, j.payload::text as payload, j.priority "
        f"from {qualified}._private_jobs j join {qualified}._private_tasks t on t.id = j.task_id"
        " order by j.id"
    )
    return [(r["identifier"], json.loads(r["payload"]), r["priority"]) for r in rows]


async def other_sessions(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "select count(*) from pg_stat_activity"
        " where datname = current_database() and pid <> pg_backend_pid()"
    )
    return count


async def test_adds_one_job_on_the_url_given_and_disconnects(
    db_url: str, conn: asyncpg.Connection
) -> None:
    added = await graphile_worker_cli.quick_add_job(
        "greet", {"name": "Zoé"}, JobSpec(priority=3, queue_name="q"), database_url=db_url
    )
    assert (added.task_identifier, added.payload, added.queue_name) == (
        "greet", {"name": "Zoé"}, "q"
    )
    assert await stored(conn) == [("greet", {"name": "Zoé"}, 3)]

    async def disconnected() -> bool:
        return await other_sessions(conn) == 0

    await wait_until(disconnected)


async def test_reads_database_url_from_the_environment(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    await graphile_worker_cli.quick_add_job("from_env")
    assert await stored(conn) == [("from_env", {}, 0)]


async def test_reads_worker_toml_and_its_schema(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await migrate.migrate(conn, "app_jobs")
    (tmp_path / "worker.toml").write_text(f'database_url = "{db_url}"\nschema = "app_jobs"\n')
    await graphile_worker_cli.quick_add_job("from_toml", [1, 2])
    assert await stored(conn, "app_jobs") == [("from_toml", [1, 2], 0)]
    assert await stored(conn) == []


async def test_refuses_a_schema_that_is_not_migrated(
    db_url: str, conn: asyncpg.Connection
) -> None:
    with pytest.raises(MigrationError, match="schema 'nowhere' has no Graphile Worker"):
        await graphile_worker_cli.quick_add_job("lost", database_url=db_url, schema="nowhere")
    assert await stored(conn) == []


async def test_sync_flavour_adds_the_job_from_a_thread_without_a_loop(
    db_url: str, conn: asyncpg.Connection
) -> None:
    def script() -> int:
        added = graphile_worker_cli.quick_add_job_sync("from_sync", {"n": 1}, database_url=db_url)
        return added.id

    job_id = await asyncio.to_thread(script)
    assert await stored(conn) == [("from_sync", {"n": 1}, 0)]
    assert await conn.fetchval("select id from graphile_worker._private_jobs") == job_id


# --- the schema check folded into the insert (quick_add) ------------------------------------


async def test_a_schema_with_a_newer_breaking_migration_is_refused_and_gets_no_job(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute("insert into graphile_worker.migrations (id, breaking) values (21, true)")
    with pytest.raises(SchemaTooNewError, match="breaking migration 21, newer than"):
        await graphile_worker_cli.quick_add_job("too_new", database_url=db_url)
    assert await stored(conn) == []


async def test_a_schema_behind_gw_is_refused_and_gets_no_job(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute("delete from graphile_worker.migrations where id = 20")
    with pytest.raises(MigrationError, match="at migration 19 of 20: run `gw migrate`"):
        await graphile_worker_cli.quick_add_job("behind", database_url=db_url)
    assert await stored(conn) == []


async def test_a_newer_non_breaking_migration_still_takes_the_job(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute("insert into graphile_worker.migrations (id, breaking) values (21, false)")
    await graphile_worker_cli.quick_add_job("newer_ok", database_url=db_url)
    assert await stored(conn) == [("newer_ok", {}, 0)]


async def test_a_ledger_without_the_breaking_column_takes_the_job_after_the_full_check(
    db_url: str, conn: asyncpg.Connection
) -> None:
    # The one statement cannot read such a ledger; the separate check can, and passes.
    await conn.execute("alter table graphile_worker.migrations drop column breaking")
    added = await graphile_worker_cli.quick_add_job(
        "old_ledger", {"a": 1}, database_url=db_url, prepared_statements=False
    )
    assert (added.task_identifier, added.payload) == ("old_ledger", {"a": 1})
    assert await stored(conn) == [("old_ledger", {"a": 1}, 0)]


async def test_unsafe_dedupe_returns_the_job_already_there_with_its_own_names(
    db_url: str, conn: asyncpg.Connection
) -> None:
    first = await graphile_worker_cli.quick_add_job(
        "first_task", {"n": 1}, JobSpec(job_key="k", queue_name="q1"), database_url=db_url
    )
    again = await graphile_worker_cli.quick_add_job(
        "other_task", {"n": 2},
        JobSpec(job_key="k", job_key_mode=JobKeyMode.UNSAFE_DEDUPE), database_url=db_url,
    )
    assert (again.id, again.task_identifier, again.queue_name, again.payload) == (
        first.id, "first_task", "q1", {"n": 1}
    )
    assert await stored(conn) == [("first_task", {"n": 1}, 0)]
