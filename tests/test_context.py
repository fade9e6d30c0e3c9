"""WorkerContext, Extensions, AbortSignal and the job logger."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest

from graphile_worker_cli import context, db
from graphile_worker_cli.context import AbortSignal, Extensions, JobAborted, WorkerContext
from graphile_worker_cli.job import Job, JobSpec

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_job(
    payload: Any = None,
    *,
    identifier: str = "some_task",
    attempts: int = 1,
    max_attempts: int = 25,
    queue_name: str | None = None,
    flags: dict[str, bool] | None = None,
) -> Job:
    return Job(
        id=42,
        task_identifier=identifier,
        queue_name=queue_name,
        payload={} if payload is None else payload,
        priority=0,
        run_at=NOW,
        attempts=attempts,
        max_attempts=max_attempts,
        last_error=None,
        created_at=NOW,
        updated_at=NOW,
        key="the-key",
        locked_at=NOW,
        locked_by="test-worker",
        revision=0,
        flags=flags,
    )


def make_context(
    job: Job | None = None,
    *,
    pool: asyncpg.Pool | None = None,
    schema: str = "graphile_worker",
    extensions: Extensions | None = None,
) -> WorkerContext:
    return WorkerContext(
        job=job or make_job(),
        pool=cast(asyncpg.Pool, pool),
        schema=schema,
        worker_id="test-worker",
        extensions=extensions or Extensions(),
        abort_signal=AbortSignal(),
    )


# Job fields -------------------------------------------------------------------------


def test_context_exposes_the_job_fields() -> None:
    job = make_job(
        {"to": "a@example.com"},
        identifier="send_email",
        attempts=2,
        max_attempts=5,
        queue_name="mail",
        flags={"slow": True, "big": True},
    )
    ctx = make_context(job)
    assert ctx.job is job
    assert ctx.payload == {"to": "a@example.com"}
    assert (ctx.job_id, ctx.task_identifier, ctx.queue_name) == (42, "send_email", "mail")
    assert (ctx.attempts, ctx.max_attempts, ctx.run_at, ctx.key) == (2, 5, NOW, "the-key")
    assert ctx.flags == ("big", "slow")
    assert make_context(make_job(flags=None)).flags == ()
    assert ctx.worker_id == "test-worker"


# Logger -----------------------------------------------------------------------------


def test_logger_adds_job_fields_and_merges_the_callers(caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_context(make_job(identifier="send_email", attempts=3, queue_name="mail"))
    with caplog.at_level(logging.INFO, logger=context.JOB_LOGGER_NAME):
        ctx.logger.info("sending %s", "now", extra={"gw": {"recipient": "x"}, "other": 1})
    [record] = caplog.records
    assert record.name == "gw.job"
    assert record.getMessage() == "sending now"
    fields = record.__dict__["gw"]
    assert fields == {
        "job_id": 42,
        "task": "send_email",
        "queue": "mail",
        "attempt": 3,
        "recipient": "x",
    }
    assert record.__dict__["other"] == 1


# Extensions -------------------------------------------------------------------------


class Mailer:
    def __init__(self, host: str) -> None:
        self.host = host


class FakeMailer(Mailer):
    pass


class Missing:
    pass


def test_extensions_are_stored_and_fetched_by_type() -> None:
    extensions = Extensions()
    mailer = Mailer("smtp.example.com")
    assert extensions.insert(mailer) is None
    extensions.insert(7)
    assert extensions.get(Mailer) is mailer
    assert extensions[int] == 7
    assert Mailer in extensions and Missing not in extensions
    assert len(extensions) == 2
    replacement = Mailer("other")
    assert extensions.insert(replacement) is mailer
    assert extensions[Mailer] is replacement
    assert extensions.find(Missing) is None


def test_extension_of_a_subclass_is_found_by_its_base() -> None:
    fake = FakeMailer("fake")
    extensions = Extensions([fake])
    assert extensions.get(Mailer) is fake


def test_missing_extension_error_names_the_type() -> None:
    with pytest.raises(KeyError) as raised:
        Extensions([Mailer("x")]).get(Missing)
    message = str(raised.value)
    assert "no extension of type tests.test_context.Missing" in message
    assert "add_extension(Missing(...))" in message


# Abort signal -----------------------------------------------------------------------


async def test_abort_signal_wakes_async_waiters_with_the_reason() -> None:
    signal = AbortSignal()
    waiter = asyncio.create_task(signal.wait())
    await asyncio.sleep(0)
    assert not waiter.done() and not signal.is_set() and signal.reason is None
    signal.set("worker shutdown")
    assert await waiter == "worker shutdown"
    assert signal.is_set() and signal.reason == "worker shutdown"
    signal.set("second reason is ignored")
    assert signal.reason == "worker shutdown"
    assert await signal.wait() == "worker shutdown"  # already set: returns at once


async def test_abort_signal_set_from_another_thread_wakes_the_loop() -> None:
    signal = AbortSignal()
    waiter = asyncio.create_task(signal.wait())
    await asyncio.sleep(0)
    thread = threading.Thread(target=signal.set, args=("from a thread",))
    thread.start()
    assert await asyncio.wait_for(waiter, 10) == "from a thread"
    thread.join()


async def test_abort_signal_is_visible_to_a_sync_handler_in_a_thread() -> None:
    signal = AbortSignal()
    started = threading.Event()

    def sync_handler() -> str:
        started.set()
        assert signal.wait_sync(timeout=30)  # blocks this thread only
        with pytest.raises(JobAborted, match="stop now"):
            signal.raise_if_set()
        return "saw it"

    running = asyncio.create_task(asyncio.to_thread(sync_handler))
    await asyncio.to_thread(started.wait, 30)
    signal.set("stop now")
    assert await running == "saw it"


def test_abort_signal_wait_sync_times_out_when_not_set() -> None:
    signal = AbortSignal()
    assert signal.wait_sync(timeout=0) is False
    signal.raise_if_set()  # does not raise


async def test_cancelled_wait_does_not_leak_a_waiter() -> None:
    signal = AbortSignal()
    waiter = asyncio.create_task(signal.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert signal._waiters == []
    signal.set()


# Database ---------------------------------------------------------------------------


async def test_query_and_add_job_use_the_workers_pool_and_schema(db_url: str) -> None:
    pool = await db.create_pool(db_url, min_size=1, max_size=2)
    try:
        ctx = make_context(pool=pool)
        rows = await ctx.query("select $1::int + 1 as answer", 41)
        assert rows[0]["answer"] == 42

        added = await ctx.add_job("follow_up", {"n": 1}, JobSpec(queue_name="q1"))
        assert added.task_identifier == "follow_up" and added.queue_name == "q1"
        more = await ctx.add_jobs([("follow_up", {"n": 2}), ("other", {"n": 3})])
        assert len(more) == 2

        jobs = await ctx.query(
            "select t.identifier, j.payload::text as payload from graphile_worker._private_jobs j "
            "join graphile_worker._private_tasks t on t.id = j.task_id order by j.id"
        )
        assert [(r["identifier"], r["payload"]) for r in jobs] == [
            ("follow_up", '{"n":1}'),
            ("follow_up", '{"n":2}'),
            ("other", '{"n":3}'),
        ]
    finally:
        await pool.close()


async def test_add_job_honours_an_odd_schema_name(pg_admin_url: str) -> None:
    from graphile_worker_cli import migrate
    from tests.conftest import create_database, drop_database, unique_name

    name = unique_name("gw_ctx")
    url = await create_database(pg_admin_url, name)
    schema = 'odd "schema"'
    try:
        async with db.connection(url) as conn:
            await migrate.migrate(conn, schema)
        pool = await db.create_pool(url, min_size=1, max_size=1)
        try:
            ctx = make_context(pool=pool, schema=schema)
            await ctx.add_job("in_odd_schema")
            rows = await ctx.query(
                f"select task_identifier from {db.escape_identifier(schema)}.jobs"
            )
            assert [r["task_identifier"] for r in rows] == ["in_odd_schema"]
        finally:
            await pool.close()
    finally:
        await drop_database(pg_admin_url, name)


async def test_sync_handler_can_run_coroutines_on_the_loop(db_url: str) -> None:
    pool = await db.create_pool(db_url, min_size=1, max_size=1)
    try:
        ctx = make_context(pool=pool)
        ctx.bind_loop(asyncio.get_running_loop())

        def sync_handler() -> int:
            ctx.run_coroutine(ctx.add_job("from_a_thread"))
            rows = ctx.run_coroutine(ctx.query("select count(*) as n from graphile_worker.jobs"))
            return int(rows[0]["n"])

        assert await asyncio.to_thread(sync_handler) == 1
        with pytest.raises(RuntimeError, match="block the event loop"):
            ctx.run_coroutine(asyncio.sleep(0))
    finally:
        await pool.close()
