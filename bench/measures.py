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
    conn = await databases.connect(url)
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
    """Transactions committed or rolled back in this database so far. Backends flush their
    counts as they exit, so this first waits (briefly) for the other sessions to end."""
    async with connection(url) as conn:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and await conn.fetchval(
            "select count(*) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
        ):
            await asyncio.sleep(POLL_SECONDS)
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


async def count_history(url: str) -> int:
    """Jobs in gw's job history (each row holds a settled batch of them)."""
    async with connection(url) as conn:
        return int(await conn.fetchval(
            f"select coalesce(sum(cardinality(job_ids)), 0) from {S}._gw_job_history"
        ))


async def drain(
    ctx: Context, side: sides.Side, profile: str, *, identifier: str = "bench_noop",
    jobs: int | None = None, payload_sql: str = "json_build_object('i', i)",
    extra: tuple[str, ...] = (), label: str = "drain", history: bool = False,
) -> Figure:
    """Jobs per second of a `--once` worker on a queue of ``jobs`` jobs (start to exit).
    ``history``: the worker keeps job history; every job must have its record."""
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
        recorded = await count_history(url) if history else count
    if not result.ok or left or failed:
        return Figure.missing(f"{left} jobs left, {failed} failed; {result.tail()}")
    if recorded != count:
        return Figure.missing(f"{recorded} of {count} jobs in the job history")
    detail = {"seconds": result.seconds, "jobs": count, "transactions_per_job": xacts / count}
    return Figure(count / result.seconds, side.partial_note(profile), detail)


async def database_bound(ctx: Context, jobs: int, *, history: bool = False) -> Figure:
    """Jobs per second of the database alone: gw's own fetch statement (batches of 500,
    on a session with the worker's planner settings) in a loop, each batch deleted by gw's
    completion statement on a second connection while the next fetch runs. No handler, no
    job objects, no process start-up: the ceiling of a worker that fetches on one session
    (several sessions at once raise it by ~10-15% on this machine). ``history``: the
    completion statement that also records the jobs (every job must have its record)."""
    from graphile_worker_cli.queries import worker as queries
    from graphile_worker_cli.worker.fetchconn import PLANNER_SETTINGS

    batch = int(profiles.GW_TUNED_LOCAL_QUEUE_SIZE)
    async with ctx.dbs.fresh("gw", "bound_hist" if history else "bound") as url:
        await insert_jobs(url, "bench_noop", jobs, "json_build_object('i', i)")
        fetcher = await asyncpg.connect(url, server_settings=PLANNER_SETTINGS)
        completer = await databases.connect(url)
        try:
            task_ids = [await fetcher.fetchval(
                f"select id from {S}._private_tasks where identifier = 'bench_noop'"
            )]
            fetch = queries.FETCH_JOBS.sql(profiles.SCHEMA)
            complete = (
                queries.COMPLETE_JOBS_RECORDING_HISTORY if history else queries.COMPLETE_JOBS
            ).sql(profiles.SCHEMA)
            pending: asyncio.Task[str] | None = None
            done = 0
            started = time.perf_counter()
            while True:
                rows = await fetcher.fetch(fetch, "bench-bound", task_ids, batch)
                if pending is not None:
                    await pending
                    pending = None
                if not rows:
                    break
                done += len(rows)
                ids = [row["id"] for row in rows]
                pending = asyncio.ensure_future(completer.execute(complete, "bench-bound", ids))
            seconds = time.perf_counter() - started
        finally:
            await fetcher.close()
            await completer.close()
        left, _failed = await count_jobs(url)
        recorded = await count_history(url) if history else jobs
    if left or done != jobs:
        return Figure.missing(f"{left} jobs left, {done} of {jobs} fetched")
    if recorded != jobs:
        return Figure.missing(f"{recorded} of {jobs} jobs in the job history")
    return Figure(jobs / seconds, "", {"seconds": seconds, "jobs": jobs})


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


@dataclass
class _Target:
    """One side's long-running worker and the producer's connection to its database."""

    side: sides.Side
    worker: procs.Running
    conn: asyncpg.Connection
    added: list[tuple[int, object]]
    error: str = ""


