"""Per-task limits (issue 17 item 6) and how the worker fetches around them: a quick limited
task gets a buffer in the local queue yet never runs more than its limit, a task found dry
is not fetched again for nothing, and news (a notification, or the end of ``--once``)
brings it back."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import WorkerContext, task
from graphile_worker_cli.job import Job
from graphile_worker_cli.worker import Worker, store
from tests.helpers.waiting import resolved, wait_until
from tests.helpers.worker import S, add_job, make_options, no_jobs


class Counting:
    """Running ``quick`` jobs now and at most, and the most of them waiting in the local
    queue at one time (the buffer in use)."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.most_queued = 0
        self.done = 0
        self.others: list[tuple[int, int]] = []
        """For each ``other`` job: quick jobs done by then, and quick jobs queued then."""
        self.worker: Worker | None = None

    async def quick(self, pause: float) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        if self.worker is not None:
            queued = sum(job.task_identifier == "quick" for job in self.worker.queue.jobs())
            self.most_queued = max(self.most_queued, queued)
        try:
            await asyncio.sleep(pause)
        finally:
            self.now -= 1
            self.done += 1


def _tasks(counting: Counting, limit: int, pause: float = 0.0) -> list[Any]:
    @task("quick", max_concurrency=limit)
    async def quick(payload: Any, ctx: WorkerContext) -> None:
        await counting.quick(pause)

    @task("other")
    async def other(payload: Any, ctx: WorkerContext) -> None:
        if counting.worker is not None:
            queued = sum(job.task_identifier == "quick" for job in counting.worker.queue.jobs())
            counting.others.append((counting.done, queued))

    return [quick, other]


async def _add_many(conn: asyncpg.Connection, identifier: str, count: int,
                    ago: str = "0 seconds") -> None:
    await conn.execute(
        f"select {S}.add_jobs(array(select row($1::text, json_build_object('i', i), null,"
        f" now() - $2::text::interval, null, null, null, null)::{S}.job_spec"
        f" from generate_series(1, $3::int) as i))",
        identifier, ago, count,
    )


async def test_a_quick_limited_task_gets_a_buffer_and_never_runs_past_its_limit(
    db_url: str, conn: asyncpg.Connection
) -> None:
    counting = Counting()
    await _add_many(conn, "quick", 300, ago="1 minute")
    await _add_many(conn, "other", 20)
    options = make_options(db_url, concurrency=4, local_queue_size=20).define_jobs(
        *_tasks(counting, 2)
    )
    worker = await options.init()
    counting.worker = worker
    await asyncio.wait_for(worker.run_once(), 60)
    assert counting.done == 300
    assert counting.most == 2
    # Its buffer (20 * 2 / 4 = 10 at most) held jobs that started as running ones ended.
    assert 0 < counting.most_queued <= 10
    assert await no_jobs(conn)


async def test_other_tasks_run_beside_a_limited_task_with_a_full_buffer(
    db_url: str, conn: asyncpg.Connection
) -> None:
    counting = Counting()
    await _add_many(conn, "quick", 200)
    # quick runs ~10 ms a job: a buffer of min(20 * 1 / 4, 1 s / 10 ms) = 5 of its jobs.
    options = make_options(
        db_url, concurrency=4, local_queue_size=20, poll_interval=600.0
    ).define_jobs(*_tasks(counting, 1, pause=0.01))
    worker = await options.init()
    counting.worker = worker
    run = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: resolved(counting.most_queued > 0), timeout=15,
                         describe=lambda: "quick never had a buffer")
        # Announced by a notification while quick jobs wait in the queue, ahead of them.
        await _add_many(conn, "other", 10)
        await wait_until(lambda: resolved(len(counting.others) == 10), timeout=15,
                         describe=lambda: f"others done: {counting.others}")
        await wait_until(lambda: no_jobs(conn), timeout=30)
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(run, 30)
    assert counting.done == 200 and counting.most == 1
    # The others did not wait for quick's backlog (2 s of it): they ran early, some while
    # quick jobs waited in the queue ahead of them.
    assert max(done for done, _ in counting.others) < 150, counting.others
    assert any(queued for _, queued in counting.others), counting.others


