"""The connection budget (docs/operations.md): a fleet of N worker processes never holds
more than N x (max_pg_conn + 3) connections, sampled from pg_stat_activity while it runs a
workload; `gw workers list` shows each worker's budget."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from tests.helpers.gw_process import Gw, clean_env, gw, write_tasks
from tests.helpers.waiting import wait_until

S = "graphile_worker"
PROCESSES = 2
MAX_PG_CONN = 3
SESSIONS = 3  # LISTEN, the fetch session, the liveness session
JOBS = 600

BUSY_TASK = """
import asyncio


async def task(payload, ctx):
    await ctx.query("insert into started (job_id) values ($1)", ctx.job_id)
    await asyncio.sleep(0.005)
"""


async def _connections(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "select count(*) from pg_stat_activity "
        "where datname = current_database() and pid <> pg_backend_pid()"
    )
    return count


async def test_a_fleet_never_holds_more_than_its_budget(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    await conn.execute("create table started (job_id bigint primary key)")
    tasks_dir = write_tasks(tmp_path, {"busy.py": BUSY_TASK})
    fleet = await start_gw(
        "-c", db_url, "--tasks", str(tasks_dir), "--processes", str(PROCESSES),
        "--concurrency", "8", env=clean_env(GW_MAX_PG_CONN=str(MAX_PG_CONN)),
    )

    async def registered() -> bool:
        return bool(await conn.fetchval(
            f"select count(*) = {PROCESSES} from {S}._gw_workers"
        ))

    await wait_until(registered, 30, lambda: fleet.output)
    listed = await gw("workers", "list", "-c", db_url)
    assert listed.code == 0, listed.err
    assert listed.out.count(f"{MAX_PG_CONN}+{SESSIONS}") == PROCESSES, listed.out

    peak = 0
    await conn.execute(
        f"select {S}.add_job('busy', '{{}}'::json) from generate_series(1, {JOBS})"
    )

    async def drained() -> bool:
        # Sampled on each poll while the fleet drains the jobs.
        nonlocal peak
        peak = max(peak, await _connections(conn))
        done: bool = await conn.fetchval(f"select count(*) = {JOBS} from started")
        return done

    await wait_until(drained, 90, lambda: fleet.output)
    budget = PROCESSES * (MAX_PG_CONN + SESSIONS)
    assert peak <= budget, f"peak {peak} connections > budget {budget}"
    # The workload did use the pools beyond their first connection.
    assert peak > PROCESSES * (1 + SESSIONS), f"peak {peak}: the pools never grew"
