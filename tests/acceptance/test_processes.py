"""``gw run --processes N``: real supervisor and worker processes, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import asyncpg

from tests.helpers.gw_process import Gw, clean_env, gw_command, write_tasks
from tests.helpers.waiting import wait_until

S = "graphile_worker"

RECORD_TASK = """
import asyncio, os

async def task(payload, ctx):
    await ctx.query(
        "insert into seen (job_id, pid, worker_id) values ($1, $2, $3)",
        ctx.job_id, os.getpid(), ctx.worker_id,
    )
    await asyncio.sleep(0.05)
"""


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(item) for item in text.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def add_jobs(conn: asyncpg.Connection, count: int) -> None:
    specs = [{"identifier": "record", "payload": {"i": i}} for i in range(count)]
    await conn.execute(
        f"select {S}.add_jobs(array(select json_populate_recordset(null::{S}.job_spec, $1)))",
        json.dumps(specs),
    )


async def distinct(conn: asyncpg.Connection, column: str) -> set[object]:
    rows = await conn.fetch(f"select distinct {column} from seen")
    return {row[0] for row in rows}


async def test_two_children_run_jobs_restart_after_kill_and_stop_on_sigterm(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute("create table seen (job_id bigint, pid int, worker_id text)")
    tasks_dir = write_tasks(tmp_path, {"record.py": RECORD_TASK})
    await add_jobs(conn, 400)
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "-c", db_url, "--tasks", str(tasks_dir), "--processes", "2",
                    "-j", "2", "--poll-interval", "200ms"),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    try:
        await wait_until(lambda: _has(conn, "worker_id", 2), 30, lambda: gw.output)
        workers = await distinct(conn, "worker_id")
        pids = await distinct(conn, "pid")
        assert len(workers) == 2 and len(pids) == 2
        assert set(children(process.pid)) == pids

        victim = sorted(pids)[0]  # type: ignore[type-var]
        assert isinstance(victim, int)
        os.kill(victim, signal.SIGKILL)
        await add_jobs(conn, 200)
        await wait_until(lambda: _has(conn, "pid", 3), 30, lambda: gw.output)
        assert "crashed (killed by SIGKILL); restarting" in gw.output
        current = children(process.pid)
        assert len(current) == 2 and victim not in current

        gw.signal(signal.SIGTERM)
        assert await gw.exit_code(40) == 0, gw.output
        assert not any(alive(pid) for pid in current)
        assert gw.output.count("exited with code 0") == 2
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _has(conn: asyncpg.Connection, column: str, count: int) -> bool:
    return len(await distinct(conn, column)) >= count


async def test_once_with_processes_drains_and_exits_zero(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute("create table seen (job_id bigint, pid int, worker_id text)")
    tasks_dir = write_tasks(tmp_path, {"record.py": RECORD_TASK})
    await add_jobs(conn, 60)
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "-c", db_url, "--tasks", str(tasks_dir), "--processes", "2",
                    "--once"),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    assert await gw.exit_code(60) == 0, gw.output
    assert await conn.fetchval("select count(*) from seen") == 60
    assert await conn.fetchval("select count(distinct job_id) from seen") == 60
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0


async def test_a_breaking_migration_stops_every_child_and_the_supervisor_exits_57(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    tasks_dir = write_tasks(tmp_path, {"record.py": RECORD_TASK})
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "-c", db_url, "--tasks", str(tasks_dir), "--processes", "2"),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    try:
        await wait_until(lambda: _listeners(conn, 2), 30, lambda: gw.output)
        await conn.execute(
            """select pg_notify('worker:migrate', '{"migrationNumber": 99, "breaking": true}')"""
        )
        assert await gw.exit_code(40) == 57, gw.output
        assert "exited with code 57" in gw.output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _listeners(conn: asyncpg.Connection, count: int) -> bool:
    found: int = await conn.fetchval(
        "select count(*) from pg_stat_activity where datname = current_database() "
        "and state = 'idle' and query like 'LISTEN %jobs:insert%'"
    )
    return found >= count


async def test_each_child_serves_its_own_metrics_on_port_plus_slot(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    """`--metrics-port P --processes 2`: child 0 on P, child 1 on P + 1, each counting the
    jobs it ran; together they count every job once."""
    from tests.helpers.metrics import free_port, sample, scrape

    await conn.execute("create table seen (job_id bigint, pid int, worker_id text)")
    tasks_dir = write_tasks(tmp_path, {"record.py": RECORD_TASK})
    await add_jobs(conn, 200)
    port = free_port()
    while True:  # P + 1 must be free too
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 1))
            break
        except OSError:
            port = free_port()
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "-c", db_url, "--tasks", str(tasks_dir), "--processes", "2",
                    "-j", "2", "--metrics-port", str(port), "--metrics-host", "127.0.0.1"),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    try:
        await wait_until(lambda: _all_ran(conn, 200), 60, lambda: gw.output)

        async def completed() -> list[float]:
            counts = []
            for child_port in (port, port + 1):
                text = await asyncio.to_thread(scrape, child_port)
                counts.append(sample(text, "gw_jobs_completed_total", task="record") or 0.0)
            return counts

        async def all_counted() -> bool:
            return sum(await completed()) == 200

        await wait_until(all_counted, 30, lambda: gw.output)
        assert all(count > 0 for count in await completed())
        gw.signal(signal.SIGTERM)
        assert await gw.exit_code(40) == 0, gw.output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _all_ran(conn: asyncpg.Connection, count: int) -> bool:
    ran: int = await conn.fetchval("select count(distinct job_id) from seen")
    return ran == count


# --- task handlers passed in code reach the children --------------------------------------

APP_TASKS = """
import os

async def record(payload, ctx):
    await ctx.query(
        "insert into seen (job_id, pid, worker_id) values ($1, $2, $3)",
        ctx.job_id, os.getpid(), ctx.worker_id,
    )
"""

RUN_FROM_CODE = """
import sys
from graphile_worker_cli import runner
import app_tasks

sys.exit(runner.run(task_handlers=[app_tasks.record], database_url=sys.argv[1],
                    processes=2, once=True))
"""

RUN_FROM_MAIN = """
import sys
from graphile_worker_cli import runner
from graphile_worker_cli.errors import BadInputError

async def record(payload, ctx):
    pass

try:
    runner.run(task_handlers=[record], database_url=sys.argv[1], processes=2, once=True)
except BadInputError as error:
    print(error)
    sys.exit(error.exit_code)
"""


async def test_task_handlers_given_in_code_run_in_every_child(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute("create table seen (job_id bigint, pid int, worker_id text)")
    (tmp_path / "app_tasks.py").write_text(APP_TASKS)
    (tmp_path / "main.py").write_text(RUN_FROM_CODE)
    await add_jobs(conn, 40)
    process = await asyncio.create_subprocess_exec(
        gw_command()[0], "main.py", db_url, cwd=tmp_path,
        env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    assert await gw.exit_code(60) == 0, gw.output
    assert await conn.fetchval("select count(distinct job_id) from seen") == 40
    # Run by the children, not by the script's own process.
    assert process.pid not in await distinct(conn, "pid")


async def test_a_task_handler_defined_in_main_is_refused_before_any_child_starts(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    (tmp_path / "main.py").write_text(RUN_FROM_MAIN)
    process = await asyncio.create_subprocess_exec(
        gw_command()[0], "main.py", db_url, cwd=tmp_path, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2, err.decode()
    assert out.decode().strip() == (
        "task handler record cannot reach the 2 worker processes: it is defined in __main__ "
        "(the script being run), which a child does not run; expected a function or class at "
        "the top level of an importable module (or that module in tasks_modules)"
    )