@pytest.fixture
def empty_fetches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The task ids of every fetch that came back empty (the real statement runs)."""
    seen: list[list[int]] = []
    fetch = store.fetch_jobs

    async def counted(conn: asyncpg.Connection, schema: str, worker_id: str,
                      task_ids: list[int], *args: Any, **kwargs: Any) -> list[Job]:
        jobs = await fetch(conn, schema, worker_id, task_ids, *args, **kwargs)
        if not jobs:
            seen.append(list(task_ids))
        return jobs

    monkeypatch.setattr(store, "fetch_jobs", counted)
    return seen


@pytest.mark.parametrize("local_queue_size", [0, 50])
async def test_no_empty_fetches_for_idle_tasks_while_the_busy_one_is_at_its_limit(
    db_url: str, conn: asyncpg.Connection, empty_fetches: list[list[int]],
    local_queue_size: int,
) -> None:
    counting = Counting()
    await _add_many(conn, "quick", 400)
    options = make_options(
        db_url, concurrency=4, local_queue_size=local_queue_size
    ).define_jobs(*_tasks(counting, 3))
    await asyncio.wait_for((await options.init()).run_once(), 60)
    assert counting.done == 400 and counting.most == 3
    # "other" is found dry once; then the fetches are for quick's room only, and the
    # last look before --once ends finds nothing. Before, each round while quick was at
    # its limit sent a fetch for "other" alone (about one per 3 jobs).
    assert len(empty_fetches) <= 3, empty_fetches


async def test_run_once_runs_a_job_added_for_a_task_found_dry(
    db_url: str, conn: asyncpg.Connection
) -> None:
    ran: list[str] = []
    other_conn = await asyncpg.connect(db_url)

    @task("quick", max_concurrency=1)
    async def quick(payload: Any, ctx: WorkerContext) -> None:
        if payload.get("last"):
            # Plain SQL, no hook of the worker's: only a fetch can find it.
            await add_job(other_conn, "other", {"late": True})
        ran.append("quick")

    @task("other")
    async def other(payload: Any, ctx: WorkerContext) -> None:
        ran.append("other")

    for n in range(5):
        await add_job(conn, "quick", {"last": n == 4})
    try:
        worker = await make_options(db_url, concurrency=3).define_jobs(quick, other).init()
        await asyncio.wait_for(worker.run_once(), 30)
    finally:
        await other_conn.close()
    assert ran == ["quick"] * 5 + ["other"]
    assert await no_jobs(conn)


async def test_a_notification_brings_back_a_task_found_dry(
    db_url: str, conn: asyncpg.Connection
) -> None:
    release = asyncio.Event()
    other_done = asyncio.Event()

    @task("quick", max_concurrency=1)
    async def quick(payload: Any, ctx: WorkerContext) -> None:
        await release.wait()

    @task("other")
    async def other(payload: Any, ctx: WorkerContext) -> None:
        other_done.set()

    await add_job(conn, "quick", {"n": 1})
    await add_job(conn, "quick", {"n": 2})
    # No poll within the test: only the jobs:insert notification can bring "other" back.
    worker = await make_options(db_url, concurrency=3, poll_interval=600.0).define_jobs(
        quick, other
    ).init()
    run = asyncio.create_task(worker.run())
    try:
        await wait_until(
            lambda: resolved(bool(worker._fetch_loop._limits and
                                  worker._fetch_loop._limits.dry())),
            timeout=15, describe=lambda: "other never found dry",
        )
        await add_job(conn, "other", {})
        await asyncio.wait_for(other_done.wait(), 15)
    finally:
        release.set()
        worker.request_shutdown()
        await asyncio.wait_for(run, 30)
