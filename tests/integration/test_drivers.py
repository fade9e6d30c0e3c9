"""``conn=`` with every driver an application holds, each real, on the real PostgreSQL: the
job (and its ``jobs:insert`` notification) exists only if and when the caller commits.
Django's connection is one of the kinds here; the integration itself (settings, the
management command) has its own test project: tests/acceptance/test_contrib_django.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from graphile_worker_cli import job, job_input, sync
from graphile_worker_cli.errors import BadInputError, DatabaseError
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.connection_kinds import SCHEMA, Opener
from tests.helpers.database import count

S = SCHEMA


SENTINEL = "gw_test_sentinel"


@pytest.fixture
async def notifications(db_url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """Payloads of ``jobs:insert`` notifications, in commit order."""
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(db_url)
    await listener.add_listener("jobs:insert", lambda *args: received.put_nowait(args[3]))
    await listener.add_listener(SENTINEL, lambda *args: received.put_nowait(SENTINEL))
    try:
        yield received
    finally:
        await listener.close()


async def jobs_and_orders(conn: asyncpg.Connection) -> tuple[int, int]:
    return (await count(conn, f"select count(*) from {S}._private_jobs"),
            await count(conn, "select count(*) from orders"))


async def sentinel_notification(db_url: str, received: asyncio.Queue[str]) -> int:
    """Send a sentinel notification from another session and return how many ``jobs:insert``
    notifications arrived before it: one listener gets notifications in commit order."""
    sender = await asyncpg.connect(db_url)
    try:
        await sender.execute(f"notify {SENTINEL}")
    finally:
        await sender.close()
    earlier = 0
    while await asyncio.wait_for(received.get(), 10) != SENTINEL:
        earlier += 1
    return earlier


# --- rolled back / committed ---------------------------------------------------------------


async def test_rolled_back_transaction_leaves_no_job_and_no_notification(
    kind: Opener, db_url: str, observer: asyncpg.Connection,
    notifications: asyncio.Queue[str],
) -> None:
    async with kind(db_url) as txn:
        added = await txn.add_job("send_receipt", {"order": 1}, job.JobSpec(queue_name="mail"))
        await txn.write_order()
        assert added.id > 0 and added.task_identifier == "send_receipt"
        # Inside the transaction the job is there; outside it is not (yet).
        assert await jobs_and_orders(observer) == (0, 0)
        await txn.rollback()
    assert await jobs_and_orders(observer) == (0, 0)
    assert await sentinel_notification(db_url, notifications) == 0


async def test_committed_transaction_has_exactly_one_job_with_the_spec(
    kind: Opener, db_url: str, observer: asyncpg.Connection,
    notifications: asyncio.Queue[str],
) -> None:
    run_at = datetime(2031, 5, 17, 9, 30, 12, 345678, tzinfo=UTC)
    spec = job.JobSpec(queue_name="mail", run_at=run_at, max_attempts=3, job_key="order:1",
                       priority=-2, flags=("slow",))
    async with kind(db_url) as txn:
        added = await txn.add_job("send_receipt", {"order": 1, "note": "100% paid"}, spec)
        await txn.write_order()
        await txn.commit()
    assert await jobs_and_orders(observer) == (1, 1)
    row = await observer.fetchrow(
        f"select j.*, t.identifier, q.queue_name from {S}._private_jobs j"
        f" join {S}._private_tasks t on t.id = j.task_id"
        f" left join {S}._private_job_queues q on q.id = j.job_queue_id"
    )
    assert row is not None
    assert (row["id"], row["identifier"], row["queue_name"], row["run_at"]) == (
        added.id, "send_receipt", "mail", run_at
    )
    assert (row["max_attempts"], row["key"], row["priority"]) == (3, "order:1", -2)
    assert json.loads(row["payload"]) == {"order": 1, "note": "100% paid"}
    assert json.loads(row["flags"]) == {"slow": True}
    assert (added.queue_name, added.run_at, added.key, added.flags) == (
        "mail", run_at, "order:1", {"slow": True}
    )
    # The commit's notification came before the sentinel's.
    assert await sentinel_notification(db_url, notifications) == 1


# --- values round-trip identically across drivers ----------------------------------------------

TRICKY_PAYLOADS: list[Any] = [
    {
        "percent": "100% sure; %s %(x)s %% $1 $$ ? :name",
        "quotes": "it's \"quoted\"",
        "backslashes": "C:\\path\\n \\u0041",
        "unicode": "żółć 😀 \u2028 \u00a0",
        "nested": {"list": [1, 2.5, -0.0, 1e100, True, None], "empty": {}},
        "big": 2**63,
        "negative": -(2**63),
    },
    "just a string",
    "42",
    [1, "two", {"three": 3}],
    12.75,
    None,
]


def tricky_spec(prefix: str, number: int) -> job.JobSpec:
    return job.JobSpec(
        queue_name="q'%$1",
        run_at=datetime(2031, 5, 17, 9, 30, 12, 345678,
                        tzinfo=timezone(timedelta(hours=5, minutes=30))),
        max_attempts=3,
        job_key=f"{prefix}:{number}:%s'$1",
        priority=-5,
        flags=("a%s", "b'$1", "ü"),
    )


STORED = f"""
select t.identifier, q.queue_name, j.payload::text as payload, j.run_at::text as run_at,
       j.max_attempts, j.priority, j.flags::text as flags, j.key
