"""gw through a real PgBouncer in transaction mode (Debian's package, a pool of 4 server
connections): jobs run, LISTEN works through the direct URL, and without one the worker
says once that it only polls."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.helpers import pgbouncer as pooler
from tests.helpers.gw_process import (
    QUICK_TASK,
    Gw,
    clean_env,
    gw,
    started_count,
    write_tasks,
)
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.skipif(
    pooler.binary() is None, reason="pgbouncer is not installed (scripts/test.sh installs it)"
)

S = "graphile_worker"
POOL_SIZE = 4

TIMED_TASK = """
async def task(payload, ctx):
    await ctx.query(
        "insert into started (job_id, started_at) values ($1, clock_timestamp())", ctx.job_id
    )
"""


@pytest.fixture
def pooler_port(pg_admin_url: str) -> Iterator[int]:
    with pooler.pgbouncer(pg_admin_url, pool_size=POOL_SIZE) as port:
        yield port


@pytest.fixture
def pooled_url(db_url: str, pooler_port: int) -> str:
    return pooler.through(db_url, pooler_port)


@pytest.fixture
async def pooled_conn(pooled_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pooled_url, statement_cache_size=0)
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_job_added_through_pgbouncer_starts_at_once_with_the_direct_url_listening(
    db_url: str, pooled_url: str, conn: asyncpg.Connection, pooled_conn: asyncpg.Connection,
    tmp_path: Path, start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    await conn.execute(
        "create table started (job_id bigint primary key, started_at timestamptz not null)"
    )
    tasks_dir = write_tasks(tmp_path, {"timed.py": TIMED_TASK})
    worker = await start_gw(
        "-c", pooled_url, "--direct-database-url", db_url, "--no-prepared-statements",
        "--poll-interval", "30s", "--tasks", str(tasks_dir),
    )
    # The first fetch (at start) has passed once the registry row is there; the next poll
    # is 30 s away, so a prompt start can only come from LISTEN.
    await wait_until(lambda: _registered(conn), 30, lambda: worker.output)
    await wait_until(lambda: _listening(conn), 30, lambda: worker.output)
    created_at = await pooled_conn.fetchval(
        f"select created_at from {S}.add_job('timed', '{{}}'::json)"
    )
    await wait_until(lambda: _count(conn, "select count(*) from started"), 10,
                     lambda: worker.output)
    started_at = await conn.fetchval("select started_at from started")
    assert (started_at - created_at).total_seconds() < 1.0
    assert "LISTEN delivers no notifications" not in worker.output


async def test_without_a_direct_url_the_worker_says_once_that_it_only_polls(
    pooled_url: str, conn: asyncpg.Connection, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    monkeypatch.setenv("GW_PREPARED_STATEMENTS", "false")  # for `gw add-job`
    await conn.execute("create table started (job_id bigint primary key)")
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    worker = await start_gw(
        "-c", pooled_url, "--no-prepared-statements", "--poll-interval", "200ms",
        "--tasks", str(tasks_dir),
    )
    await worker.wait_for_line("LISTEN delivers no notifications", timeout=30)
    added = await gw("add-job", "quick", "{}", "-c", pooled_url)
    assert added.code == 0, added.err
    await wait_until(lambda: _count(conn, "select count(*) from started"), 20,
                     lambda: worker.output)
    assert sum("LISTEN delivers no notifications" in line for line in worker.lines) == 1


async def test_two_workers_through_a_pool_of_four_run_3000_jobs_once_each(
    db_url: str, pooled_url: str, conn: asyncpg.Connection, pooled_conn: asyncpg.Connection,
    tmp_path: Path, start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    await conn.execute("create table started (job_id bigint primary key)")
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    workers = [
        await start_gw(
            "-c", pooled_url, "--direct-database-url", db_url, "--no-prepared-statements",
            "--concurrency", "8", "--tasks", str(tasks_dir),
        )
        for _ in range(2)
    ]
    await pooled_conn.execute(
        f"select {S}.add_job('quick', '{{}}'::json) from generate_series(1, 3000)"
    )

    def output() -> str:
        return "\n---\n".join(w.output for w in workers)

    await wait_until(lambda: _none(conn, f"select count(*) from {S}.jobs"), 120, output)
    # A job run twice would have failed on the primary key and stayed as a retry.
    assert await started_count(conn) == 3000
    assert await conn.fetchval(f"select count(*) from {S}.jobs") == 0


async def test_the_jobs_table_is_vacuumed_through_pgbouncer(
    db_url: str, pooled_url: str, conn: asyncpg.Connection, pooled_conn: asyncpg.Connection,
    tmp_path: Path, start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    """The vacuum claim is a row, not a session lock, and VACUUM is one statement: both
    work through a transaction pooler, on the worker's pooled connections."""
    await conn.execute("create table started (job_id bigint primary key)")
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    worker = await start_gw(
        "-c", pooled_url, "--direct-database-url", db_url, "--no-prepared-statements",
        "--concurrency", "8", "--tasks", str(tasks_dir), "--jobs-vacuum-threshold", "200",
    )
    vacuums = (
        "select vacuum_count from pg_stat_user_tables"
        " where schemaname = $1 and relname = '_private_jobs'"
    )
    before = await conn.fetchval(vacuums, S)

    async def vacuumed_while_jobs_keep_coming() -> bool:
        await pooled_conn.execute(
            f"select {S}.add_job('quick', '{{}}'::json) from generate_series(1, 50)"
        )
        return bool(await conn.fetchval(vacuums, S) > before)

    await wait_until(vacuumed_while_jobs_keep_coming, 60, lambda: worker.output)
    await worker.wait_for_line("vacuumed the jobs table")


