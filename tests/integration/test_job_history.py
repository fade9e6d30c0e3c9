"""Job history (issue 17 item 7): what a real worker records in the statement that ends a
job, the upkeep (depth samples, bounded pruning, one worker at a time), list_history on
every client, and a database migrated by an older gw upgrading."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from graphile_worker_cli import (
    CancelOutcome,
    PermanentFailure,
    TaskFailure,
    WorkerContext,
    migrate,
)
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.queries import history as history_queries
from graphile_worker_cli.sync import SyncWorkerUtils
from graphile_worker_cli.worker import history
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.waiting import wait_until
from tests.helpers.worker import S, add_job, make_options

DAY = 86400.0


async def _history(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"select * from {S}._gw_job_history_entries order by job_id"
    )
    return rows


def _tasks() -> dict[str, Any]:
    async def ok(payload: Any) -> None:
        return None

    async def refuse(payload: Any) -> None:
        raise PermanentFailure("account closed")

    async def flaky(payload: Any) -> TaskFailure:
        return TaskFailure("busy", retry_in="1h")

    async def broken(payload: Any) -> None:
        raise RuntimeError("boom")

    return {"ok": ok, "refuse": refuse, "flaky": flaky, "broken": broken}


async def _run_all(db_url: str, **options: Any) -> str:
    built = make_options(db_url, **options)
    for name, function in _tasks().items():
        built.define_job(function, name)
    worker = await built.init()
    await worker.run_once()
    return worker.worker_id


async def test_jobs_ended_for_good_are_recorded_and_retries_are_not(
    db_url: str, conn: asyncpg.Connection
) -> None:
    done = await add_job(conn, "ok", {"n": 1}, queue_name="mail", job_key="k-1")
    refused = await add_job(conn, "refuse", None)
    retried = await add_job(conn, "flaky", None)  # fails, will run again: not ended
    last_try = await add_job(conn, "broken", None, max_attempts=1)
    worker_id = await _run_all(db_url, history_retention=DAY)

    rows = {row["job_id"]: row for row in await _history(conn)}
    assert set(rows) == {done, refused, last_try}
    assert retried not in rows
    completed = rows[done]
    assert (completed["outcome"], completed["task_identifier"], completed["queue_name"],
            completed["key"], completed["attempts"], completed["worker_id"]) == (
        "completed", "ok", "mail", "k-1", 1, worker_id)
    assert completed["started_at"] is not None
    assert completed["run_at"] <= completed["started_at"] <= completed["finished_at"]
    assert completed["created_at"] <= completed["started_at"]
    assert (rows[refused]["outcome"], rows[refused]["last_error"],
            rows[refused]["attempts"]) == ("failed", "account closed", 25)
    assert rows[last_try]["outcome"] == "failed"
    assert rows[last_try]["last_error"].startswith("RuntimeError: boom")
    # The attempt that failed for good: started and due as they were for that attempt,
    # not the next run the failure wrote.
    assert rows[last_try]["started_at"] is not None
    assert rows[last_try]["run_at"] <= rows[last_try]["started_at"]
    # The queue the completion unlocked is unlocked, as without history.
    assert await conn.fetchval(f"select locked_by from {S}._private_job_queues") is None


async def test_without_history_retention_nothing_is_recorded(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await add_job(conn, "ok", None)
    await add_job(conn, "refuse", None)
    await _run_all(db_url)
    assert await _history(conn) == []
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 1


async def test_history_off_when_the_schema_lacks_the_table(
    db_url: str, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await conn.execute(f"drop table {S}._gw_job_history cascade")
    job_id = await add_job(conn, "ok", None)
    await _run_all(db_url, history_retention=DAY)
    assert "no gw job history table" in caplog.text
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs where id = $1",
                               job_id) == 0


async def _old_history(conn: asyncpg.Connection, rows: int, age: str, jobs: int = 2) -> None:
    """``rows`` history rows (settled batches) of ``jobs`` jobs each, ``age`` old."""
    await conn.execute(
        f"insert into {S}._gw_job_history (finished_at, worker_id, outcome, job_ids,"
        f" task_identifiers, queue_names, keys, attempts, max_attempts, created_at, run_at,"
        f" started_at, last_errors)"
        f" select t, 'w', 'completed', array(select r * 100 + j from generate_series(1, $3) j),"
        f" array_fill('old'::text, array[$3]), array_fill(null::text, array[$3]),"
        f" array_fill(null::text, array[$3]), array_fill(1, array[$3]),"
        f" array_fill(25, array[$3]), array_fill(t, array[$3]), array_fill(t, array[$3]),"
        f" array_fill(t, array[$3]), array_fill(null::text, array[$3])"
        f" from generate_series(1, $1) as r, (select now() - $2::text::interval) as at(t)",
        rows, age, jobs,
    )


async def test_upkeep_samples_depth_once_a_minute_and_prunes_in_batches(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await _old_history(conn, 7, "3 days")
    await _old_history(conn, 2, "1 hour")
    await conn.execute(
        f"insert into {S}._gw_queue_samples values"
        f" (date_trunc('minute', now() - interval '3 days'), 1, 1, 1, 1)"
    )
    await add_job(conn, "ok", None)
    await add_job(conn, "ok", None, run_at=datetime.now(UTC) + timedelta(hours=1))
    await add_job(conn, "ok", None, max_attempts=1)
    await conn.execute(f"update {S}._private_jobs set attempts = 1 where max_attempts = 1")
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    try:
        result = await history.run_upkeep(pool, S, 2 * DAY, batch=3)
        again = await history.run_upkeep(pool, S, 2 * DAY, batch=3)
    finally:
        await pool.close()
    # The two rows of an hour ago are one minute, rolled up for the charts.
    assert result == history.UpkeepResult(
        ran=True, history_pruned=14, samples_pruned=1, minutes_rolled=1
    )
    assert again == history.UpkeepResult(ran=True)
    assert await conn.fetchval(f"select count(*) from {S}._gw_job_history") == 2
    samples = await conn.fetch(f"select * from {S}._gw_queue_samples")
    assert len(samples) == 1  # the second round found this minute sampled
    assert (samples[0]["ready"], samples[0]["scheduled"], samples[0]["locked"],
            samples[0]["failed"]) == (1, 1, 0, 1)


async def test_upkeep_is_skipped_while_another_worker_holds_its_lock(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await _old_history(conn, 3, "3 days")
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    try:
        async with conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)",
                               history_queries.maintenance_lock_key(S))
            skipped = await history.run_upkeep(pool, S, DAY)
        ran = await history.run_upkeep(pool, S, DAY)
    finally:
        await pool.close()
    assert skipped == history.UpkeepResult(ran=False)
    assert ran.history_pruned == 6


async def test_a_running_worker_samples_depth_beside_its_jobs(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "FIRST_WITHIN", 0.0)
    await add_job(conn, "ok", None, run_at=datetime.now(UTC) + timedelta(hours=1))
    built = make_options(db_url, history_retention=DAY)
    for name, function in _tasks().items():
        built.define_job(function, name)
    worker = await built.init()
    running = asyncio.get_running_loop().create_task(worker.run())
    try:
        for _ in range(400):
            if await conn.fetchval(f"select count(*) from {S}._gw_queue_samples"):
                break
            await asyncio.sleep(0.05)
        sample = await conn.fetchrow(f"select * from {S}._gw_queue_samples")
    finally:
        worker.request_shutdown()
        await running
    assert sample is not None and sample["scheduled"] == 1


async def test_list_history_filters_on_every_client(
    db_url: str, conn: asyncpg.Connection
) -> None:
    ok_ids = [await add_job(conn, "ok", None) for _ in range(3)]
    refused = await add_job(conn, "refuse", None)
    await _run_all(db_url, history_retention=DAY)
    await _old_history(conn, 1, "2 hours", jobs=1)

    async with await WorkerUtils.connect(db_url) as utils:
        everything = await utils.list_history()
        failed = await utils.list_history(failed=True)
        ok_recent = await utils.list_history(task="ok", since=timedelta(minutes=30))
        newest = await utils.list_history(limit=1)
        with pytest.raises(BadInputError, match="since"):
            await utils.list_history(since=datetime(2026, 1, 1))
    assert len(everything) == 5
    assert [entry.finished_at for entry in everything] == sorted(
        (entry.finished_at for entry in everything), reverse=True)
    assert [(e.job_id, e.outcome, e.last_error) for e in failed] == [
        (refused, "failed", "account closed")]
    assert sorted(e.job_id for e in ok_recent) == ok_ids
    assert all(e.duration is not None and e.duration >= 0 for e in ok_recent)
    assert all(e.wait is not None and e.wait >= 0 for e in ok_recent)
    assert len(newest) == 1 and newest[0].task_identifier != "old"

    def sync_calls() -> tuple[int, int]:
        with SyncWorkerUtils.connect(db_url) as sync_utils:
            pooled = len(sync_utils.list_history(task="refuse"))
            with psycopg.connect(db_url) as pg:
                on_psycopg = len(sync_utils.list_history(task="ok", conn=pg))
        return pooled, on_psycopg

    assert await asyncio.to_thread(sync_calls) == (1, 3)


async def test_a_database_migrated_by_an_older_gw_gains_the_history_tables(
    empty_db_url: str, tmp_path: Path
) -> None:
    older = tmp_path / "gw"
    older.mkdir()
    shutil.copy(migrate.GW_MIGRATIONS_DIR / "000001_worker_registry.sql", older)
    conn = await asyncpg.connect(empty_db_url)
    try:
        before = await migrate.apply_migrations(conn, S, gw_migrations_dir=older)
        assert before.gw_applied == [1]
        after = await migrate.apply_migrations(conn, S)
        assert after.applied == []
        assert after.gw_applied == [m.number for m in migrate.gw_migrations()][1:]
        assert await conn.fetchval(
            "select relrowsecurity from pg_class where oid = $1::regclass",
            f"{S}._gw_job_history",
        )
    finally:
        await conn.close()


async def test_a_job_completed_in_its_tasks_transaction_is_recorded(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "pay", None, queue_name="payments")

    async def pay(payload: Any, ctx: WorkerContext) -> None:
        async with ctx.transaction() as tx:
            await tx.execute("select 1")

    worker = await make_options(db_url, history_retention=DAY).define_job(pay, "pay").init()
    await worker.run_once()
    assert worker.settler.completions.statements == 0  # the task's transaction completed it
    [row] = await _history(conn)
    assert (row["job_id"], row["outcome"], row["queue_name"], row["worker_id"]) == (
        job_id, "completed", "payments", worker.worker_id)
    assert row["started_at"] is not None


async def test_a_running_job_cancelled_is_recorded_as_failed(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "slow", None, max_attempts=5)
    started = asyncio.Event()

    async def slow(payload: Any, ctx: WorkerContext) -> None:
        started.set()
        await ctx.abort_signal.wait()

    worker = await make_options(db_url, history_retention=DAY).define_job(slow, "slow").init()
    running = asyncio.get_running_loop().create_task(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 20)
        async with await WorkerUtils.connect(db_url, max_size=2) as utils:
            [cancellation] = await utils.cancel_jobs([job_id])
        assert cancellation.outcome is CancelOutcome.REQUESTED
        await wait_until(lambda: _recorded(conn))
    finally:
        worker.request_shutdown()
        await running
    [row] = await _history(conn)
    assert (row["job_id"], row["outcome"], row["last_error"], row["attempts"]) == (
        job_id, "failed", "cancelled", 5)
    assert row["run_at"] <= row["started_at"]


async def _recorded(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(f"select count(*) from {S}._gw_job_history"))