from {S}._private_jobs j
join {S}._private_tasks t on t.id = j.task_id
left join {S}._private_job_queues q on q.id = j.job_queue_id
where j.key like $1 order by j.id
"""


async def test_payloads_and_specs_are_stored_byte_for_byte_as_asyncpg_writes_them(
    kind: Opener, db_url: str, observer: asyncpg.Connection,
) -> None:
    async with await WorkerUtils.connect(db_url, schema=S, max_size=1) as gw:
        baseline = [await gw.add_job("odd 'task' %s", payload, tricky_spec("base", n))
                    for n, payload in enumerate(TRICKY_PAYLOADS)]
    async with kind(db_url) as txn:
        added = [await txn.add_job("odd 'task' %s", payload, tricky_spec("kind", n))
                 for n, payload in enumerate(TRICKY_PAYLOADS)]
        await txn.commit()
    expected = [dict(row) for row in await observer.fetch(STORED, "base:%")]
    stored = [dict(row) for row in await observer.fetch(STORED, "kind:%")]
    assert len(stored) == len(TRICKY_PAYLOADS)
    for row in expected + stored:
        row["key"] = row["key"].split(":", 1)[1]
    assert stored == expected
    # What the call returned matches what asyncpg's returned, field by field.
    for mine, theirs in zip(added, baseline, strict=True):
        assert (mine.task_identifier, mine.queue_name, mine.payload, mine.run_at,
                mine.flags, mine.priority, mine.max_attempts) == (
            theirs.task_identifier, theirs.queue_name, theirs.payload, theirs.run_at,
            theirs.flags, theirs.priority, theirs.max_attempts)


async def test_add_jobs_joins_the_transaction(
    kind: Opener, db_url: str, observer: asyncpg.Connection,
) -> None:
    async with kind(db_url) as txn:
        added = await txn.add_jobs([("a", {"n": 1}), ("b", {"n": 2}), ("a", {"n": 3})])
        await txn.rollback()
    assert [j.task_identifier for j in added] == ["a", "b", "a"]
    assert await jobs_and_orders(observer) == (0, 0)
    async with kind(db_url) as txn:
        added = await txn.add_jobs([("a", {"n": 1})] * 3)
        await txn.commit()
    assert [j.task_identifier for j in added] == ["a", "a", "a"]
    assert await count(observer, f"select count(*) from {S}._private_jobs") == 3


# --- round trips ---------------------------------------------------------------------------


def traced_round_trips(conn: psycopg.Connection[Any], action: Callable[[], object],
                       trace_file: Path) -> int:
    """Round trips ``action`` made on ``conn``, counted on the wire: the server's
    ReadyForQuery messages in libpq's protocol trace."""
    with trace_file.open("w+b") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            action()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        text = trace.read().decode(errors="replace")
    return sum(1 for line in text.splitlines()
               if line.startswith("B") and "\tReadyForQuery" in line)


