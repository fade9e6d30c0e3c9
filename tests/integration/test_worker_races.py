"""Regression tests named after the races they pin down."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg

from graphile_worker_cli.worker import Worker, store
from tests.helpers.waiting import resolved, wait_until
from tests.helpers.worker import add_job, job_count, make_options

S = "graphile_worker"


async def test_job_finishing_while_a_fetch_is_in_flight_is_not_forgotten(
    db_url: str, conn: asyncpg.Connection, monkeypatch: Any
) -> None:
    """A job that finished during a fetch asked for another fetch; an empty reply to the
    in-flight fetch used to wipe that request, and --once exited with work left."""
    ran: list[str] = []
    release_a = asyncio.Event()
    holder: list[Worker] = []

    async def step(payload: Any) -> None:
        if payload["name"] == "A":
            await release_a.wait()
        ran.append(payload["name"])

    a = await add_job(conn, "step", {"name": "A"}, queue_name="q")
    await add_job(conn, "step", {"name": "B"}, queue_name="q")
    await add_job(conn, "step", {"name": "C"})
    real_fetch = store.fetch_jobs
    calls = 0

    async def fetch(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        jobs = await real_fetch(*args, **kwargs)
        if calls == 2:  # C finished; queue q is still locked by A, so this fetch is empty
            assert jobs == []
            release_a.set()
            worker = holder[0]
            await wait_until(lambda: resolved(a not in worker.slots.running))
        return jobs

    monkeypatch.setattr(store, "fetch_jobs", fetch)
    worker = await make_options(db_url, concurrency=3).define_job(step, "step").init()
    holder.append(worker)
    await worker.run_once()
    assert sorted(ran) == ["A", "B", "C"]
    assert await job_count(conn) == 0


async def test_fetch_whose_reply_was_lost_hands_its_jobs_back(
    db_url: str, conn: asyncpg.Connection, monkeypatch: Any
) -> None:
    """The fetch committed but the connection died before the rows arrived: the jobs are
    locked by us and nobody runs them; they must be handed back (attempt restored)."""
    runs: Counter[int] = Counter()
    attempts: list[int] = []

    async def work(payload: Any, ctx: Any) -> None:
        runs[payload["i"]] += 1
        attempts.append(ctx.job.attempts)

    for i in range(5):
        await add_job(conn, "work", {"i": i}, queue_name="lost" if i == 0 else None)
    real_fetch = store.fetch_jobs
    calls = 0

    async def fetch(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        jobs = await real_fetch(*args, **kwargs)
        if calls == 1:
            assert len(jobs) == 5
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
        return jobs

    monkeypatch.setattr(store, "fetch_jobs", fetch)
    worker = await make_options(db_url, concurrency=5).define_job(work, "work").init()
    await worker.run_once()
    assert runs == Counter(range(5))
    assert attempts == [1] * 5
    assert await job_count(conn) == 0
    assert await conn.fetchval(
        f"select count(*) from {S}._private_job_queues where locked_by is not null"
    ) == 0
