"""The abort window at shutdown: past the grace period a running job's abort signal fires,
and it has ``shutdown_abort_timeout`` to return on its own before it is cancelled."""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from tests.helpers.gw_process import Gw, add_job, clean_env, started_count, write_tasks
from tests.helpers.waiting import wait_until

S = "graphile_worker"

WATCHING_TASK = """
import asyncio
import pathlib


async def task(payload, ctx):
    await ctx.query("insert into started (job_id) values ($1)", ctx.job_id)
    while not ctx.abort_signal.is_set():
        await asyncio.sleep(0.02)
    pathlib.Path(payload["seen"]).write_text(ctx.abort_signal.reason)
"""

IGNORING_TASK = """
import asyncio
import pathlib


async def task(payload, ctx):
    await ctx.query("insert into started (job_id) values ($1)", ctx.job_id)
    try:
        while True:
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        signal_was_set = ctx.abort_signal.is_set()
        pathlib.Path(payload["seen"]).write_text(f"cancelled, signal set: {signal_was_set}")
        raise
"""


async def _started(conn: asyncpg.Connection) -> bool:
    return await started_count(conn) > 0


async def _handed_back(conn: asyncpg.Connection, job_id: int) -> None:
    row = await conn.fetchrow(f"select * from {S}._private_jobs where id = $1", job_id)
    assert row is not None
    assert (row["attempts"], row["locked_by"], row["last_error"]) == (0, None, None)
    assert row["run_at"] > await conn.fetchval("select now() + interval '50 minutes'")


async def test_a_task_watching_its_abort_signal_returns_and_is_handed_back(
    db_url: str, started_table: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    conn = started_table
    seen = tmp_path / "seen"
    tasks_dir = write_tasks(tmp_path, {"watching.py": WATCHING_TASK})
    job_id = await add_job(conn, "watching", json.dumps({"seen": str(seen)}))
    gw = await start_gw(
        "-c", db_url, "--tasks", str(tasks_dir), "--shutdown-grace-period", "200ms",
        "--shutdown-abort-timeout", "1h",
        env=clean_env(GW_SHUTDOWN_INTERRUPTED_JOB_RETRY_DELAY="1h"),
    )
    await wait_until(lambda: _started(conn), describe=lambda: gw.output)
    gw.signal(signal.SIGTERM)
    # Returns long before the hour-long window: the task stopped on its own.
    assert await gw.exit_code(timeout=30) == 0, gw.output
    assert seen.read_text() == "worker shutdown"
    assert "did not stop" not in gw.output
    await _handed_back(conn, job_id)


async def test_a_task_ignoring_its_abort_signal_is_cancelled_after_the_window(
    db_url: str, started_table: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    conn = started_table
    seen = tmp_path / "seen"
    tasks_dir = write_tasks(tmp_path, {"ignoring.py": IGNORING_TASK})
    job_id = await add_job(conn, "ignoring", json.dumps({"seen": str(seen)}))
    gw = await start_gw(
        "-c", db_url, "--tasks", str(tasks_dir), "--shutdown-grace-period", "100ms",
        "--shutdown-abort-timeout", "300ms",
        env=clean_env(GW_SHUTDOWN_INTERRUPTED_JOB_RETRY_DELAY="1h"),
    )
    await wait_until(lambda: _started(conn), describe=lambda: gw.output)
    gw.signal(signal.SIGTERM)
    assert await gw.exit_code(timeout=30) == 0, gw.output
    assert seen.read_text() == "cancelled, signal set: True"
    assert "cancelled 1 job(s) that did not stop within 0.3s" in gw.output
    await _handed_back(conn, job_id)