def test_add_job_on_a_psycopg_connection_is_one_round_trip(
    db_url: str, tmp_path: Path
) -> None:
    gw = sync.SyncWorkerUtils(schema=S)
    with psycopg.connect(db_url) as conn:
        conn.execute("select 1")  # the transaction is open, as in a view that wrote rows
        trips = [
            traced_round_trips(conn, lambda: gw.add_job("send", {"n": 1}, conn=conn),
                               tmp_path / f"trace{n}")
            for n in range(3)
        ]
        keyed = traced_round_trips(
            conn, lambda: gw.add_job("send", {}, job.JobSpec(job_key="k"), conn=conn),
            tmp_path / "keyed",
        )
        bulk = traced_round_trips(
            conn, lambda: gw.add_jobs([("send", {"n": n}) for n in range(50)], conn=conn),
            tmp_path / "bulk",
        )
        conn.rollback()
    assert trips == [1, 1, 1] and keyed == 1 and bulk == 1


def test_add_job_on_a_psycopg2_connection_is_one_statement(db_url: str) -> None:
    import psycopg2
    import psycopg2.extensions

    executed: list[str] = []

    class CountingCursor(psycopg2.extensions.cursor):
        def execute(self, query: Any, vars: Any = None) -> None:
            executed.append(str(query))
            super().execute(query, vars)

    conn = psycopg2.connect(db_url, cursor_factory=CountingCursor)
    try:
        gw = sync.SyncWorkerUtils(schema=S)
        gw.add_job("send", {"n": 1}, conn=conn)
        assert len(executed) == 1
        gw.add_jobs([("send", {"n": n}) for n in range(10)], conn=conn)
        assert len(executed) == 2
        conn.rollback()
    finally:
        conn.close()


# --- wrong connections, errors -------------------------------------------------------------


async def test_a_sync_connection_given_to_worker_utils_is_refused_with_a_hint(
    db_url: str,
) -> None:
    gw = WorkerUtils(schema=S)
    with psycopg.connect(db_url) as conn, pytest.raises(BadInputError) as caught:
        await gw.add_job("send", conn=conn)
    assert "psycopg Connection, which is synchronous: pass it to SyncWorkerUtils" in str(
        caught.value
    )
    async with await psycopg.AsyncConnection.connect(db_url) as aconn:
        with pytest.raises(BadInputError, match="asynchronous: pass it to WorkerUtils"):
            sync.SyncWorkerUtils(schema=S).add_job("send", conn=aconn)


def test_an_engine_or_unknown_object_is_refused_naming_what_is_accepted(db_url: str) -> None:
    import sqlalchemy

    gw = sync.SyncWorkerUtils(schema=S)
    engine = sqlalchemy.create_engine("postgresql+psycopg://" + db_url.split("://", 1)[1])
    with pytest.raises(BadInputError, match="an engine or pool has no transaction"):
        gw.add_job("send", conn=engine)
    engine.dispose()
    with pytest.raises(BadInputError, match="SyncWorkerUtils takes a psycopg Connection"):
        gw.add_job("send", conn=object())


def test_driver_errors_become_one_line_gw_errors(db_url: str, empty_db_url: str) -> None:
    gw = sync.SyncWorkerUtils(schema=S)
    with psycopg.connect(empty_db_url) as conn, pytest.raises(DatabaseError) as missing:
        gw.add_job("send", conn=conn)
    assert "missing or not fully migrated" in str(missing.value)
    with psycopg.connect(db_url) as conn, pytest.raises(BadInputError) as refused:
        gw.add_job("send", {}, job.JobSpec(job_key_mode="bogus"), conn=conn)  # type: ignore[arg-type]
    assert "unknown job key mode 'bogus'" in str(refused.value)
    with psycopg.connect(db_url) as conn, pytest.raises(BadInputError) as rejected:
        gw.reschedule_jobs([1], max_attempts=0, conn=conn)
    assert "max_attempts" in str(rejected.value)


# --- the other jobs methods on a caller's connection ---------------------------------------


