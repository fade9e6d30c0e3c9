"""Liveness with real processes (issue 12): a worker whose process lives is never declared
dead, however long its event loop or its interpreter is blocked; whatever a task raises is
that job's failure; a job that kills its worker ends permanently failed.

Two ``gw run`` processes share one database with fast recovery settings (heartbeat 1 s,
sweep every 1 s, threshold 3 s): every block below is several thresholds long.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.helpers.faults import GwProcess, wait_for, write_tasks

FAST = ["--heartbeat-interval", "1s", "--sweep-interval", "1s", "--sweep-threshold", "3s"]

# Each task records its run first (a run cut short is still on record), then misbehaves.
TASKS = {
    "block_loop.py": '''
import time


async def task(payload, ctx):
    await ctx.query(
        "insert into public.fault_runs (job_id, worker_id, attempt) values ($1, $2, $3)",
        ctx.job_id, ctx.worker_id, ctx.attempts,
    )
    time.sleep(float(payload["seconds"]))  # the classic mistake: blocking in async code
''',
    "hold_gil.py": '''
def task(payload, ctx):
    ctx.run_coroutine(ctx.query(
        "insert into public.fault_runs (job_id, worker_id, attempt) values ($1, $2, $3)",
        ctx.job_id, ctx.worker_id, ctx.attempts,
    ))
    # One C call that never lets go of the GIL: no other thread of the process runs.
    sum(range(int(payload["n"])))
''',
    "raise_async.py": '''
import asyncio


async def task(payload, ctx):
    kind = payload["raise"]
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind == "SystemExit":
        raise SystemExit(3)
    if kind == "CancelledError":
        raise asyncio.CancelledError("the task cancelled itself")
    if kind == "GeneratorExit":
        raise GeneratorExit
''',
    "raise_sync.py": '''
import asyncio


def task(payload):
    kind = payload["raise"]
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind == "SystemExit":
        raise SystemExit(3)
    if kind == "CancelledError":
        raise asyncio.CancelledError("the task cancelled itself")
''',
    "poison.py": '''
import os


async def task(payload, ctx):
    await ctx.query(
        "insert into public.fault_runs (job_id, worker_id, attempt) values ($1, $2, $3)",
        ctx.job_id, ctx.worker_id, ctx.attempts,
    )
    os._exit(1)
''',
}


def write_all(tmp_path: Path) -> Path:
    tasks = write_tasks(tmp_path)
    for name, source in TASKS.items():
        (tasks / name).write_text(source)
    return tasks


async def add(conn: asyncpg.Connection, task: str, payload: str, count: int = 1,
              max_attempts: int = 25) -> list[int]:
    rows = await conn.fetch(
        "select (graphile_worker.add_job($1, $2::json, max_attempts => $3)).id"
        " from generate_series(1, $4)",
        task, payload, max_attempts, count,
    )
    return [row["id"] for row in rows]


async def two_workers(
    conn: asyncpg.Connection, db_url: str, tasks: Path, tmp_path: Path, *args: str
) -> list[GwProcess]:
    workers = [
        await GwProcess.start(db_url, tasks, tmp_path / f"worker{n}.log", *args, *FAST)
        for n in (1, 2)
    ]
    for worker in workers:
        await wait_for(conn, "select exists (select 1 from graphile_worker._gw_workers"
                       " where pid = $1)", worker.pid, what="worker registered", log=worker.log)
    return workers


def logs(workers: list[GwProcess]) -> str:
    return "\n".join(w.log.read_text() for w in workers if w.log.exists())


async def assert_each_ran_once_and_completed(
    conn: asyncpg.Connection, job_ids: list[int], workers: list[GwProcess], timeout: float
) -> None:
    await wait_for(
        conn, "select not exists (select 1 from graphile_worker._private_jobs"
        " where id = any($1::bigint[]))", job_ids, timeout=timeout,
        what="every job completed", log=workers[0].log,
    )
    runs = await conn.fetch("select job_id, count(*) as n from fault_runs group by job_id")
    assert {r["job_id"]: r["n"] for r in runs} == dict.fromkeys(job_ids, 1), logs(workers)
    assert "swept" not in logs(workers)
    assert all(w.proc.returncode is None for w in workers)


async def test_async_tasks_blocking_the_loop_are_never_swept(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    tasks = write_all(tmp_path)
    workers = await two_workers(fconn, db_url, tasks, tmp_path, "-j", "2")
    try:
        job_ids = await add(fconn, "block_loop", '{"seconds": 12}', count=4)
        await assert_each_ran_once_and_completed(fconn, job_ids, workers, timeout=90)
        text = logs(workers)
        # The watchdog named the stall, its jobs and the fix.
        assert re.search(r"event loop of worker \S+ was blocked for 1\d\.\ds while running "
                         r"job \d+ \(block_loop\)", text), text[-3000:]
        assert "make it a sync `def task`, or use `asyncio.to_thread`" in text
        stalls = await fconn.fetch(
            "select (metadata ->> 'longest_stall_seconds')::float8 as s"
            " from graphile_worker._gw_workers"
        )
        assert stalls and max(r["s"] or 0 for r in stalls) > 10
    finally:
        for worker in workers:
            await worker.stop()


async def test_a_stalled_worker_does_not_stop_the_others_sweeps(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    tasks = write_all(tmp_path)
    workers = await two_workers(fconn, db_url, tasks, tmp_path, "-j", "1")
    try:
        await add(fconn, "block_loop", '{"seconds": 15}')
        await wait_for(fconn, "select count(*) = 1 from fault_runs", what="one worker stalled",
                       log=workers[0].log)
        # A dead worker appears while one worker is stalled: the other sweeps it.
        await fconn.execute(
            "insert into graphile_worker._gw_workers (id, host, pid, version,"
            " heartbeat_interval, last_heartbeat_at)"
            " values ('gw-ghost', 'nowhere', 0, 'x', interval '0.1s', now() - interval '1h')"
        )
        took = await wait_for(
            fconn, "select not exists (select 1 from graphile_worker._gw_workers"
            " where id = 'gw-ghost')", timeout=10, what="swept during the stall",
            log=workers[1].log,
        )
        stalled = await fconn.fetchval(
            "select exists (select 1 from graphile_worker._private_jobs where locked_by"
            " is not null)"
        )
        assert stalled, f"the stall ended before the sweep ({took:.1f}s)"
    finally:
        for worker in workers:
            await worker.stop()


async def test_sync_task_holding_the_gil_is_never_swept(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    tasks = write_all(tmp_path)
    # Long enough that the heartbeat is judged late: only the liveness lock keeps it alive.
    n = 10 ** 8
    started = time.monotonic()
    sum(range(n))
    per_call = time.monotonic() - started
    n = int(n * 10 / max(per_call, 0.01))
    workers = await two_workers(fconn, db_url, tasks, tmp_path, "-j", "2")
    try:
        job_ids = await add(fconn, "hold_gil", f'{{"n": {n}}}')
        await wait_for(fconn, "select count(*) = 1 from fault_runs", what="started",
                       log=workers[0].log)
        heartbeat_went_late = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            late = await fconn.fetchval(
                "select bool_or(last_heartbeat_at < now() - interval '3 seconds')"
                " from graphile_worker._gw_workers"
            )
            heartbeat_went_late = heartbeat_went_late or bool(late)
            if not await fconn.fetchval("select exists (select 1 from"
                                        " graphile_worker._private_jobs where id = $1)",
                                        job_ids[0]):
                break
            await asyncio.sleep(0.2)
        assert heartbeat_went_late, "the GIL was not held long enough to test anything"
        await assert_each_ran_once_and_completed(fconn, job_ids, workers, timeout=30)
    finally:
        for worker in workers:
            await worker.stop()


async def test_base_exceptions_from_tasks_fail_the_job_and_the_worker_lives(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    tasks = write_all(tmp_path)
    log = tmp_path / "worker.log"
    worker = await GwProcess.start(db_url, tasks, log, "-j", "4", *FAST)
    cases = [
        ("raise_async", "KeyboardInterrupt", "KeyboardInterrupt"),
        ("raise_async", "SystemExit", "SystemExit: 3"),
        ("raise_async", "CancelledError", "CancelledError: the task cancelled itself"),
        ("raise_async", "GeneratorExit", "GeneratorExit"),
        ("raise_sync", "KeyboardInterrupt", "KeyboardInterrupt"),
        ("raise_sync", "SystemExit", "SystemExit: 3"),
        ("raise_sync", "CancelledError", "CancelledError: the task cancelled itself"),
    ]
    try:
        expected: dict[int, str] = {}
        for task, kind, error in cases:
            [job_id] = await add(fconn, task, f'{{"raise": "{kind}"}}', max_attempts=2)
            expected[job_id] = error
        # Both attempts used (the retry waits e**1 s), then no more: no endless loop.
        await wait_for(
            fconn, "select count(*) = $2 from graphile_worker._private_jobs"
            " where id = any($1::bigint[]) and attempts = 2 and locked_by is null",
            list(expected), len(expected), timeout=60, what="every job failed twice", log=log,
        )
        rows = await fconn.fetch(
            "select id, attempts, last_error from graphile_worker._private_jobs"
            " where id = any($1::bigint[])", list(expected),
        )
        assert {r["id"]: r["last_error"] for r in rows} == expected
        assert worker.proc.returncode is None
        text = log.read_text()
        assert "interrupted by shutdown" not in text and "bug:" not in text
        [after] = await add(fconn, "record", "{}")
        await wait_for(fconn, "select not exists (select 1 from graphile_worker._private_jobs"
                       " where id = $1)", after, what="the worker still works", log=log)
    finally:
        code = await worker.stop()
    assert code == 0, log.read_text()[-3000:]


async def test_poison_job_that_kills_its_worker_fails_permanently(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    tasks = write_all(tmp_path)
    [job_id] = await add(fconn, "poison", "{}", max_attempts=3)
    workers: list[GwProcess] = []
    deaths = 0
    try:
        for n in (1, 2):
            workers.append(await GwProcess.start(db_url, tasks, tmp_path / f"w{n}.log", *FAST))
        deadline = time.monotonic() + 120
        while True:
            row = await fconn.fetchrow(
                "select attempts, max_attempts, locked_by, last_error"
                " from graphile_worker._private_jobs where id = $1", job_id,
            )
            assert row is not None
            if row["attempts"] >= row["max_attempts"] and row["locked_by"] is None:
                break
            assert time.monotonic() < deadline, logs(workers)[-3000:]
            for index, worker in enumerate(workers):
                if worker.proc.returncode is not None:  # restarted as it dies
                    deaths += 1
                    log = tmp_path / f"w{index + 1}-{deaths}.log"
                    workers[index] = await GwProcess.start(db_url, tasks, log, *FAST)
            await asyncio.sleep(0.2)
        assert row["attempts"] == 3
        assert re.fullmatch(
            r"worker gw-\w+ died while running this job \(recovered by sweep at "
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\)", row["last_error"]
        ), row["last_error"]
        assert await fconn.fetchval("select count(*) from fault_runs") == 3
        # Permanently failed: nobody runs it again.
        await asyncio.sleep(5)
        assert await fconn.fetchval("select count(*) from fault_runs") == 3
    finally:
        for worker in workers:
            await worker.kill()


async def test_the_session_connections_use_direct_database_url(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    # Another role on the same database stands in for "the server behind the pooler".
    parts = urlsplit(db_url)
    role = "root" if parts.username != "root" else "postgres"
    direct = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
    tasks = write_all(tmp_path)
    log = tmp_path / "worker.log"
    worker = await GwProcess.start(db_url, tasks, log, *FAST, "--direct-database-url", direct)
    try:
        await wait_for(
            fconn, "select exists (select 1 from pg_stat_activity where datname ="
            " current_database() and application_name like 'gw-liveness %'"
            " and usename = $1)", role, what="liveness session on the direct URL", log=log,
        )
        # The sessions (liveness, LISTEN, fetch) on the direct URL; the pool on the other.
        await wait_for(
            fconn, "select count(*) = 3 from pg_stat_activity where datname ="
            " current_database() and usename = $1 and backend_type = 'client backend'",
            role, what="three session connections on the direct URL", log=log,
        )
        # The listen session runs its other LISTENs (and the delivery probe) first.
        listening = (
            "select usename from pg_stat_activity where datname = current_database()"
            " and query like 'LISTEN %jobs:insert%'"
        )
        await wait_for(
            fconn, f"select exists ({listening})", what="LISTEN jobs:insert", log=log,
        )
        assert [r["usename"] for r in await fconn.fetch(listening)] == [role]
        pooled = await fconn.fetchval(
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and usename <> $1 and pid <> pg_backend_pid()"
            " and backend_type = 'client backend'", role,
        )
        assert pooled >= 1
    finally:
        await worker.stop()
