"""The synchronous API, called from plain threads that have no event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import sync
from graphile_worker_cli.errors import BadInputError, DatabaseConnectError, GraphileWorkerError
from graphile_worker_cli.job import JobSpec


def in_plain_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a new thread (no event loop there) and return or raise its result."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            assert asyncio._get_running_loop() is None
            outcome["value"] = fn()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


async def test_sync_api_from_a_plain_thread(db_url: str, conn: asyncpg.Connection) -> None:
    def script() -> tuple[int, int, list[str], int]:
        with sync.SyncWorkerUtils.connect(db_url) as gw:
            job = gw.add_job("send_email", {"to": "a@example.com"}, JobSpec(queue_name="mail"))
            later = datetime.now(UTC) + timedelta(hours=1)
            (moved,) = gw.reschedule_jobs([job.id], run_at=later)
            batch = gw.add_batch_job("digest", [1], JobSpec(job_key="d"))
            batch = gw.add_batch_job("digest", [2], JobSpec(job_key="d"))
            listed = [j.task_identifier for j in gw.list_jobs()]
            completed = gw.complete_jobs([job.id])
            return moved.id, len(completed), listed, len(batch.payload)

    # The test's own loop stays free while the thread works.
    moved_id, completed, listed, batch_size = await asyncio.to_thread(in_plain_thread, script)
    assert completed == 1 and listed == ["send_email", "digest"] and batch_size == 2
    assert await conn.fetchval(
        "select count(*) from graphile_worker._private_jobs where id = $1", moved_id
    ) == 0


async def test_many_threads_share_one_loop(db_url: str, conn: asyncpg.Connection) -> None:
    gw = await asyncio.to_thread(sync.SyncWorkerUtils.connect, db_url)
    try:
        def add_five(worker: int) -> None:
            for n in range(5):
                gw.add_job("t", {"worker": worker, "n": n})

        def run_threads() -> None:
            threads = [threading.Thread(target=add_five, args=(w,)) for w in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        await asyncio.to_thread(run_threads)
        assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 40
        other = await asyncio.to_thread(sync.SyncWorkerUtils.connect, db_url)
        assert other._runner is gw._runner  # one loop thread per process, reused
        await asyncio.to_thread(other.close)
    finally:
        await asyncio.to_thread(gw.close)


async def test_sync_errors_are_gw_errors(db_url: str) -> None:
    def bad_mode() -> None:
        with sync.SyncWorkerUtils.connect(db_url) as gw:
            gw.add_job("t", {}, JobSpec(job_key="k", job_key_mode="often"))  # type: ignore[arg-type]

    with pytest.raises(BadInputError, match="unknown job key mode 'often'"):
        await asyncio.to_thread(in_plain_thread, bad_mode)
    with pytest.raises(DatabaseConnectError, match=r"127\.0\.0\.1:1"):
        await asyncio.to_thread(
            in_plain_thread, lambda: sync.SyncWorkerUtils.connect("postgres://127.0.0.1:1/x")
        )


async def test_an_instance_from_before_a_fork_refuses_to_work(db_url: str) -> None:
    gw = await asyncio.to_thread(sync.SyncWorkerUtils.connect, db_url)
    runner = gw._runner
    assert runner is not None
    real_pid = runner.pid
    try:
        runner.pid = real_pid + 1_000_000  # as seen from a forked child
        with pytest.raises(GraphileWorkerError, match="before the process forked"):
            await asyncio.to_thread(gw.add_job, "t", {})
    finally:
        runner.pid = real_pid
        await asyncio.to_thread(gw.close)


async def test_sync_workers_listing_and_sweep(db_url: str) -> None:
    from graphile_worker_cli import recovery

    def script() -> tuple[int, bool]:
        with sync.SyncWorkerUtils.connect(db_url) as gw:
            workers = gw.list_active_workers()
            result = gw.sweep_stale_workers(recovery.SweepStaleWorkersOptions(dry_run=True))
            return len(workers), result.dry_run

    assert await asyncio.to_thread(in_plain_thread, script) == (0, True)
