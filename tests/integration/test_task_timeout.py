"""Task timeouts with a real worker and real PostgreSQL (issue 17 item 1): the abort
signal fires with reason "timeout", the abort window passes, the task is cancelled and the
job fails as timed out (attempt used, normal backoff)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import TaskHandler, WorkerContext, define_task, task
from graphile_worker_cli.errors import TaskLoadError
from tests.helpers.worker import S, add_job, make_options


async def _row(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"select attempts, last_error, locked_by, extract(epoch from run_at - now()) as wait"
        f" from {S}._private_jobs where id = $1", job_id,
    )
    assert row is not None
    return row


async def test_a_task_past_its_timeout_is_aborted_cancelled_and_failed(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "stuck", None)
    seen: dict[str, Any] = {}

    @task("stuck", timeout="200ms")
    async def stuck(payload: Any, ctx: WorkerContext) -> None:
        try:
            await asyncio.Event().wait()  # ignores the abort signal
        except asyncio.CancelledError:
            seen["reason"] = ctx.abort_signal.reason
            raise

    worker = await make_options(db_url).define_job(stuck).init()
    await asyncio.wait_for(worker.run_once(), 30)
    assert seen == {"reason": "timeout"}
    row = await _row(conn, job_id)
    assert row["last_error"] == "timed out after 200ms"
    assert row["attempts"] == 1 and row["locked_by"] is None
    assert 2.0 < row["wait"] <= 2.72  # the reference's backoff


async def test_a_task_that_watches_the_signal_stops_and_still_fails_as_timed_out(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "polite", {})
    stopped = asyncio.Event()

    class Polite(TaskHandler):
        IDENTIFIER = "polite"
        TIMEOUT = 0.2

        async def run(self, ctx: WorkerContext) -> None:
            await ctx.abort_signal.wait()
            stopped.set()

    worker = await make_options(db_url).define_job(Polite).init()
    await asyncio.wait_for(worker.run_once(), 30)
    assert stopped.is_set()
    assert (await _row(conn, job_id))["last_error"] == "timed out after 200ms"


async def test_the_worker_default_applies_and_a_task_timeout_overrides_it(
    db_url: str, conn: asyncpg.Connection
) -> None:
    slow = await add_job(conn, "slow", None)
    patient = await add_job(conn, "patient", None)

    async def slow_task(payload: Any) -> None:
        await asyncio.sleep(30)

    @task("patient", timeout="10s")
    async def patient_task(payload: Any) -> None:
        await asyncio.sleep(0.5)

    worker = await (
        make_options(db_url, task_timeout=0.2)
        .define_job(slow_task, "slow").define_job(patient_task).init()
    )
    await asyncio.wait_for(worker.run_once(), 30)
    assert (await _row(conn, slow))["last_error"] == "timed out after 200ms"
    done = await conn.fetchval(f"select count(*) from {S}._private_jobs where id = $1", patient)
    assert done == 0  # completed: its own timeout was long enough


async def test_a_sync_task_past_its_timeout_fails_while_its_thread_runs_on(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "blocking", None)
    release = threading.Event()

    @task("blocking", timeout="200ms")
    def blocking(payload: Any) -> None:
        release.wait(20)

    worker = await make_options(db_url).define_job(blocking).init()
    try:
        await asyncio.wait_for(worker.run_once(), 30)
        row = await _row(conn, job_id)
        assert row["last_error"] == "timed out after 200ms" and row["locked_by"] is None
    finally:
        release.set()


async def test_shutdown_before_the_timeout_hands_the_job_back_as_without_one(
    db_url: str, conn: asyncpg.Connection
) -> None:
    started = asyncio.Event()
    reasons: list[str | None] = []

    @task("long", timeout="1h")
    async def long(payload: Any, ctx: WorkerContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            reasons.append(ctx.abort_signal.reason)

    job_id = await add_job(conn, "long", {})
    worker = await make_options(
        db_url, shutdown_grace_period=0.2, shutdown_interrupted_job_retry_delay=30
    ).define_job(long).init()
    runner = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 20)
    worker.request_shutdown()
    await asyncio.wait_for(runner, 20)
    assert len(reasons) == 1 and reasons[0] != "timeout"
    row = await _row(conn, job_id)
    assert (row["attempts"], row["locked_by"], row["last_error"]) == (0, None, None)


def test_a_timeout_that_is_not_a_duration_is_refused_when_the_task_is_defined() -> None:
    @task("bad", timeout="soon")
    async def bad(payload: Any) -> None: ...

    with pytest.raises(TaskLoadError, match="timeout: invalid duration 'soon'"):
        define_task(bad)
