"""Cancelling a running job through a real PgBouncer in transaction mode: the request goes
through the pooler; the worker hears ``gw:cancel`` on its direct listen connection, or,
with no direct URL (LISTEN delivers nothing through the pooler), finds the request on its
periodic look."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.helpers import pgbouncer as pooler
from tests.helpers.gw_process import Gw, add_job, gw, write_tasks
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.skipif(
    pooler.binary() is None, reason="pgbouncer is not installed (scripts/test.sh installs it)"
)

S = "graphile_worker"

WATCHING_TASK = """
async def task(payload, ctx):
    await ctx.query("insert into runs (job_id) values ($1)", ctx.job_id)
    reason = await ctx.abort_signal.wait()
    await ctx.query("update runs set reason = $2 where job_id = $1", ctx.job_id, reason)
"""


@pytest.fixture
def pooled_url(db_url: str, pg_admin_url: str) -> Iterator[str]:
    with pooler.pgbouncer(pg_admin_url, pool_size=4) as port:
        yield pooler.through(db_url, port)


async def _cancel_through_the_pooler(
    conn: asyncpg.Connection, pooled_url: str, worker: Gw, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await add_job(conn, "watching", "{}")

    async def running() -> bool:
        return bool(await conn.fetchval(
            f"select exists (select 1 from runs join {S}._private_jobs as j on j.id = job_id"
            f" join {S}._gw_workers as w on w.id = j.locked_by)"
        ))

    await wait_until(running, 30, lambda: worker.output)
    monkeypatch.setenv("GW_PREPARED_STATEMENTS", "false")
    result = await gw("jobs", "cancel", str(job_id), "-c", pooled_url)
    assert result.code == 0, result.err
    assert "cancel requested" in result.out

    async def cancelled() -> bool:
        return bool(await conn.fetchval(
            f"select last_error = 'cancelled' and locked_by is null from {S}._private_jobs"
            " where id = $1", job_id,
        ))

    await wait_until(cancelled, 20, lambda: worker.output)
    assert await conn.fetchval("select reason from runs where job_id = $1", job_id) == (
        "cancelled"
    )


async def test_the_worker_hears_the_cancel_on_its_direct_listen_connection(
    db_url: str, pooled_url: str, conn: asyncpg.Connection, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    await conn.execute("create table runs (job_id bigint primary key, reason text)")
    tasks_dir = write_tasks(tmp_path, {"watching.py": WATCHING_TASK})
    # The periodic look is 150 s away: only the notification can be in time.
    worker = await start_gw(
        "-c", pooled_url, "--direct-database-url", db_url, "--no-prepared-statements",
        "--poll-interval", "30s", "--tasks", str(tasks_dir),
    )
    await _cancel_through_the_pooler(conn, pooled_url, worker, monkeypatch)
    assert "LISTEN delivers no notifications" not in worker.output


async def test_without_a_direct_url_the_periodic_look_finds_the_cancel(
    pooled_url: str, conn: asyncpg.Connection, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    await conn.execute("create table runs (job_id bigint primary key, reason text)")
    tasks_dir = write_tasks(tmp_path, {"watching.py": WATCHING_TASK})
    worker = await start_gw(
        "-c", pooled_url, "--no-prepared-statements", "--poll-interval", "200ms",
        "--tasks", str(tasks_dir),
    )
    await worker.wait_for_line("LISTEN delivers no notifications", timeout=30)
    await _cancel_through_the_pooler(conn, pooled_url, worker, monkeypatch)
