"""``conn=`` with every driver, seen by real processes: a running ``gw run`` starts the job
the moment the caller commits; neither the sync API without a pool nor gw itself starts a
thread or imports a driver package it was not given."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from tests.helpers.connection_kinds import SCHEMA, Opener
from tests.helpers.database import count
from tests.helpers.gw_process import clean_env, gw_command, write_tasks
from tests.helpers.waiting import wait_until

S = SCHEMA

RECORD_START = """
async def task(payload, ctx):
    await ctx.query("insert into started (job_id) values ($1)", ctx.job_id)
"""


async def test_running_worker_starts_the_job_within_1s_of_commit_and_not_before(
    kind: Opener, db_url: str, observer: asyncpg.Connection, tmp_path: Path,
) -> None:
    await observer.execute(
        "create table started (job_id bigint primary key,"
        " at timestamptz not null default clock_timestamp())"
    )
    tasks = write_tasks(tmp_path, {"record_start.py": RECORD_START})
    # A long poll interval: only the commit's notification can wake the worker in time.
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "-c", db_url, "--tasks", str(tasks), "--poll-interval", "1h", "-v"),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []

    async def read() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            lines.append(raw.decode(errors="replace"))

    reader = asyncio.create_task(read())
    try:
        await wait_until(lambda: _has(lines, "listening for new jobs"), 30, lambda: "".join(lines))
        async with kind(db_url) as txn:
            added = await txn.add_job("record_start", {"order": 1})
            await txn.write_order()
            # Not before: the worker has had time to act on anything it could see.
            await asyncio.sleep(1.0)
            assert await count(observer, "select count(*) from started") == 0
            before_commit: datetime = await observer.fetchval("select clock_timestamp()")
            await txn.commit()
        await wait_until(
            lambda: _positive(observer, "select count(*) from started"), 10,
            lambda: "".join(lines),
        )
        started_at: datetime = await observer.fetchval(
            "select at from started where job_id = $1", added.id
        )
        assert before_commit < started_at < before_commit + timedelta(seconds=1)
    finally:
        process.kill()
        await process.wait()
        await reader


async def _has(lines: list[str], fragment: str) -> bool:
    return any(fragment in line for line in lines)


async def _positive(conn: asyncpg.Connection, sql: str) -> bool:
    return await count(conn, sql) > 0


NO_THREAD_SCRIPT = """
import sys, threading
import psycopg
from graphile_worker_cli import sync
gw = sync.SyncWorkerUtils(schema="graphile_worker")
with psycopg.connect(sys.argv[1]) as conn:
    added = gw.add_job("send", {"n": 1}, conn=conn)
    assert gw.get_job(added.id, conn=conn).payload == {"n": 1}
    conn.commit()
print(sorted(t.name for t in threading.enumerate()), sync._shared is None,
      "asyncpg.pool" in sys.modules)
"""


async def test_sync_utils_without_a_pool_starts_no_thread_and_no_loop(
    db_url: str, observer: asyncpg.Connection,
) -> None:
    process = await asyncio.create_subprocess_exec(
        *_python("-c", NO_THREAD_SCRIPT, db_url), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().split("\n")[0] == "['MainThread'] True True"
    assert await count(observer, f"select count(*) from {S}._private_jobs") == 1


def _python(*args: str) -> list[str]:
    return [gw_command()[0], *args]


DRIVER_PACKAGES = ("psycopg", "psycopg2", "django", "sqlalchemy", "flask", "fastapi")


IMPORTED_SCRIPT = """
import json, sys
FORBIDDEN = set(sys.argv[1].split(","))
def imported():
    return sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
import graphile_worker_cli
from graphile_worker_cli import WorkerUtils, SyncWorkerUtils, Worker, WorkerOptions
after_import = imported()
sys.argv = ["gw", "run", "--once", "-c", sys.argv[2], "--tasks", sys.argv[3]]
from graphile_worker_cli.cli.app import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"import": after_import, "run": imported(), "code": code}))
"""


async def test_gw_imports_no_driver_package(
    db_url: str, observer: asyncpg.Connection, tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path, {"record_start.py": RECORD_START})
    await observer.execute("create table started (job_id bigint primary key)")
    await observer.execute(f"select {S}.add_job('record_start')")
    process = await asyncio.create_subprocess_exec(
        *_python("-c", IMPORTED_SCRIPT, ",".join(DRIVER_PACKAGES), db_url, str(tasks)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
        cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result == {"import": [], "run": [], "code": 0}
    # The worker really ran: the check is not of a process that stopped early.
    assert await count(observer, "select count(*) from started") == 1
