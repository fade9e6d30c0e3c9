"""Jobs settled by hand (WorkerUtils.complete_jobs / permanently_fail_jobs, cancel_jobs of
a job not running) are recorded in the job history while a worker with history_retention
has said history is on (its upkeep stamps _gw_history_state), and only then."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg

from graphile_worker_cli import CancelOutcome
from graphile_worker_cli.sync import SyncWorkerUtils
from graphile_worker_cli.worker import history, store
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.worker import S, add_job

DAY = 86400.0


async def _history_on(db_url: str) -> None:
    """One upkeep round of a worker with history on: it says so."""
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    try:
        assert (await history.run_upkeep(pool, S, DAY)).ran
    finally:
        await pool.close()


async def _entries(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch(f"select * from {S}._gw_job_history_entries")
    return {row["job_id"]: row for row in rows}


async def test_jobs_settled_by_hand_are_recorded_while_history_is_on(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await _history_on(db_url)
    done = await add_job(conn, "mail", None, queue_name="q1", job_key="k")
    failed = await add_job(conn, "mail", None)
    failed_default = await add_job(conn, "mail", None)
    cancelled = await add_job(conn, "mail", None)
    async with await WorkerUtils.connect(db_url) as utils:
        assert [j.id for j in await utils.complete_jobs([done])] == [done]
        await utils.permanently_fail_jobs([failed], "no longer wanted")
        await utils.permanently_fail_jobs([failed_default])
        [cancel] = await utils.cancel_jobs([cancelled])
        assert cancel.outcome is CancelOutcome.CANCELLED
        # Failed again by hand: its record is the first failure's only.
        await utils.permanently_fail_jobs([failed], "again")
        listed = {e.job_id: e for e in await utils.list_history()}

    rows = await _entries(conn)
    assert set(rows) == {done, failed, failed_default, cancelled}
    assert await conn.fetchval(f"select count(*) from {S}._gw_job_history_entries") == 4
    assert (rows[done]["outcome"], rows[done]["queue_name"], rows[done]["key"],
            rows[done]["worker_id"], rows[done]["started_at"]) == (
        "completed", "q1", "k", None, None)
    assert [(rows[i]["outcome"], rows[i]["last_error"], rows[i]["attempts"]) for i in (
        failed, failed_default, cancelled)] == [
        ("failed", "no longer wanted", 25), ("failed", "Manually marked as failed", 25),
        ("failed", "cancelled", 25)]
    assert (listed[done].worker_id, listed[done].wait, listed[done].duration) == (
        None, None, None)


async def test_nothing_is_recorded_by_hand_unless_a_worker_said_history_is_on_lately(
    db_url: str, conn: asyncpg.Connection
) -> None:
    never = await add_job(conn, "mail", None)
    async with await WorkerUtils.connect(db_url) as utils:
        await utils.complete_jobs([never])
        await _history_on(db_url)
        await conn.execute(
            f"update {S}._gw_history_state set recording_seen_at = now() - interval '2 hours'"
        )
        stale = await add_job(conn, "mail", None)
        await utils.permanently_fail_jobs([stale])
        await utils.cancel_jobs([await add_job(conn, "mail", None)])
    assert await _entries(conn) == {}


async def test_a_schema_without_the_history_state_settles_without_recording(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await _history_on(db_url)
    await conn.execute(f"drop table {S}._gw_history_state")
    job_id = await add_job(conn, "mail", None)
    async with await WorkerUtils.connect(db_url) as utils:
        assert [j.id for j in await utils.complete_jobs([job_id])] == [job_id]
    assert await _entries(conn) == {}


async def test_settled_by_hand_in_the_callers_transaction_is_recorded_with_it(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await _history_on(db_url)
    kept, rolled_back = await add_job(conn, "mail", None), await add_job(conn, "mail", None)

    def settle() -> None:
        with SyncWorkerUtils.connect(db_url) as utils, psycopg.connect(db_url) as pg:
            with pg.transaction():
                utils.complete_jobs([kept], conn=pg)
            try:
                with pg.transaction():
                    utils.permanently_fail_jobs([rolled_back], conn=pg)
                    raise RuntimeError("changed my mind")
            except RuntimeError:
                pass

    await asyncio.to_thread(settle)
    assert list(await _entries(conn)) == [kept]
    assert await conn.fetchval(f"select attempts from {S}._private_jobs") == 0


async def test_a_requested_job_nobody_holds_is_recorded_by_the_cancel_check_with_history(
    conn: asyncpg.Connection
) -> None:
    """Its worker let it go without acting on the request (a Node.js worker, a hand-back):
    a gw worker's cancel check fails it for good, and records it when it keeps history."""
    recorded, unrecorded = await add_job(conn, "mail", None), await add_job(conn, "mail", None)
    insert = f"insert into {S}._gw_cancel_requests (job_id, locked_by) values ($1, 'gone')"
    await conn.execute(insert, unrecorded)
    assert await store.cancel_requests(conn, S, "w-plain", "cancelled") == ([], 0)
    await conn.execute(insert, recorded)
    assert await store.cancel_requests(conn, S, "w-hist", "cancelled", history=True) == ([], 0)
    rows = await _entries(conn)
    assert list(rows) == [recorded]
    assert (rows[recorded]["outcome"], rows[recorded]["last_error"],
            rows[recorded]["worker_id"], rows[recorded]["started_at"]) == (
        "failed", "cancelled", "w-hist", None)