async def _produce(targets: list[_Target], count: int, rate: float, first: int) -> None:
    """Add ``count`` latency jobs to each target, one at a time at ``rate`` per second per
    target; targets take turns going first, so neither side gets the quieter moment."""
    statement = f"select id, created_at from {S}.add_job('bench_latency', $1::json)"
    interval = 1.0 / rate
    due = time.perf_counter()
    for i in range(first, first + count):
        order = targets if i % 2 == 0 else targets[::-1]
        for target in order:
            row = await target.conn.fetchrow(statement, json.dumps({"i": i}))
            assert row is not None
            target.added.append((row["id"], row["created_at"]))
        due += interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


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


async def _start_target(
    stack: contextlib.AsyncExitStack, ctx: Context, side: sides.Side, profile: str
) -> _Target:
    url = await stack.enter_async_context(ctx.dbs.fresh(side.name, f"latency_{profile}"))
    worker = await stack.enter_async_context(
        running_worker(url, side, profile, ctx.concurrency)
    )
    conn = await stack.enter_async_context(connection(url))
    return _Target(side, worker, conn, [])


async def _wait_all(targets: list[_Target], count: int) -> None:
    for target in targets:
        if target.error:
            continue
        try:
            await _wait_started(target.conn, count, target.worker)
        except RuntimeError as error:
            target.error = str(error)


async def latency(
    ctx: Context, profile: str, *pair: sides.Side
) -> dict[str, tuple[Figure, Figure]]:
    """p50 and p99 (ms) from add_job's now() to the handler's first line, at low load, for
    each side; the sides' workers run at the same time and get their jobs in turns."""
    results: dict[str, tuple[Figure, Figure]] = {}
    samples = ctx.sizes.latency_samples
    async with contextlib.AsyncExitStack() as stack:
        targets: list[_Target] = []
        for side in pair:
            if note := _unavailable(side, profile):
                results[side.name] = Figure.missing(note), Figure.missing(note)
                continue
            try:
                targets.append(await _start_target(stack, ctx, side, profile))
            except RuntimeError as error:
                results[side.name] = Figure.missing(str(error)), Figure.missing(str(error))
        await _produce(targets, WARMUP_JOBS, ctx.sizes.latency_rate, 0)
        await _wait_all(targets, WARMUP_JOBS)
        for target in targets:
            target.added.clear()
            await target.conn.execute("truncate public.bench_latency")
        await _produce(targets, samples, ctx.sizes.latency_rate, WARMUP_JOBS)
        await _wait_all(targets, samples)
        for target in targets:
            results[target.side.name] = await _percentiles(ctx, target, profile)
    return results


async def _percentiles(ctx: Context, target: _Target, profile: str) -> tuple[Figure, Figure]:
    if target.error:
        return Figure.missing(target.error), Figure.missing(target.error)
    await target.conn.copy_records_to_table(
        "bench_enqueued", records=target.added, schema_name="public"
    )
    row = await target.conn.fetchrow(LATENCY_SQL)
    assert row is not None
    detail = {
        "max_ms": float(row["max"]), "samples": row["n"], "rate_per_s": ctx.sizes.latency_rate,
    }
    note = target.side.partial_note(profile)
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
    """One run: jobs/s of the bare SQL ``add_jobs(job_spec[])`` through asyncpg, JSON
    encoding of the same dicts included."""
    async with ctx.dbs.fresh("gw", "enqueue_sql") as url, connection(url) as conn:

        async def add(items: list[dict[str, int]]) -> object:
            specs = [
                ("bench_noop", json.dumps(item), None, None, None, None, None, None)
                for item in items
            ]
            return await conn.fetch(BARE_ADD_JOBS, specs)

        seconds = await _time_batches(add, ctx.sizes.enqueue_jobs, ctx.sizes.enqueue_batch)
    return _enqueue_figure(ctx, seconds)


async def enqueue_utils(ctx: Context) -> Figure:
    """One run: jobs/s of ``WorkerUtils.add_jobs`` with the same batches (items
    ``(identifier, dict)``)."""
    try:
        from graphile_worker_cli.worker_utils import WorkerUtils
    except ImportError as error:
        return Figure.missing(f"n/a: WorkerUtils not importable ({error})")
    async with (
        ctx.dbs.fresh("gw", "enqueue_utils") as url,
        await WorkerUtils.connect(url, schema=profiles.SCHEMA) as worker_utils,
    ):

        async def add(items: list[dict[str, int]]) -> object:
            return await worker_utils.add_jobs([("bench_noop", item) for item in items])

        seconds = await _time_batches(add, ctx.sizes.enqueue_jobs, ctx.sizes.enqueue_batch)
    return _enqueue_figure(ctx, seconds)
