"""``gw jobs cancel`` across real processes: two ``gw run`` workers share a database, the
job runs on one of them, and a third process (the CLI) cancels it. The worker holding it
is told through PostgreSQL, fires the job's abort signal with reason "cancelled", and the
job ends failed for good; it never runs again."""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from tests.helpers.gw_process import Gw, add_job, gw, write_tasks
from tests.helpers.waiting import wait_until

S = "graphile_worker"

# Records each run, then waits for the abort signal and records its reason.
WATCHING_TASK = """
async def task(payload, ctx):
    await ctx.query(
        "insert into runs (job_id, worker_id) values ($1, $2)", ctx.job_id, ctx.worker_id
    )
    reason = await ctx.abort_signal.wait()
    await ctx.query("update runs set reason = $2 where job_id = $1", ctx.job_id, reason)
"""

# Records each run, then ignores the abort signal until it is cancelled.
IGNORING_TASK = """
import asyncio


async def task(payload, ctx):
    await ctx.query(
        "insert into runs (job_id, worker_id) values ($1, $2)", ctx.job_id, ctx.worker_id
    )
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await ctx.query(
            "update runs set reason = $2 where job_id = $1",
            ctx.job_id, "cancelled after the window, signal: " + str(ctx.abort_signal.reason),
        )
        raise
"""

RUNS_TABLE = (
    "create table runs (job_id bigint not null, worker_id text not null, reason text)"
)


async def _two_workers(
    db_url: str, tmp_path: Path, start_gw: Callable[..., Awaitable[Gw]], *flags: str
) -> list[Gw]:
    tasks_dir = write_tasks(tmp_path, {"watching.py": WATCHING_TASK,
                                       "ignoring.py": IGNORING_TASK})
    common = ("-c", db_url, "--tasks", str(tasks_dir), "--poll-interval", "30s", *flags)
    return [await start_gw(*common), await start_gw(*common)]


async def _running_on_a_registered_worker(conn: asyncpg.Connection, job_id: int) -> str:
    async def ready() -> bool:
        return bool(await conn.fetchval(
            f"select exists (select 1 from {S}._private_jobs as j join {S}._gw_workers as w"
            f" on w.id = j.locked_by where j.id = $1)"
            " and exists (select 1 from runs where job_id = $1)", job_id,
        ))

    await wait_until(ready, timeout=30)
    worker_id: str = await conn.fetchval(
        f"select locked_by from {S}._private_jobs where id = $1", job_id
    )
    return worker_id


async def _failed_as_cancelled(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record:
    async def settled() -> bool:
        return bool(await conn.fetchval(
            f"select locked_by is null from {S}._private_jobs where id = $1", job_id
        ))

    await wait_until(settled, timeout=30)
    row = await conn.fetchrow(
        f"select attempts, max_attempts, last_error from {S}._private_jobs where id = $1", job_id
    )
    assert row is not None
    assert row["last_error"] == "cancelled" and row["attempts"] == row["max_attempts"]
    return row


async def _stop(workers: list[Gw]) -> None:
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert await worker.exit_code() == 0, worker.output


async def test_a_job_running_on_one_of_two_workers_is_cancelled_from_the_cli(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    await conn.execute(RUNS_TABLE)
    workers = await _two_workers(db_url, tmp_path, start_gw)
    job_id = await add_job(conn, "watching", "{}", max_attempts="5")
    holder = await _running_on_a_registered_worker(conn, job_id)

    result = await gw("jobs", "cancel", str(job_id), "-c", db_url)
    assert result.code == 0, result.err
    assert result.out.strip() == (
        f"job {job_id}: cancel requested (running on worker {holder}): it is aborted, "
        "then failed for good as cancelled"
    )
    await _failed_as_cancelled(conn, job_id)
    runs = await conn.fetch("select worker_id, reason from runs where job_id = $1", job_id)
    assert [(r["worker_id"], r["reason"]) for r in runs] == [(holder, "cancelled")]
    await _stop(workers)
    assert await conn.fetchval("select count(*) from runs") == 1  # never ran again
    logs = "\n".join(w.output for w in workers)
    assert f"job {job_id} watching cancelled; failed for good" in logs
    assert not await conn.fetchval(f"select count(*) from {S}._gw_cancel_requests")


async def test_a_task_ignoring_the_signal_is_cancelled_when_the_window_ends(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    await conn.execute(RUNS_TABLE)
    workers = await _two_workers(
        db_url, tmp_path, start_gw, "--shutdown-abort-timeout", "300ms"
    )
    job_id = await add_job(conn, "ignoring", "{}")
    holder = await _running_on_a_registered_worker(conn, job_id)

    result = await gw("jobs", "cancel", str(job_id), "-c", db_url, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == [
        {"job_id": job_id, "outcome": "requested", "worker_id": holder}
    ]
    await _failed_as_cancelled(conn, job_id)
    reason = await conn.fetchval("select reason from runs where job_id = $1", job_id)
    assert reason == "cancelled after the window, signal: cancelled"
    await _stop(workers)


async def test_each_job_gets_its_line_and_a_missing_one_fails_the_command(
    db_url: str, conn: asyncpg.Connection
) -> None:
    waiting = await add_job(conn, "t", "{}")
    node_held = await add_job(conn, "t", "{}")
    await conn.execute(
        f"update {S}._private_jobs set locked_by = 'node-1', locked_at = now(), attempts = 1"
        " where id = $1", node_held,
    )
    result = await gw("jobs", "cancel", str(waiting), str(node_held), "424242", "-c", db_url)
    assert result.code == 1
    assert result.out.splitlines() == [
        f"job {waiting}: cancelled (failed for good)",
        f"job {node_held}: running on node-1, a worker gw cannot interrupt (a reference "
        "worker?): marked only; it runs on and will not run again",
        "job 424242: not found",
    ]
    assert result.err.strip() == "error: job(s) 424242 not found"
    again = await gw("jobs", "cancel", str(waiting), "-c", db_url)
    assert (again.code, again.out.strip()) == (
        0, f"job {waiting}: already failed for good; left as it is"
    )
