"""``ctx.transaction()`` under kill -9 (issue 17 item 8): a ``gw run`` process killed at the
instant between the task's commit and the settle. The job completed with the task's
writes, so after the dead worker is swept its side effect exists once and the job never
runs again; a job killed before its commit runs again, as any job of a dead worker."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from tests.helpers.faults import SWEEP_INTERVAL, THRESHOLD, GwProcess, wait_for, worker_id_of

MARGIN = 15.0

# Every run is recorded first (outside the transaction); {"hold_before": true} blocks the
# first attempt before its transaction, {"hold_after": true} blocks every attempt right
# after its commit, once it has said so in tx_committed.
ASYNC_TASK = """
import asyncio
from typing import Any

from graphile_worker_cli.context import WorkerContext


async def task(payload: Any, ctx: WorkerContext) -> None:
    await ctx.query(
        "insert into public.tx_runs (job_id, worker_id) values ($1, $2)",
        ctx.job_id, ctx.worker_id,
    )
    if payload.get("hold_before") and ctx.attempts == 1:
        await asyncio.sleep(600)
    async with ctx.transaction() as conn:
        await conn.execute("insert into public.tx_effects (job_id) values ($1)", ctx.job_id)
    if payload.get("hold_after"):
        await ctx.query("insert into public.tx_committed (job_id) values ($1)", ctx.job_id)
        await asyncio.sleep(600)
"""

SYNC_TASK = """
import time
from typing import Any

from graphile_worker_cli.context import WorkerContext


def task(payload: Any, ctx: WorkerContext) -> None:
    ctx.run_coroutine(ctx.query(
        "insert into public.tx_runs (job_id, worker_id) values ($1, $2)",
        ctx.job_id, ctx.worker_id,
    ))
    with ctx.transaction() as tx:
        tx.execute("insert into public.tx_effects (job_id) values ($1)", ctx.job_id)
    ctx.run_coroutine(ctx.query(
        "insert into public.tx_committed (job_id) values ($1)", ctx.job_id
    ))
    time.sleep(600)
"""

TABLES = """
create table tx_runs (job_id bigint not null, worker_id text not null);
create table tx_effects (job_id bigint not null);
create table tx_committed (job_id bigint not null);
"""


async def _add(conn: asyncpg.Connection, task: str, payload: str) -> int:
    job_id: int = await conn.fetchval(
        "select id from graphile_worker.add_job($1, $2::json)", task, payload
    )
    return job_id


async def _per_job(conn: asyncpg.Connection, table: str) -> dict[int, int]:
    rows = await conn.fetch(f"select job_id, count(*) as n from {table} group by job_id")
    return {row["job_id"]: row["n"] for row in rows}


async def test_kill_9_between_the_commit_and_the_settle_runs_nothing_twice(
    conn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await conn.execute(TABLES)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "pay.py").write_text(ASYNC_TASK)
    (tasks / "pay_sync.py").write_text(SYNC_TASK)
    log = tmp_path / "workers.log"

    a = await GwProcess.start(db_url, tasks, log, "-j", "4")
    b: GwProcess | None = None
    try:
        committed = await _add(conn, "pay", '{"hold_after": true}')
        committed_sync = await _add(conn, "pay_sync", "{}")
        before = await _add(conn, "pay", '{"hold_before": true}')
        await wait_for(conn, "select count(*) = 2 from tx_committed", what="two commits", log=log)
        await wait_for(conn, "select count(*) = 3 from tx_runs", what="three runs", log=log)
        a_id = await worker_id_of(conn, a.pid)
        # The commits completed their jobs; the job held before its transaction is A's.
        locked = await conn.fetch("select id, locked_by from graphile_worker._private_jobs")
        assert [tuple(row) for row in locked] == [(before, a_id)]

        await a.kill()
        b = await GwProcess.start(db_url, tasks, log, "-j", "4")
        await wait_for(
            conn, "select count(*) = 0 from graphile_worker._private_jobs",
            timeout=THRESHOLD + SWEEP_INTERVAL + MARGIN,
            what="A swept and its unfinished job run by B", log=log,
        )
        assert not await conn.fetchval(
            "select exists (select 1 from graphile_worker._gw_workers where id = $1)", a_id
        )
        b_id = await worker_id_of(conn, b.pid)

        runs = await conn.fetch("select job_id, worker_id from tx_runs order by job_id")
        assert sorted((row["job_id"], row["worker_id"]) for row in runs) == sorted([
            (committed, a_id), (committed_sync, a_id), (before, a_id), (before, b_id),
        ])
        assert await _per_job(conn, "tx_effects") == {committed: 1, committed_sync: 1, before: 1}
    finally:
        await a.kill()
        if b is not None:
            assert await b.stop() == 0
