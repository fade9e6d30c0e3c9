"""The local queue (``local_queue_size`` > 0) against a real PostgreSQL: exactly-once drains,
hand-back at shutdown and after the TTL, one job per named queue per batch, forbidden flags."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import context, hooks
from graphile_worker_cli.worker import store
from tests.helpers.waiting import resolved, wait_until
from tests.helpers.worker import S, add_job, job_count, make_options, no_jobs


async def test_drains_every_job_exactly_once_with_size_above_concurrency(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: Counter[int] = Counter()
    fetch_sizes: list[int] = []
    real_fetch = store.fetch_jobs

    async def counting_fetch(*args: Any, **kwargs: Any) -> Any:
        jobs = await real_fetch(*args, **kwargs)
        fetch_sizes.append(len(jobs))
        return jobs

    async def work(payload: Any, ctx: context.WorkerContext) -> None:
        ran[ctx.job_id] += 1

    ids = [await add_job(conn, "work", {"i": i}) for i in range(300)]
    options = make_options(db_url, concurrency=4, local_queue_size=64).define_job(work, "work")
    worker = await options.init()
    monkeypatch.setattr(store, "fetch_jobs", counting_fetch)
    await worker.run_once()
    assert sorted(ran) == sorted(ids)
    assert set(ran.values()) == {1}
    assert await job_count(conn) == 0
    assert max(fetch_sizes) == 64  # one statement fetched more jobs than there are slots


async def test_shutdown_hands_back_unstarted_jobs_with_attempts_restored(
    db_url: str, conn: asyncpg.Connection
) -> None:
    release = asyncio.Event()
    started: list[int] = []

    async def slow(payload: Any, ctx: context.WorkerContext) -> None:
        started.append(ctx.job_id)
        await release.wait()

    for i in range(10):
        await add_job(conn, "slow", {"i": i})
    options = make_options(db_url, concurrency=2, local_queue_size=20).define_job(slow, "slow")
    worker = await options.init()
    run = asyncio.create_task(worker.run())
    await wait_until(lambda: resolved(len(started) == 2))
    locked = await conn.fetchval(
        f"select count(*) from {S}._private_jobs where locked_by = $1", worker.worker_id
    )
    assert locked == 10  # two running, eight waiting in the local queue
    worker.request_shutdown()

    async def handed_back() -> bool:
        count: int = await conn.fetchval(
            f"select count(*) from {S}._private_jobs where locked_by is null and attempts = 0"
        )
        return count == 8

    await wait_until(handed_back)  # while the two running jobs are still running
    assert not run.done()
    release.set()
    await asyncio.wait_for(run, 30)
    rows = await conn.fetch(f"select attempts, locked_by, locked_at from {S}._private_jobs")
    assert len(rows) == 8
    assert all(r["attempts"] == 0 and r["locked_by"] is None and r["locked_at"] is None
               for r in rows)
    assert len(started) == 2


async def test_jobs_idle_past_the_ttl_are_handed_back_then_run_once(
    db_url: str, conn: asyncpg.Connection
) -> None:
    release = asyncio.Event()
    ran: Counter[int] = Counter()

    async def blocking(payload: Any, ctx: context.WorkerContext) -> None:
        ran[ctx.job_id] += 1
        if payload["first"]:
            await release.wait()

    first = await add_job(conn, "blocking", {"first": True}, priority=-1)
    others = [await add_job(conn, "blocking", {"first": False}) for _ in range(4)]
    options = make_options(
        db_url, concurrency=1, local_queue_size=10, local_queue_ttl=0.3
    ).define_job(blocking, "blocking")
    worker = await options.init()
    run = asyncio.create_task(worker.run())

    async def handed_back() -> bool:
        count: int = await conn.fetchval(
            f"select count(*) from {S}._private_jobs "
            f"where locked_by is null and attempts = 0 and id = any($1::bigint[])", others
        )
        return count == 4

    await wait_until(lambda: resolved(ran[first] == 1))
    await wait_until(handed_back)
    release.set()
    await wait_until(lambda: resolved(len(ran) == 5))
    await wait_until(lambda: no_jobs(conn))
    worker.request_shutdown()
    await asyncio.wait_for(run, 30)
    assert set(ran.values()) == {1}


async def test_a_batch_never_holds_two_jobs_of_one_named_queue(
    db_url: str, conn: asyncpg.Connection
) -> None:
    for i in range(40):
        await add_job(conn, "t", {}, queue_name=f"q{i % 4}")
    for _ in range(6):
        await add_job(conn, "t", {})
    ids = await store.ensure_tasks(conn, S, ["t"])
    jobs = await store.fetch_jobs(conn, S, "me", list(ids.values()), 500, (), {ids["t"]: "t"})
    named = [j.queue_name for j in jobs if j.queue_name is not None]
    assert sorted(named) == ["q0", "q1", "q2", "q3"]
    assert len(jobs) == 10


async def test_named_queues_stay_serial_with_a_local_queue(
    db_url: str, conn: asyncpg.Connection
) -> None:
    running: Counter[str] = Counter()
    most: Counter[str] = Counter()

    async def step(payload: Any, ctx: context.WorkerContext) -> None:
        queue = ctx.queue_name or ""
        running[queue] += 1
        most[queue] = max(most[queue], running[queue])
        await asyncio.sleep(0.002)
        running[queue] -= 1

    for i in range(30):
        await add_job(conn, "step", {"i": i}, queue_name=f"q{i % 3}")
    options = make_options(db_url, concurrency=8, local_queue_size=100).define_job(step, "step")
    worker = await options.init()
    await worker.run_once()
    assert await job_count(conn) == 0
    assert most["q0"] == most["q1"] == most["q2"] == 1


async def test_forbidden_flags_are_honoured_with_a_local_queue(
    db_url: str, conn: asyncpg.Connection
) -> None:
    ran: list[int] = []

    async def flagged(payload: Any, ctx: context.WorkerContext) -> None:
        ran.append(ctx.job_id)

    skipped = [await add_job(conn, "flagged", {}, flags=["slow"]) for _ in range(3)]
    fine = [await add_job(conn, "flagged", {}, flags=["fast"]) for _ in range(5)]
    plain = [await add_job(conn, "flagged", {}) for _ in range(5)]
    options = make_options(db_url, local_queue_size=50).define_job(flagged, "flagged")
    worker = await options.add_forbidden_flag("slow").init()
    await worker.run_once()
    assert sorted(ran) == sorted(fine + plain)
    rows = await conn.fetch(f"select id, attempts, locked_by from {S}._private_jobs")
    assert sorted(r["id"] for r in rows) == sorted(skipped)
    assert all(r["attempts"] == 0 and r["locked_by"] is None for r in rows)


async def test_a_notification_cuts_the_refetch_delay_short_and_modes_are_reported(
    db_url: str, conn: asyncpg.Connection
) -> None:
    seen: list[tuple[str, Any]] = []
    ran: list[int] = []

    async def work(payload: Any, ctx: context.WorkerContext) -> None:
        ran.append(ctx.job_id)

    # An hour-long poll and delay: only the notification can bring the job in quickly.
    options = make_options(
        db_url, local_queue_size=5, poll_interval=3600, local_queue_refetch_delay=3600,
        local_queue_refetch_delay_max_abort_threshold=1,
    ).define_job(work, "work")
    options.on(hooks.LocalQueueRefetchDelayStart,
               lambda c: seen.append(("LocalQueueRefetchDelayStart", c)))
    options.on(hooks.LocalQueueRefetchDelayAbort,
               lambda c: seen.append(("LocalQueueRefetchDelayAbort", c)))
    options.on(hooks.LocalQueueModeChange, lambda c: seen.append(("LocalQueueModeChange", c)))
    worker = await options.init()
    run = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: resolved(
            any(name == "LocalQueueRefetchDelayStart" for name, _ in seen)
        ))
        job_id = await add_job(conn, "work", {})
        await wait_until(lambda: resolved(ran == [job_id]))
        assert [name for name, _ in seen if name == "LocalQueueRefetchDelayAbort"] == [
            "LocalQueueRefetchDelayAbort"
        ]
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(run, 20)
    modes = [(c.old_mode, c.new_mode) for name, c in seen if name == "LocalQueueModeChange"]
    assert modes[0] == ("STARTING", "POLLING")
    assert ("POLLING", "WAITING") in modes and modes[-1][1] == "RELEASED"
