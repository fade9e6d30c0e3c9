"""``max_concurrency`` as a ``gw run`` user sees it: a tasks directory, two worker
processes, the limit held in each while the other slots run other tasks; the
``--task-max-concurrency`` flag on an executable task; a bad limit is one line and exit
code 2."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli.errors import EXIT_USAGE
from tests.helpers.gw_process import Gw, add_job, clean_env, gw_command, write_tasks
from tests.helpers.waiting import wait_until

S = "graphile_worker"
GATE = 4217
"""Advisory lock the test holds: each ``slow`` job waits for it before it ends."""

SLOW_TASK = f"""
from graphile_worker_cli import task

@task("slow", max_concurrency=1)
async def slow(payload, ctx):
    await ctx.query("insert into runs (task, worker_id, job_id) values ('slow', $1, $2)",
                    ctx.worker_id, ctx.job_id)
    await ctx.query("select pg_advisory_xact_lock_shared({GATE})")
    await ctx.query("update runs set ended_at = clock_timestamp() where job_id = $1",
                    ctx.job_id)
"""

FAST_TASK = """
async def task(payload, ctx):
    await ctx.query(
        "insert into runs (task, worker_id, job_id, ended_at) "
        "values ('fast', $1, $2, clock_timestamp())", ctx.worker_id, ctx.job_id)
"""


async def _count(conn: asyncpg.Connection, sql: str) -> int:
    value: int = await conn.fetchval(sql)
    return value


async def test_each_process_runs_one_slow_job_at_a_time_and_fast_jobs_beside_it(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute(
        "create table runs (task text, worker_id text, job_id bigint,"
        " started_at timestamptz default clock_timestamp(), ended_at timestamptz)"
    )
    await conn.execute(f"select pg_advisory_lock({GATE})")
    for i in range(6):
        # Due first: a fetch without the limit would take them before any fast job.
        await add_job(conn, "slow", "{}", run_at=f"2020-01-01T00:00:{i:02d}Z")
    for _ in range(12):
        await add_job(conn, "fast", "{}")
    tasks_dir = write_tasks(tmp_path, {"slow.py": SLOW_TASK, "fast.py": FAST_TASK})
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "-c", db_url, "--tasks", str(tasks_dir), "--processes", "2",
                    "-j", "3", "--poll-interval", "30s"),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    try:
        async def fast_done_and_two_slow_waiting() -> bool:
            fast = await _count(conn, "select count(*) from runs where task = 'fast'")
            slow = await _count(conn, "select count(*) from runs where task = 'slow'")
            return fast == 12 and slow == 2

        await wait_until(fast_done_and_two_slow_waiting, 30, lambda: gw.output)
        # One slow job in each process, both still waiting at the gate; the other four are
        # not locked by anyone.
        slow_workers = await conn.fetch(
            "select distinct worker_id from runs where task = 'slow' and ended_at is null"
        )
        assert len(slow_workers) == 2
        assert await _count(
            conn, f"select count(*) from {S}.jobs where task_identifier = 'slow'"
                  " and locked_by is not null"
        ) == 2
        await conn.execute(f"select pg_advisory_unlock({GATE})")

        async def all_done() -> bool:
            return await _count(conn, f"select count(*) from {S}._private_jobs") == 0

        await wait_until(all_done, 30, lambda: gw.output)
        # Within each process the slow jobs never overlapped.
        overlaps = await _count(conn, """
            select count(*) from runs as a join runs as b
              on a.worker_id = b.worker_id and a.job_id < b.job_id
             where a.task = 'slow' and b.task = 'slow'
               and a.started_at < b.ended_at and b.started_at < a.ended_at""")
        assert overlaps == 0
        assert await _count(conn, "select count(*) from runs where task = 'slow'") == 6
        gw.signal(signal.SIGTERM)
        assert await gw.exit_code() == 0, gw.output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# Waits for the test's release file; its log shows whether two runs ever overlapped.
SLOW_PROGRAM = """#!/bin/sh
cat > /dev/null
echo start >> "$GW_TEST_OUT/slow.log"
while [ ! -e "$GW_TEST_OUT/release" ]; do sleep 0.02; done
echo end >> "$GW_TEST_OUT/slow.log"
"""


async def test_the_flag_limits_an_executable_task(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    await conn.execute("create table runs (task text, worker_id text, job_id bigint,"
                       " ended_at timestamptz)")
    for i in range(4):
        await add_job(conn, "slow", "{}", run_at=f"2020-01-01T00:00:{i:02d}Z")
    for _ in range(8):
        await add_job(conn, "fast", "{}")
    tasks_dir = write_tasks(tmp_path, {"fast.py": FAST_TASK})
    program = tasks_dir / "slow.sh"
    program.write_text(SLOW_PROGRAM)
    program.chmod(0o755)
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "-c", db_url, "--tasks", str(tasks_dir), "-j", "3",
                    "--task-max-concurrency", "slow=1", "--poll-interval", "30s"),
        cwd=tmp_path, env=clean_env(GW_TEST_OUT=str(out)), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    log = out / "slow.log"
    try:
        async def fast_done_beside_one_slow() -> bool:
            fast = await _count(conn, "select count(*) from runs where task = 'fast'")
            return fast == 8 and log.exists() and log.read_text() == "start\n"

        await wait_until(fast_done_beside_one_slow, 30, lambda: gw.output)
        await gw.wait_for_line("per-task limits: slow 1")
        assert await _count(
            conn, f"select count(*) from {S}.jobs where task_identifier = 'slow'"
                  " and locked_by is not null"
        ) == 1
        (out / "release").touch()

        async def all_done() -> bool:
            return await _count(conn, f"select count(*) from {S}._private_jobs") == 0

        await wait_until(all_done, 30, lambda: gw.output)
        assert log.read_text() == "start\nend\n" * 4  # one at a time
        gw.signal(signal.SIGTERM)
        assert await gw.exit_code() == 0, gw.output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--task-max-concurrency", "fast=0"],
         "error: option --task-max-concurrency: expected task identifiers with an integer >= 1"
         ' each, like {export = 1} or "export=1", got ["fast=0"]'),
        (["--task-max-concurrency", "fsat=1"],
         'error: task_max_concurrency names task "fsat", which this worker does not have (its'
         " tasks: fast)"),
    ],
)
async def test_a_bad_flag_is_one_line_and_exit_code_2(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    tasks_dir = write_tasks(tmp_path, {"fast.py": FAST_TASK})
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "--tasks", str(tasks_dir), *args), cwd=tmp_path,
        # Never reached: the options are checked before any connection is made.
        env=clean_env(DATABASE_URL="postgres://postgres@127.0.0.1:5432/gw_never_connected"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert (process.returncode, err.decode().strip()) == (EXIT_USAGE, expected)


async def test_a_bad_limit_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    tasks_dir = write_tasks(tmp_path, {"export.py": """
        from graphile_worker_cli import TaskHandler

        class Export(TaskHandler):
            IDENTIFIER = "export"
            MAX_CONCURRENCY = 0

            async def run(self, ctx):
                pass
    """})
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "--tasks", str(tasks_dir)), cwd=tmp_path,
        # Never reached: tasks are loaded before any connection is made.
        env=clean_env(DATABASE_URL="postgres://postgres@127.0.0.1:5432/gw_never_connected"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == EXIT_USAGE
    assert err.decode().strip() == (
        f"error: {tasks_dir}/export.py: max_concurrency must be a whole number of at least 1"
        " (or None for no limit), not 0"
    )
