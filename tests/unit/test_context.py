"""WorkerContext, Extensions, AbortSignal and the job logger."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import cast

import asyncpg
import pytest

from graphile_worker_cli import context
from graphile_worker_cli.context import AbortSignal, Extensions, JobAborted, ReadOnlyExtensions
from graphile_worker_cli.errors import JobLockLostError
from tests.helpers.context import NOW, make_context, make_job

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
    assert f"no extension of type {__name__}.Missing" in message
    assert "add_extension(Missing(...))" in message


def test_a_job_sees_the_extensions_through_a_read_only_view() -> None:
    mailer = Mailer("smtp.example.com")
    shared = Extensions([mailer])
    ctx = make_context(extensions=shared)
    view = ctx.extensions
    assert isinstance(view, ReadOnlyExtensions) and not isinstance(view, Extensions)
    assert view.get(Mailer) is mailer and view[Mailer] is mailer and Mailer in view
    assert view.find(Missing) is None and len(view) == 1 and list(view) == [mailer]
    assert make_context(extensions=shared).extensions is view  # one view per Extensions
    shared.insert(7)  # before the worker starts, the application may still add some
    assert view[int] == 7


@pytest.mark.parametrize(
    ("attempt", "what"),
    [
        (lambda view: view.insert(Mailer("other")), "insert"),
        (lambda view: view.__setitem__(Mailer, Mailer("other")), "item assignment"),
        (lambda view: view.__delitem__(Mailer), "item deletion"),
        (lambda view: setattr(view, "_values", {}), "attribute assignment"),
        (lambda view: delattr(view, "_values"), "attribute deletion"),
    ],
)
def test_changing_the_read_only_view_raises_a_type_error_naming_it(
    attempt: Callable[[ReadOnlyExtensions], object], what: str
) -> None:
    mailer = Mailer("smtp.example.com")
    shared = Extensions([mailer])
    view = make_context(extensions=shared).extensions
    with pytest.raises(TypeError, match=f"ReadOnlyExtensions does not support {what}"):
        attempt(view)
    assert shared[Mailer] is mailer and view[Mailer] is mailer and len(shared) == 1


def test_read_only_view_table_cannot_be_changed_and_context_keeps_its_view() -> None:
    view = make_context(extensions=Extensions([Mailer("x")])).extensions
    table = view._values
    with pytest.raises(TypeError):
        table[int] = 1  # type: ignore[index]
    ctx = make_context()
    with pytest.raises(AttributeError):
        ctx.extensions = Extensions().read_only()  # type: ignore[misc]


def test_copy_of_the_view_is_a_separate_changeable_extensions() -> None:
    mailer = Mailer("smtp.example.com")
    shared = Extensions([mailer])
    mine = shared.read_only().copy()
    assert isinstance(mine, Extensions) and mine[Mailer] is mailer
    mine.insert(Mailer("mine"))
    assert shared[Mailer] is mailer


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


# ctx.transaction() ----------------------------------------------------------------------


def test_transaction_needs_the_context_the_worker_gives() -> None:
    with pytest.raises(RuntimeError, match="needs the context the worker gives a task"):
        make_context().transaction()


def test_a_run_that_is_over_or_refused_opens_no_transaction() -> None:
    from graphile_worker_cli.job_transaction import InTransactionCompletion, JobCompletion

    async def never(conn: object, job: object) -> bool:
        raise AssertionError("no statement may run")

    shared = InTransactionCompletion(cast(asyncpg.Pool, None), never)
    over = JobCompletion(make_job(), shared)
    over.ended = True
    with pytest.raises(RuntimeError, match=r"the run of job 42 .* is over"):
        asyncio.run(over.begin())
    refused = JobCompletion(make_job(), shared, refused="not for batch tasks")
    with pytest.raises(RuntimeError, match="not for batch tasks"):
        asyncio.run(refused.begin())
    timed_out = JobCompletion(make_job(), shared)
    asyncio.run(timed_out.give_up("timed out after 1s"))
    with pytest.raises(JobLockLostError, match=r"job 42 .* timed out after 1s: ctx.transaction"):
        asyncio.run(timed_out.begin())
