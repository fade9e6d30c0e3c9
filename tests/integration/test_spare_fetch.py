"""The spare fetch: jobs announced while the fetch session's statement is in flight are
fetched at once on a pooled connection, not after that statement returns."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli.worker import Worker, store
from tests.helpers.waiting import resolved, wait_until
from tests.helpers.worker import S, add_job, job_count, make_options

ADD_MANY = f"""
select count(*) from {S}.add_jobs(array(
  select json_populate_record(null::{S}.job_spec,
           json_build_object('identifier', 'step', 'payload', json_build_object('name', i)))
    from generate_series(1, $1::int) as i))"""


class HeldFetch:
    """Once armed, holds the reply of the fetch session's next statement that locked jobs
    (the statement has run: they are locked) until ``release`` is set; spare fetches pass
    through."""

    def __init__(self) -> None:
        self.armed = False
        self.held: list[list[int]] = []
        self.release = asyncio.Event()
        self.spare_fetches = 0
        self._real = store.fetch_jobs

    async def __call__(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        jobs = await self._real(conn, *args, **kwargs)
        if isinstance(conn, asyncpg.pool.PoolConnectionProxy):
            self.spare_fetches += 1
        elif self.armed and jobs:
            self.armed = False
            self.held.append([job.id for job in jobs])
            await self.release.wait()
        return jobs


@pytest.fixture
def held_fetch(monkeypatch: pytest.MonkeyPatch) -> HeldFetch:
    held = HeldFetch()
    monkeypatch.setattr(store, "fetch_jobs", held)
    return held


async def _idle(conn: asyncpg.Connection, worker: Worker) -> bool:
    """A warm-up job ran (so the worker listens), nothing runs, and no fetch is in flight
    or wanted: the next fetch is for the jobs announced from now on."""
    loop = worker._fetch_loop
    return (
        worker.slots.demand == 0 and not worker.slots.running and not loop.orphans_possible
        and await job_count(conn) == 0
    )


async def _warm_up(conn: asyncpg.Connection, worker: Worker, started: Counter[object]) -> None:
    await add_job(conn, "step", {"name": "warm"})
    await wait_until(lambda: resolved(started["warm"] == 1))
    await wait_until(lambda: _idle(conn, worker))


@contextlib.asynccontextmanager
async def _running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    runner = asyncio.create_task(worker.run())
    try:
        yield runner
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(runner, 20)


async def test_a_job_added_during_a_fetch_starts_before_that_fetch_returns(
    db_url: str, conn: asyncpg.Connection, held_fetch: HeldFetch
) -> None:
    started: Counter[object] = Counter()

    async def step(payload: Any) -> None:
        started[payload["name"]] += 1

    worker = await make_options(db_url, poll_interval=60.0).define_job(step, "step").init()
    async with _running(worker):
        await _warm_up(conn, worker, started)
        held_fetch.armed = True
        x = await add_job(conn, "step", {"name": "X"})
        await wait_until(lambda: resolved(held_fetch.held == [[x]]))
        # The fetch session's statement locked X and its reply is held: Y's notification
        # arrives while it is in flight.
        await add_job(conn, "step", {"name": "Y"})
        await wait_until(lambda: resolved(started["Y"] == 1))
        assert started["X"] == 0
        held_fetch.release.set()
        await wait_until(lambda: resolved(started["X"] == 1))
        await wait_until(lambda: resolved(not worker.slots.running))
    assert started == Counter({"warm": 1, "X": 1, "Y": 1})
    assert held_fetch.spare_fetches >= 1
    assert await job_count(conn) == 0


async def test_many_jobs_announced_during_a_fetch_all_run_once_within_the_slots(
    db_url: str, conn: asyncpg.Connection, held_fetch: HeldFetch
) -> None:
    concurrency = 8
    started: Counter[object] = Counter()
    busy = 0
    most_busy = 0
    finish = asyncio.Event()

    async def step(payload: Any) -> None:
        nonlocal busy, most_busy
        started[payload["name"]] += 1
        if payload["name"] == "warm":
            return
        busy += 1
        most_busy = max(most_busy, busy)
        await finish.wait()
        busy -= 1

    options = make_options(db_url, poll_interval=60.0, concurrency=concurrency)
    worker = await options.define_job(step, "step").init()
    async with _running(worker):
        await _warm_up(conn, worker, started)
        held_fetch.armed = True
        x = await add_job(conn, "step", {"name": "X"})
        await wait_until(lambda: resolved(held_fetch.held == [[x]]))
        assert await conn.fetchval(ADD_MANY, 30) == 30  # one notification, count 30
        # The spare fetch takes the slots the held fetch did not ask for: 7 of them.
        await wait_until(lambda: resolved(busy == concurrency - 1))
        assert started["X"] == 0
        assert not worker.queue  # nothing fetched beyond the free slots
        held_fetch.release.set()
        await wait_until(lambda: resolved(started["X"] == 1))
        finish.set()
        await wait_until(lambda: resolved(sum(started.values()) == 32 and busy == 0))
        await wait_until(lambda: _none_left(conn))
    expected: Counter[object] = Counter(range(1, 31))
    expected.update(["X", "warm"])
    assert started == expected
    assert most_busy == concurrency
    assert await job_count(conn) == 0


async def _none_left(conn: asyncpg.Connection) -> bool:
    return await job_count(conn) == 0