def test_every_jobs_method_runs_on_a_psycopg_connection(db_url: str) -> None:
    gw = sync.SyncWorkerUtils(schema=S)
    with psycopg.connect(db_url) as conn:
        first = gw.add_job("a", {"n": 1}, job.JobSpec(queue_name="q"), conn=conn)
        second = gw.add_raw_job("b", {"n": 2}, job.JobSpec(job_key="key-b"), conn=conn)
        gw.add_batch_job("c", [1], job.JobSpec(job_key="batch"), conn=conn)
        batch = gw.add_batch_job("c", [2], job.JobSpec(job_key="batch"), conn=conn)
        assert batch.payload == [1, 2]
        later = datetime.now(UTC) + timedelta(hours=1)
        (moved,) = gw.reschedule_jobs([first.id], run_at=later, priority=4, conn=conn)
        assert (moved.run_at, moved.priority, moved.queue_name) == (later, 4, "q")
        assert [j.id for j in gw.list_jobs(state="scheduled", conn=conn)] == [first.id]
        assert gw.get_job(second.id, conn=conn).payload == {"n": 2}
        (failed,) = gw.permanently_fail_jobs([first.id], "gave up", conn=conn)
        assert failed.last_error == "gave up"
        removed = gw.remove_job("key-b", conn=conn)
        assert removed is not None and removed.id == second.id
        assert gw.complete_jobs([batch.id], conn=conn)[0].id == batch.id
        gw.force_unlock_workers(["nobody"], conn=conn)
        deleted = gw.cleanup(
            ["DELETE_PERMAFAILED_JOBS", "GC_TASK_IDENTIFIERS", "GC_JOB_QUEUES"], conn=conn
        )
        assert deleted == {
            job_input.CleanupTask.DELETE_PERMAFAILED_JOBS: 1,
            job_input.CleanupTask.GC_TASK_IDENTIFIERS: 3,
            job_input.CleanupTask.GC_JOB_QUEUES: 1,
        }
        assert gw.list_jobs(conn=conn) == []
        conn.commit()


async def test_every_jobs_method_runs_on_a_sqlalchemy_async_session(db_url: str) -> None:
    import sqlalchemy.ext.asyncio as sa_async

    engine = sa_async.create_async_engine("postgresql+asyncpg://" + db_url.split("://", 1)[1])
    gw = WorkerUtils(schema=S)
    try:
        async with sa_async.AsyncSession(engine) as session:
            added = await gw.add_jobs([("a", {"n": 1}), ("b", {"n": 2})], conn=session)
            (done,) = await gw.complete_jobs([added[0].id], conn=session)
            assert done.task_identifier == "a"
            (rescheduled,) = await gw.reschedule_jobs([added[1].id], attempts=2, conn=session)
            assert rescheduled.attempts == 2
            assert [j.id for j in await gw.list_jobs(conn=session)] == [added[1].id]
            assert (await gw.get_job(added[1].id, conn=session)).payload == {"n": 2}
            assert await gw.remove_job("none", conn=session) is None
            await session.commit()
    finally:
        await engine.dispose()


async def test_job_scheduled_hooks_run_in_the_callers_psycopg_transaction(
    db_url: str, observer: asyncpg.Connection,
) -> None:
    from graphile_worker_cli import hooks

    seen: list[tuple[str, int]] = []

    async def scheduled(ctx: hooks.JobScheduledContext) -> None:
        (row,) = await ctx.fetch(
            f"select count(*) as n from {S}._private_jobs where id = $1", ctx.job.id
        )
        seen.append((type(ctx.conn).__name__, row["n"]))

    gw = WorkerUtils(schema=S, hooks=hooks.HookRegistry().on(hooks.JobScheduled, scheduled))
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await gw.add_job("a", conn=conn)
        await gw.add_jobs([("b", {}), ("c", {})], conn=conn)
        await conn.rollback()
    # Each hook saw its job inside the transaction, which then rolled back.
    assert seen == [("AsyncConnection", 1)] * 3
    assert await count(observer, f"select count(*) from {S}._private_jobs") == 0
