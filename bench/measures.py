"""The measurements. Each returns Figures; a failure becomes a Figure with a note, so one
broken measurement never hides the others."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from bench import databases, procs, profiles, sides
from bench.report import Figure
from graphile_worker_cli import db

S = db.escape_identifier(profiles.SCHEMA)
INSERT_CHUNK = 5_000
LISTEN_TIMEOUT = 60.0
SETTLE_SECONDS = 1.0  # an idle worker's memory after it started listening
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Context:
    dbs: databases.Databases
    sizes: profiles.Sizes
    concurrency: int


@contextlib.asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def insert_jobs(url: str, identifier: str, count: int, payload_sql: str) -> None:
    """Add ``count`` jobs through the SQL ``add_jobs`` function, built in the server.
    ``payload_sql`` is an SQL expression of ``i`` (the job's number)."""
    statement = (
        f"select count(*) from {S}.add_jobs(array("
        f" select row($1::text, {payload_sql}, null, null, null, null, null, null)::{S}.job_spec"
        " from generate_series($2::int, $3::int) as i))"
    )
    async with connection(url) as conn:
        for start in range(1, count + 1, INSERT_CHUNK):
            end = min(count, start + INSERT_CHUNK - 1)
            await conn.fetchval(statement, identifier, start, end)


async def transactions(url: str) -> int:
    """Transactions committed or rolled back in this database so far (flushed at backend
    exit, so read it after the worker stopped)."""
    async with connection(url) as conn:
        value = await conn.fetchval(
            "select xact_commit + xact_rollback from pg_stat_database"
            " where datname = current_database()"
        )
    return int(value or 0)


async def count_jobs(url: str) -> tuple[int, int]:
    """(jobs left, jobs that failed at least once)."""
    async with connection(url) as conn:
        row = await conn.fetchrow(
            f"select count(*) as left, count(*) filter (where last_error is not null) as failed"
            f" from {S}._private_jobs"
        )
    assert row is not None
    return int(row["left"]), int(row["failed"])


def _unavailable(side: sides.Side, profile: str) -> str:
    return side.profile_note(profile)


async def drain(
    ctx: Context, side: sides.Side, profile: str, *, identifier: str = "bench_noop",
    jobs: int | None = None, payload_sql: str = "json_build_object('i', i)",
    extra: tuple[str, ...] = (), label: str = "drain",
) -> Figure:
    """Jobs per second of a `--once` worker on a queue of ``jobs`` jobs (start to exit)."""
    if note := _unavailable(side, profile):
        return Figure.missing(note)
    count = jobs if jobs is not None else ctx.sizes.drain_jobs
    async with ctx.dbs.fresh(side.name, label) as url:
        await insert_jobs(url, identifier, count, payload_sql)
        xacts_before = await transactions(url)
        command = side.command(
            url, profile=profile, concurrency=ctx.concurrency, once=True, extra=extra,
        )
        result = await procs.run(
            command.argv, env=command.env, cwd=command.cwd, timeout=max(60.0, count / 100),
        )
        left, failed = await count_jobs(url)
        xacts = await transactions(url) - xacts_before
    if not result.ok or left or failed:
        return Figure.missing(f"{left} jobs left, {failed} failed; {result.tail()}")
    detail = {"seconds": result.seconds, "jobs": count, "transactions_per_job": xacts / count}
    return Figure(count / result.seconds, side.partial_note(profile), detail)


async def once_empty(ctx: Context, side: sides.Side) -> Figure:
    """Seconds from start to exit of `--once` on an empty queue (best of the repeats)."""
    if note := _unavailable(side, "defaults"):
        return Figure.missing(note)
    times: list[float] = []
    async with ctx.dbs.fresh(side.name, "once") as url:
        for _ in range(ctx.sizes.repeats):
            command = side.command(url, profile="defaults", concurrency=ctx.concurrency, once=True)
            result = await procs.run(command.argv, env=command.env, cwd=command.cwd, timeout=60)
            if not result.ok:
                return Figure.missing(result.tail())
            times.append(result.seconds)
    return Figure(min(times), detail={"all": times})


async def wait_listening(url: str, worker: procs.Running) -> None:
    """Until the worker has a connection that ran LISTEN (it is ready for jobs)."""
    deadline = time.monotonic() + LISTEN_TIMEOUT
    async with connection(url) as conn:
        while time.monotonic() < deadline:
            if worker.proc.returncode is not None:
                raise RuntimeError(f"the worker exited: {worker.tail()}")
            listening = await conn.fetchval(
                "select count(*) from pg_stat_activity where datname = current_database()"
                " and pid <> pg_backend_pid() and query ilike 'listen %'"
            )
            if listening:
                return
            await asyncio.sleep(POLL_SECONDS * 5)
    raise RuntimeError(f"the worker did not LISTEN within {LISTEN_TIMEOUT:.0f} s: {worker.tail()}")


@contextlib.asynccontextmanager
async def running_worker(
    url: str, side: sides.Side, profile: str, concurrency: int
) -> AsyncIterator[procs.Running]:
    command = side.command(url, profile=profile, concurrency=concurrency, once=False)
    worker = await procs.start(command.argv, env=command.env, cwd=command.cwd)
    try:
        await wait_listening(url, worker)
        yield worker
    finally:
        await worker.stop()


async def idle_rss(ctx: Context, side: sides.Side) -> Figure:
    """VmRSS (KiB) of the worker's process tree once it listens and has settled."""
    if note := _unavailable(side, "defaults"):
        return Figure.missing(note)
    async with ctx.dbs.fresh(side.name, "rss") as url:
        try:
            async with running_worker(url, side, "defaults", ctx.concurrency) as worker:
                await asyncio.sleep(SETTLE_SECONDS)
                return Figure(float(procs.tree_rss_kib(worker.pid)))
        except RuntimeError as error:
            return Figure.missing(str(error))


async def _produce(
    conn: asyncpg.Connection, count: int, rate: float, first: int
) -> list[tuple[int, object]]:
    """Add ``count`` latency jobs one at a time at ``rate`` per second; (id, created_at)."""
    statement = f"select id, created_at from {S}.add_job('bench_latency', $1::json)"
    added: list[tuple[int, object]] = []
    interval = 1.0 / rate
    due = time.perf_counter()
    for i in range(first, first + count):
        row = await conn.fetchrow(statement, json.dumps({"i": i}))
        assert row is not None
        added.append((row["id"], row["created_at"]))
        due += interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    return added


async def _wait_started(conn: asyncpg.Connection, count: int, worker: procs.Running) -> None:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        started = await conn.fetchval("select count(*) from public.bench_latency")
        if started >= count:
            return
        if worker.proc.returncode is not None:
            raise RuntimeError(f"the worker exited: {worker.tail()}")
        await asyncio.sleep(POLL_SECONDS)
    raise RuntimeError(f"only {started} of {count} handlers started within 30 s: {worker.tail()}")


LATENCY_SQL = """
select percentile_cont(0.5) within group (order by ms) as p50,
       percentile_cont(0.99) within group (order by ms) as p99,
       max(ms) as max, count(*) as n
from (select extract(epoch from l.started_at - e.enqueued_at) * 1000 as ms
      from public.bench_latency as l join public.bench_enqueued as e using (job_id)) as t
"""
WARMUP_JOBS = 20


async def latency(ctx: Context, side: sides.Side, profile: str) -> tuple[Figure, Figure]:
    """p50 and p99 (ms) from add_job's now() to the handler's first line, at low load."""
    if note := _unavailable(side, profile):
        return Figure.missing(note), Figure.missing(note)
    samples = ctx.sizes.latency_samples
    async with ctx.dbs.fresh(side.name, f"latency_{profile}") as url:
        try:
            async with (
                running_worker(url, side, profile, ctx.concurrency) as worker,
                connection(url) as conn,
            ):
                await _produce(conn, WARMUP_JOBS, ctx.sizes.latency_rate, 0)
                await _wait_started(conn, WARMUP_JOBS, worker)
                await conn.execute("truncate public.bench_latency")
                added = await _produce(conn, samples, ctx.sizes.latency_rate, WARMUP_JOBS)
                await _wait_started(conn, samples, worker)
                await conn.copy_records_to_table(
                    "bench_enqueued", records=added, schema_name="public"
                )
                row = await conn.fetchrow(LATENCY_SQL)
        except RuntimeError as error:
            return Figure.missing(str(error)), Figure.missing(str(error))
    assert row is not None
    detail = {
        "max_ms": float(row["max"]), "samples": row["n"], "rate_per_s": ctx.sizes.latency_rate,
    }
    note = side.partial_note(profile)
    return Figure(float(row["p50"]), note, detail), Figure(float(row["p99"]), note, detail)


BARE_ADD_JOBS = f"select * from {S}.add_jobs($1::{S}.job_spec[])"
EnqueueBatch = Callable[[list[dict[str, int]]], Awaitable[object]]


async def _time_batches(add: EnqueueBatch, total: int, batch: int) -> float:
    payloads = [{"i": i} for i in range(total)]
    await add(payloads[:batch])  # warm-up: statement preparation, task row
    started = time.perf_counter()
    for start in range(0, total, batch):
        await add(payloads[start:start + batch])
    return time.perf_counter() - started


def _enqueue_figure(ctx: Context, seconds: float) -> Figure:
    jobs = ctx.sizes.enqueue_jobs
    return Figure(jobs / seconds, detail={"seconds": seconds, "batch": ctx.sizes.enqueue_batch})


async def enqueue_bare(ctx: Context) -> Figure:
    """Jobs/s of the bare SQL ``add_jobs(job_spec[])`` through asyncpg, JSON encoding included."""
    best = float("inf")
    for _ in range(ctx.sizes.repeats):
        async with ctx.dbs.fresh("gw", "enqueue_sql") as url, connection(url) as conn:

            async def add(items: list[dict[str, int]], conn: asyncpg.Connection = conn) -> object:
                specs = [
                    ("bench_noop", json.dumps(item), None, None, None, None, None, None)
                    for item in items
                ]
                return await conn.fetch(BARE_ADD_JOBS, specs)

            seconds = await _time_batches(add, ctx.sizes.enqueue_jobs, ctx.sizes.enqueue_batch)
            best = min(best, seconds)
    return _enqueue_figure(ctx, best)


async def enqueue_utils(ctx: Context) -> Figure:
    """Jobs/s of ``WorkerUtils.add_jobs`` with the same batches (items ``(identifier, dict)``)."""
    try:
        from graphile_worker_cli import utils
    except ImportError as error:
        return Figure.missing(f"n/a: WorkerUtils not importable ({error})")
    best = float("inf")
    for _ in range(ctx.sizes.repeats):
        async with ctx.dbs.fresh("gw", "enqueue_utils") as url:
            async with await utils.WorkerUtils.connect(url, schema=profiles.SCHEMA) as worker_utils:

                async def add(
                    items: list[dict[str, int]], worker_utils: utils.WorkerUtils = worker_utils
                ) -> object:
                    return await worker_utils.add_jobs([("bench_noop", item) for item in items])

                seconds = await _time_batches(add, ctx.sizes.enqueue_jobs, ctx.sizes.enqueue_batch)
            best = min(best, seconds)
    return _enqueue_figure(ctx, best)
