"""PermanentFailure and the task's choice of the next run (retry_in, retry_at, backoff),
written by a real worker to real PostgreSQL (issue 17 items 2 and 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from graphile_worker_cli import PermanentFailure, TaskFailure, TaskHandler, hooks, task
from tests.helpers.worker import S, add_job, make_options


async def _row(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"select attempts, max_attempts, last_error, locked_by, run_at,"
        f" extract(epoch from run_at - now()) as wait, is_available"
        f" from {S}._private_jobs where id = $1", job_id,
    )
    assert row is not None
    return row


async def test_a_raised_permanent_failure_uses_up_every_attempt_at_once(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "charge", {"card": "x"}, queue_name="cards")

    async def charge(payload: Any) -> None:
        raise PermanentFailure("card declined")

    worker = await make_options(db_url).define_job(charge, "charge").init()
    await worker.run_once()
    row = await _row(conn, job_id)
    assert (row["attempts"], row["max_attempts"]) == (25, 25)
    assert row["last_error"] == "card declined" and row["locked_by"] is None
    assert row["is_available"] is False
    queue = await conn.fetchrow(f"select locked_by from {S}._private_job_queues")
    assert queue is not None and queue["locked_by"] is None


async def test_a_returned_permanent_failure_fails_for_good_too(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "refuse", None, max_attempts=3)

    def refuse(payload: Any) -> PermanentFailure:  # sync: runs in a thread
        return PermanentFailure("no such account")

    worker = await make_options(db_url).define_job(refuse, "refuse").init()
    await worker.run_once()
    row = await _row(conn, job_id)
    assert (row["attempts"], row["last_error"]) == (3, "no such account")


async def test_retry_in_and_retry_at_set_the_next_run(
    db_url: str, conn: asyncpg.Connection
) -> None:
    later = await add_job(conn, "later", None)
    at = await add_job(conn, "at", None)
    when = datetime.now(UTC) + timedelta(days=2)

    async def later_task(payload: Any) -> TaskFailure:
        return TaskFailure("busy", retry_in="1h")

    async def at_task(payload: Any) -> TaskFailure:
        return TaskFailure("closed", retry_at=when)

    worker = await (
        make_options(db_url).define_job(later_task, "later").define_job(at_task, "at").init()
    )
    await worker.run_once()
    row = await _row(conn, later)
    assert 3590 < row["wait"] <= 3600
    assert (row["attempts"], row["last_error"], row["locked_by"]) == (1, "busy", None)
    row = await _row(conn, at)
    assert abs((row["run_at"] - when).total_seconds()) < 0.001
    assert (row["attempts"], row["last_error"]) == (1, "closed")


async def test_a_task_backoff_chooses_the_wait_and_the_default_stays_the_reference(
    db_url: str, conn: asyncpg.Connection
) -> None:
    custom = await add_job(conn, "custom", None)
    plain = await add_job(conn, "plain", None)
    seen: list[int] = []

    def backoff(attempts: int) -> timedelta:
        seen.append(attempts)
        return timedelta(minutes=10 * attempts)

    @task("custom", backoff=backoff)
    async def custom_task(payload: Any) -> None:
        raise ValueError("nope")

    class Plain(TaskHandler):
        IDENTIFIER = "plain"

        async def run(self, ctx: Any) -> None:
            raise ValueError("nope")

    worker = await make_options(db_url).define_job(custom_task).define_job(Plain).init()
    await worker.run_once()
    assert seen == [1]
    row = await _row(conn, custom)
    assert 590 < row["wait"] <= 600 and row["last_error"] == "ValueError: nope"
    row = await _row(conn, plain)
    assert 2.0 < row["wait"] <= 2.72  # exp(1) seconds, as the reference


async def test_handler_class_backoff_and_batched_failures_settle_together(
    db_url: str, conn: asyncpg.Connection
) -> None:
    ids = [await add_job(conn, "classy", {"n": n}) for n in range(6)]

    class Classy(TaskHandler):
        IDENTIFIER = "classy"
        BACKOFF = staticmethod(lambda attempts: 300)  # type: ignore[assignment]
        n: int

        async def run(self, ctx: Any) -> object:
            if self.n % 3 == 0:
                return TaskFailure("custom", retry_in=60)
            if self.n % 3 == 1:
                raise PermanentFailure("gone")
            raise ValueError("boom")

    worker = await make_options(db_url, fail_job_batch_delay=0.05).define_job(Classy).init()
    await worker.run_once()
    rows = {job_id: await _row(conn, job_id) for job_id in ids}
    for n, job_id in enumerate(ids):
        row = rows[job_id]
        assert row["locked_by"] is None
        if n % 3 == 0:
            assert 50 < row["wait"] <= 60 and row["attempts"] == 1
        elif n % 3 == 1:
            assert row["attempts"] == 25 and row["last_error"] == "gone"
        else:
            assert 290 < row["wait"] <= 300 and row["last_error"] == "ValueError: boom"


async def test_a_bad_retry_in_still_records_the_failure_with_the_default_backoff(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "odd", None)

    async def odd(payload: Any) -> TaskFailure:
        return TaskFailure("odd", retry_in="soon")

    worker = await make_options(db_url).define_job(odd, "odd").init()
    await worker.run_once()
    row = await _row(conn, job_id)
    assert row["locked_by"] is None and row["attempts"] == 1
    assert row["last_error"].startswith("odd\n(retry time not used: invalid duration 'soon'")
    assert 2.0 < row["wait"] <= 2.72


async def test_a_permanent_failure_fires_job_permanently_fail_at_the_first_attempt(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "decline", None)
    seen: list[tuple[str, Any]] = []

    async def decline(payload: Any) -> None:
        raise PermanentFailure("card declined")

    options = make_options(db_url).define_job(decline, "decline")
    options.hooks.on(hooks.JobFail, lambda c: seen.append(("fail", c.will_retry)))
    options.hooks.on(hooks.JobPermanentlyFail, lambda c: seen.append(("permanent", c.error)))
    worker = await options.init()
    await worker.run_once()
    assert seen == [("fail", False), ("permanent", "card declined")]
    assert (await _row(conn, job_id))["attempts"] == 25
