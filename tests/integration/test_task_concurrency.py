"""Per-task concurrency (issue 17 item 6) with real workers and a real PostgreSQL: a task's
``max_concurrency`` caps its jobs in one worker while the other slots keep running other
tasks, and no job of a task at its limit is locked by the worker."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import BatchTaskHandler, WorkerContext, task
from graphile_worker_cli.worker import Worker, store
from tests.helpers.waiting import resolved, wait_until
from tests.helpers.worker import S, add_job, make_options, no_jobs


class Tally:
    """What the tasks saw: how many ``slow`` jobs ran at once, and what ``fast`` saw."""

    def __init__(self) -> None:
        self.slow_now = 0
        self.slow_most = 0
        self.slow_started = 0
        self.fast_done = 0
        self.fast_beside_slow = 0
        """``fast`` jobs that ran while a ``slow`` one was running."""
        self.release = asyncio.Event()

    async def slow(self) -> None:
        self.slow_now += 1
        self.slow_started += 1
        self.slow_most = max(self.slow_most, self.slow_now)
        try:
            await self.release.wait()
        finally:
            self.slow_now -= 1

    def fast(self) -> None:
        if self.slow_now:
            self.fast_beside_slow += 1
        self.fast_done += 1


async def _locked_slow(conn: asyncpg.Connection, worker: Worker) -> int:
    count: int = await conn.fetchval(
        f"select count(*) from {S}.jobs where task_identifier = 'slow' and locked_by = $1",
        worker.worker_id,
    )
    return count


async def _queue_slow_then_fast(conn: asyncpg.Connection, slow: int = 5, fast: int = 10) -> None:
    # The slow jobs are due first, so an unlimited fetch would take them before any fast one.
    for i in range(slow):
        await add_job(conn, "slow", {"i": i}, run_at=_ago(60 - i))
    for i in range(fast):
        await add_job(conn, "fast", {"i": i})


def _ago(seconds: int) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(seconds=seconds)


def _tasks(tally: Tally, limit: int) -> list[Any]:
    @task("slow", max_concurrency=limit)
    async def slow(payload: Any, ctx: WorkerContext) -> None:
        await tally.slow()

    @task("fast")
    async def fast(payload: Any, ctx: WorkerContext) -> None:
        tally.fast()

    return [slow, fast]


@pytest.mark.parametrize("local_queue_size", [0, 10])
async def test_a_limited_task_runs_one_at_a_time_while_the_other_slots_run_other_tasks(
    db_url: str, conn: asyncpg.Connection, local_queue_size: int
) -> None:
    tally = Tally()
    await _queue_slow_then_fast(conn)
    # A long poll: only finished jobs can wake the fetch loop once the jobs are queued, so
    # a limited task whose slot frees must be fetched again at once, not at the next poll.
    options = make_options(
        db_url, concurrency=4, poll_interval=60.0, local_queue_size=local_queue_size
    ).define_jobs(*_tasks(tally, 1))
    worker = await options.init()
    run = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: resolved(tally.fast_done == 10), timeout=15,
                         describe=lambda: f"fast jobs done: {tally.fast_done}")
        # Every fast job ran while the first slow one held its slot: no head-of-line blocking.
        assert tally.slow_now == 1 and tally.slow_started == 1
        assert tally.fast_beside_slow == 10
        # The other four slow jobs are not locked by the worker: they could not start.
        assert await _locked_slow(conn, worker) == 1
        tally.release.set()
        await wait_until(lambda: no_jobs(conn), timeout=15,
                         describe=lambda: f"slow jobs started: {tally.slow_started}")
    finally:
        tally.release.set()
        worker.request_shutdown()
        await asyncio.wait_for(run, 30)
    assert tally.slow_started == 5
    assert tally.slow_most == 1


async def test_a_limit_above_one_takes_only_the_room_left_in_one_fetch(
    db_url: str, conn: asyncpg.Connection
) -> None:
    tally = Tally()
    await _queue_slow_then_fast(conn, slow=8, fast=10)
    # The first fetch asks for 4 jobs and finds 4 slow ones first: the statement keeps 2,
    # and the loop looks again at once for the other tasks. With run_once nothing else
    # (no listener, no poll) would wake it while the slow jobs wait for the fast ones.
    options = make_options(db_url, concurrency=4).define_jobs(*_tasks(tally, 2))
    worker = await options.init()
    run = asyncio.create_task(worker.run_once())
    try:
        await wait_until(lambda: resolved(tally.fast_done == 10), timeout=15)
        assert tally.slow_now == 2 and tally.slow_started == 2
        assert tally.fast_beside_slow == 10
        assert await _locked_slow(conn, worker) == 2
    finally:
        tally.release.set()
        await asyncio.wait_for(run, 30)
    assert (tally.slow_started, tally.slow_most) == (8, 2)
    assert await no_jobs(conn)


async def test_run_once_drains_a_limited_task_with_forbidden_flags_set(
    db_url: str, conn: asyncpg.Connection
) -> None:
    tally = Tally()
    tally.release.set()
    await _queue_slow_then_fast(conn, slow=6, fast=6)
    skipped = await add_job(conn, "slow", {"skip": True}, flags=["paused"])
    options = make_options(db_url, concurrency=3, forbidden_flags=["paused"]).define_jobs(
        *_tasks(tally, 2)
    )
    worker = await options.init()
    await asyncio.wait_for(worker.run_once(), 30)
    assert (tally.slow_started, tally.fast_done) == (6, 6)
    assert tally.slow_most <= 2
    left = await conn.fetch(f"select id, locked_by from {S}._private_jobs")
    assert [(r["id"], r["locked_by"]) for r in left] == [(skipped, None)]


async def test_a_batch_task_and_a_named_queue_keep_their_limit(
    db_url: str, conn: asyncpg.Connection
) -> None:
    running = 0
    most = 0
    done: list[Any] = []

    class Index(BatchTaskHandler):
        IDENTIFIER = "index"
        MAX_CONCURRENCY = 1
        n: int

        @classmethod
        async def run_batch(cls, items: list[Index], ctx: Any) -> list[None]:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(0)  # let the other slots start whatever they can
            await asyncio.sleep(0.01)
            running -= 1
            done.extend(item.n for item in items)
            return [None] * len(items)

    for n in range(6):
        await add_job(conn, "index", [{"n": n}], queue_name=f"q{n % 2}")
    for n in range(6, 12):
        await add_job(conn, "index", [{"n": n}])
    worker = await make_options(db_url, concurrency=4).define_job(Index).init()
    await asyncio.wait_for(worker.run_once(), 30)
    assert sorted(done) == list(range(12))
    assert most == 1
    assert await no_jobs(conn)


async def test_the_capped_fetch_keeps_order_queues_and_leaves_the_rest_untouched(
    conn: asyncpg.Connection,
) -> None:
    ids = await store.ensure_tasks(conn, S, ["slow", "fast"])
    slow = [await add_job(conn, "slow", {"n": n}, run_at=_ago(100 - n)) for n in range(4)]
    queued = [await add_job(conn, "slow", {"q": n}, queue_name="serial", run_at=_ago(200 - n))
              for n in range(2)]
    urgent = await add_job(conn, "fast", {"urgent": True}, priority=-5)
    fast = [await add_job(conn, "fast", {"n": n}) for n in range(3)]

    names = {task_id: name for name, task_id in ids.items()}
    jobs = await store.fetch_jobs(
        conn, S, "me", list(ids.values()), 6, task_identifiers=names, room={ids["slow"]: 2},
    )
    # The 6 candidates in (priority, run_at) order: urgent, the queue's two, three slow.
    # Of the queue only its head; of slow two jobs, the queue's head among them. The fast
    # jobs were past the candidates: the worker looks again (FetchPlan.filled).
    assert {job.id for job in jobs} == {urgent, queued[0], slow[0]}
    rows = await conn.fetch(f"select id, attempts, locked_by from {S}._private_jobs")
    locked = {r["id"] for r in rows if r["locked_by"] == "me"}
    assert locked == {urgent, queued[0], slow[0]}
    assert all(r["attempts"] == 0 and r["locked_by"] is None
               for r in rows if r["id"] not in locked)
    queue_lock = await conn.fetchval(
        f"select locked_by from {S}._private_job_queues where queue_name = 'serial'"
    )
    assert queue_lock == "me"
    # slow now at its limit: left out of the next fetch, which finds the fast jobs.
    jobs = await store.fetch_jobs(conn, S, "me", [ids["fast"]], 6, task_identifiers=names)
    assert {job.id for job in jobs} == set(fast)