async def test_cli_commands_work_through_pgbouncer(
    pooled_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GW_PREPARED_STATEMENTS", "false")
    added = await gw("add-job", "hello", '{"a": 1}', "-c", pooled_url)
    assert added.code == 0, added.err
    listed = await gw("jobs", "list", "-c", pooled_url)
    assert listed.code == 0, listed.err
    assert "hello" in listed.out
    assert await conn.fetchval(
        f"select count(*) from {S}.jobs where task_identifier = 'hello'"
    ) == 1


async def _registered(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(f"select count(*) from {S}._gw_workers"))


async def _listening(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(
        "select count(*) from pg_stat_activity where datname = current_database() "
        "and query like 'LISTEN %jobs:insert%'"
    ))


async def _count(conn: asyncpg.Connection, sql: str) -> bool:
    return bool(await conn.fetchval(sql))


async def _none(conn: asyncpg.Connection, sql: str) -> bool:
    return not await conn.fetchval(sql)


async def test_cron_backfill_and_recovery_commands_work_through_pgbouncer(
    db_url: str, pooled_url: str, conn: asyncpg.Connection, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    monkeypatch.setenv("GW_PREPARED_STATEMENTS", "false")  # for `gw workers`
    await conn.execute("create table started (job_id bigint primary key)")
    # Known since an hour, last run five minutes ago: the worker backfills the runs missed.
    await conn.execute(
        f"insert into {S}._private_known_crontabs (identifier, known_since, last_execution) "
        "values ('quick', now() - interval '1 hour', now() - interval '5 minutes')"
    )
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    crontab = tmp_path / "crontab"
    crontab.write_text("* * * * * quick ?fill=10m\n")
    worker = await start_gw(
        "-c", pooled_url, "--direct-database-url", db_url, "--no-prepared-statements",
        "--tasks", str(tasks_dir), "--crontab", str(crontab),
    )
    await wait_until(lambda: _count(conn, "select count(*) from started"), 30,
                     lambda: worker.output)
    listed = await gw("workers", "list", "-c", pooled_url)
    assert listed.code == 0, listed.err
    assert "alive" in listed.out
    swept = await gw("workers", "sweep", "-c", pooled_url)
    assert swept.code == 0, swept.err
    assert await conn.fetchval(f"select count(*) from {S}._gw_workers") == 1


async def test_gw_admin_serves_through_pgbouncer(
    pooled_url: str, pooled_conn: asyncpg.Connection,
) -> None:
    await pooled_conn.execute(f"select {S}.add_job('hello', '{{}}'::json)")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "graphile_worker_cli", "admin", "--port", "0", "--read-only",
        "-c", pooled_url, env=clean_env(GW_PREPARED_STATEMENTS="false"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        banner = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
        assert found, banner

        def get(path: str) -> dict[str, object]:
            with urllib.request.urlopen(found.group(0) + path, timeout=10) as response:
                return dict(json.load(response))

        # Several requests: each statement may land on another server connection.
        for _ in range(5):
            overview = await asyncio.to_thread(get, "api/overview")
            counts = overview["counts"]
            assert isinstance(counts, dict) and counts["total"] == 1, overview
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0
