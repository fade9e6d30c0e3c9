"""gw's upkeep of the jobs table: the vacuum one worker of the fleet runs once enough jobs
finished, and a `--once` run that reads the jobs table through its indexes only (the
stale-lock reset when none is due, the deregistration of a worker that holds nothing)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from graphile_worker_cli.queries import maintenance as queries
from graphile_worker_cli.queries import worker as worker_queries
from tests.helpers.waiting import wait_until
from tests.helpers.worker import S, make_options

TABLE_STATS = (
    "select {column} from pg_stat_user_tables where schemaname = $1 and relname = '_private_jobs'"
)


async def table_stat(conn: asyncpg.Connection, column: str) -> int:
    value: int = await conn.fetchval(TABLE_STATS.format(column=column), S)
    return value


async def noop(payload: Any) -> None:
    return None


async def add_ready_jobs(conn: asyncpg.Connection, count: int) -> None:
    await conn.execute(
        f"select {S}.add_job('noop') from generate_series(1, $1::int)", count
    )


def vacuum_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "gw", {}).get("action") == "vacuum"]


async def test_a_worker_vacuums_the_jobs_table_once_enough_jobs_finished(
    db_url: str, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    before = await table_stat(conn, "vacuum_count")
    worker = await make_options(
        db_url, jobs_vacuum_threshold=400, concurrency=8
    ).define_job(noop, "noop").init()
    running = asyncio.create_task(worker.run())

    async def vacuumed_while_jobs_keep_coming() -> bool:
        await add_ready_jobs(conn, 50)
        return await table_stat(conn, "vacuum_count") > before

    with caplog.at_level(logging.INFO, logger="gw.worker"):
        try:
            await wait_until(vacuumed_while_jobs_keep_coming, timeout=30)
        finally:
            worker.request_shutdown()
            await running
    [first, *_] = vacuum_records(caplog)
    assert first.gw["dead_rows"] >= 400  # type: ignore[attr-defined]
    row = await conn.fetchrow(
        f"select claimed_by, finished_at, runs from {S}._gw_maintenance"
        " where task = 'vacuum_jobs'"
    )
    assert row is not None
    assert row["claimed_by"] == worker.worker_id
    assert row["finished_at"] is not None and row["runs"] >= 1


async def test_a_role_that_does_not_own_the_table_says_so_once_and_never_vacuums(
    db_url: str, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    role = f"gw_not_owner_{secrets.token_hex(4)}"
    await conn.execute(f"create role {role} login bypassrls")
    try:
        await conn.execute(
            f"grant usage on schema {S} to {role};"
            f" grant all on all tables in schema {S} to {role};"
            f" grant all on all sequences in schema {S} to {role};"
            f" grant execute on all functions in schema {S} to {role}"
        )
        parts = urlsplit(db_url)
        as_role = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
        before = await table_stat(conn, "vacuum_count")
        worker = await make_options(
            as_role, jobs_vacuum_threshold=1, concurrency=8, worker_recovery=False
        ).define_job(noop, "noop").init()
        running = asyncio.create_task(worker.run())

        def refusals() -> list[logging.LogRecord]:
            return [r for r in caplog.records
                    if getattr(r, "gw", {}).get("reason") == "not_owner"]

        async def refused_while_jobs_keep_coming() -> bool:
            await add_ready_jobs(conn, 20)
            return bool(refusals())

        async def drained() -> bool:
            return not await conn.fetchval(f"select count(*) from {S}._private_jobs")

        with caplog.at_level(logging.INFO, logger="gw.worker"):
            try:
                await wait_until(refused_while_jobs_keep_coming, timeout=30)
                await add_ready_jobs(conn, 500)  # more than enough for another look
                await wait_until(drained)
            finally:
                worker.request_shutdown()
                await running
        assert len(refusals()) == 1
        assert refusals()[0].levelno == logging.WARNING
        assert vacuum_records(caplog) == []
        assert await table_stat(conn, "vacuum_count") == before
    finally:
        await conn.execute(f"drop owned by {role}; drop role {role}")


async def claim(conn: asyncpg.Connection, worker_id: str, threshold: int) -> bool:
    row = await conn.fetchrow(queries.CLAIM_VACUUM.sql(S), worker_id, S, threshold, 300.0)
    assert row is not None
    return bool(row["claimed"])


async def test_one_worker_of_the_fleet_vacuums_at_a_time(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute(f"insert into {S}._private_tasks (identifier) values ('noop')")
    await conn.execute(
        f"insert into {S}._private_jobs (task_id, payload, run_at)"
        f" select t.id, '{{}}', now() from {S}._private_tasks as t, generate_series(1, 300)"
    )
    await conn.execute(f"delete from {S}._private_jobs")

    async def dead_rows_counted() -> bool:
        await conn.execute("select pg_stat_force_next_flush()")
        return await table_stat(conn, "n_dead_tup") >= 300

    await wait_until(dead_rows_counted)
    others = [await asyncpg.connect(db_url) for _ in range(3)]
    try:
        # Three workers look at once: one claims, the others see its claim and skip.
        won = await asyncio.gather(*(claim(c, f"w{i}", 100) for i, c in enumerate(others)))
        assert sorted(won) == [False, False, True]
        winner = f"w{won.index(True)}"
        assert not await claim(conn, "late", 100)

        # A claim whose worker died lets another worker claim once its lease is over.
        await conn.execute(
            f"update {S}._gw_maintenance set claimed_at = now() - interval '10 minutes'"
            " where task = 'vacuum_jobs'"
        )
        assert await claim(conn, "next", 100)
        await conn.execute(queries.VACUUM_JOBS.sql(S))
        await conn.execute(queries.FINISH_VACUUM.sql(S), "next", S)
        # The first claimer finishing late changes nothing; the dead rows are gone.
        assert await conn.execute(queries.FINISH_VACUUM.sql(S), winner, S) == "UPDATE 0"
        assert await table_stat(conn, "n_dead_tup") < 100
        assert not await claim(conn, "after", 100)
        runs = await conn.fetchval(
            f"select runs from {S}._gw_maintenance where task = 'vacuum_jobs'"
        )
        assert runs == 1
    finally:
        for other in others:
            await other.close()


async def test_a_stale_lock_reset_not_due_reads_no_job(conn: asyncpg.Connection) -> None:
    await conn.execute(
        f"update {S}._gw_maintenance set due_at = now() + interval '3 hours'"
        " where task = 'reset_stale_locks'"
    )
    plan = "\n".join(
        row[0] for row in await conn.fetch(
            "explain (analyze, costs off) "
            + worker_queries.RESET_STALE_LOCKS_WHEN_DUE.sql(S).replace("$1::text", "'me'")
        )
    )
    scans = [line for line in plan.splitlines() if "Seq Scan on _private_jobs" in line]
    assert scans and all("never executed" in line for line in scans), plan


async def test_a_once_run_scans_the_jobs_table_only_when_a_reset_is_due(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """A `--once` run over a big table reads it through its indexes: no sequential scan
    for the stale-lock reset when none is due, none to deregister (the worker knows it
    holds no job). When a reset is due, it is the one scan."""
    await conn.execute(f"insert into {S}._private_tasks (identifier) values ('noop')")
    await conn.execute(
        f"insert into {S}._private_jobs (task_id, payload, run_at)"
        f" select t.id, '{{}}', now() + interval '1 day'"
        f" from {S}._private_tasks as t, generate_series(1, 20000)"
    )
    await conn.execute(f"analyze {S}._private_jobs")

    async def seq_scans_after_run_once() -> int:
        await add_ready_jobs(conn, 100)
        before = await settled_seq_scans()
        worker = await make_options(db_url, concurrency=8).define_job(noop, "noop").init()
        await worker.run_once()
        assert worker.jobs_run == 100
        await wait_until(worker_sessions_gone)  # a backend reports its counts as it exits
        return await settled_seq_scans() - before

    async def settled_seq_scans() -> int:
        await conn.execute("select pg_stat_force_next_flush()")
        return await table_stat(conn, "seq_scan")

    async def worker_sessions_gone() -> bool:
        return bool(await conn.fetchval(
            "select count(*) = 0 from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
        ))

    await conn.execute(
        f"update {S}._gw_maintenance set due_at = now() + interval '3 hours'"
        " where task = 'reset_stale_locks'"
    )
    assert await seq_scans_after_run_once() == 0
    registered = await conn.fetchval(f"select count(*) from {S}._gw_workers")
    assert registered == 0  # deregistered all the same

    await conn.execute(
        f"update {S}._gw_maintenance set due_at = null where task = 'reset_stale_locks'"
    )
    assert await seq_scans_after_run_once() == 1
    due = await conn.fetchval(
        f"select due_at > now() + interval '2 hours' from {S}._gw_maintenance"
        " where task = 'reset_stale_locks'"
    )
    assert due
