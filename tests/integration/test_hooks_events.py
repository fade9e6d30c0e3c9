"""The reference's events that gw reports as hooks: the LISTEN connection lost and restored,
fetch errors and empty fetches, the stale-lock reset, cron timers firing early or late, and
a worker's fatal error (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import context, db, hooks
from graphile_worker_cli.cron import MockClock, parse_crontab
from graphile_worker_cli.cron.scheduler import run_scheduler
from graphile_worker_cli.errors import GraphileWorkerError
from graphile_worker_cli.worker import store
from tests.helpers.waiting import resolved, wait_until
from tests.helpers.worker import add_job, make_options

S = "graphile_worker"
T0 = datetime(2030, 1, 6, 12, 0, 30, tzinfo=UTC)


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def record(self, name: str) -> Any:
        def handler(ctx: Any) -> None:
            self.events.append((name, ctx))

        return handler

    def of(self, name: str) -> list[Any]:
        return [ctx for seen, ctx in self.events if seen == name]


async def ok(payload: Any, ctx: context.WorkerContext) -> None:
    return None


async def listen_pid(conn: asyncpg.Connection) -> int | None:
    value: int | None = await conn.fetchval(
        "select pid from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid() and query ilike 'listen %jobs:insert%'"
    )
    return value


async def test_listen_connection_lost_and_restored(
    db_url: str, conn: asyncpg.Connection
) -> None:
    seen = Seen()
    options = make_options(db_url).define_job(ok, "ok")
    options.on(hooks.ListenConnectionLost, seen.record("lost"))
    options.on(hooks.ListenConnectionRestored, seen.record("restored"))
    worker = await options.init()
    run = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: _some(listen_pid(conn)))
        pid = await listen_pid(conn)
        assert await conn.fetchval("select pg_terminate_backend($1)", pid)
        await wait_until(lambda: resolved(len(seen.of("restored")) == 1))
        assert len(seen.of("lost")) == 1
        assert seen.of("lost")[0].worker_id == worker.worker_id
        # Listening again: a new job is announced and runs.
        await wait_until(lambda: _some(listen_pid(conn)))
        await add_job(conn, "ok", {})
        await wait_until(lambda: _none_left(conn))
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(run, 20)
    assert [name for name, _ in seen.events] == ["lost", "restored"]


async def _some(value: Any) -> bool:
    return await value is not None


async def _none_left(conn: asyncpg.Connection) -> bool:
    left: int = await conn.fetchval(f"select count(*) from {S}._private_jobs")
    return left == 0


async def test_fetch_error_and_empty_fetch(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = Seen()
    real_fetch = store.fetch_jobs
    failures = [ConnectionResetError("connection reset by the test")]

    async def failing_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real_fetch(*args, **kwargs)

    options = make_options(db_url).define_job(ok, "ok")
    options.on(hooks.FetchError, seen.record("error"))
    options.on(hooks.FetchEmpty, seen.record("empty"))
    worker = await options.init()
    monkeypatch.setattr(store, "fetch_jobs", failing_once)
    await worker.run_once()
    errors = seen.of("error")
    assert [(e.error, e.attempt) for e in errors] == [("connection reset by the test", 1)]
    assert len(seen.of("empty")) >= 1 and seen.of("empty")[0].worker_id == worker.worker_id


async def test_stale_lock_reset_is_reported(db_url: str, conn: asyncpg.Connection) -> None:
    seen = Seen()
    options = make_options(db_url).define_job(ok, "ok")
    options.on(hooks.StaleLocksReset, seen.record("reset"))
    worker = await options.init()
    await worker.run_once()  # --once resets stale locks before it starts
    resets = seen.of("reset")
    assert [(r.schema, r.error) for r in resets] == [(S, None)]


async def test_a_failing_side_task_is_a_fatal_error(db_url: str) -> None:
    seen = Seen()

    async def broken(worker: Any) -> None:
        raise RuntimeError("side task broke")

    options = make_options(db_url).define_job(ok, "ok").add_side_task(broken)
    options.on(hooks.WorkerFatalError, seen.record("fatal"))
    worker = await options.init()
    with pytest.raises(GraphileWorkerError, match="side task broke"):
        await asyncio.wait_for(worker.run(), 20)
    fatal = seen.of("fatal")
    assert [(f.source, str(f.error)) for f in fatal] == [("broken", "side task broke")]


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(db_url, min_size=1, max_size=3)
    try:
        yield pool
    finally:
        await pool.close()


async def test_cron_timer_premature_and_overdue(pool: asyncpg.Pool) -> None:
    seen = Seen()
    registry = hooks.HookRegistry()
    registry.on(hooks.CronTimerPremature, seen.record("premature"))
    registry.on(hooks.CronTimerOverdue, seen.record("overdue"))
    clock = MockClock(T0)
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduler(
        pool, S, parse_crontab("* * * * * tick\n"), stop=stop, clock=clock, hooks=registry,
    ))
    minute = datetime(2030, 1, 6, 12, 0, tzinfo=UTC)
    try:
        await clock.wait_for_sleepers(1)
        clock.set(minute + timedelta(minutes=1))  # on time
        await clock.wait_for_sleepers(1)
        assert seen.events == []
        clock.set(minute + timedelta(minutes=3, seconds=30))  # 12:02's timer, 90 s late
        await clock.wait_for_sleepers(1)
        clock.set(minute + timedelta(minutes=3, seconds=59))
        clock.wake_early()  # 12:04's timer, a second early
        await clock.wait_for_sleepers(1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert [(name, c.expected_at, c.now) for name, c in seen.events] == [
        ("overdue", minute + timedelta(minutes=2), minute + timedelta(minutes=3, seconds=30)),
        ("premature", minute + timedelta(minutes=4), minute + timedelta(minutes=3, seconds=59)),
    ]
