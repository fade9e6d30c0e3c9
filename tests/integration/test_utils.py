"""WorkerUtils against a real database: every method, every job key mode, locked jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import asyncpg
import pydantic
import pytest

from graphile_worker_cli import db
from graphile_worker_cli import worker_utils as wu
from graphile_worker_cli.errors import (
    BadInputError,
    DatabaseError,
    JobKeyRaceError,
    JobNotFoundError,
)
from graphile_worker_cli.job import JobKeyMode, JobSpec, JobState, RawJobSpec, job_state
from graphile_worker_cli.job_input import CleanupTask, RescheduleJobOptions

SCHEMA = "graphile_worker"


class SendEmail(pydantic.BaseModel):
    to: str
    subject: str = "hi"


@dataclasses.dataclass
class Resize:
    image_id: int
    at: datetime


@pytest.fixture
async def utils(db_url: str) -> AsyncIterator[wu.WorkerUtils]:
    async with await wu.WorkerUtils.connect(db_url, max_size=3) as worker_utils:
        yield worker_utils


async def row(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await conn.fetchrow(
        "select * from graphile_worker._private_jobs where id = $1", job_id
    )
    return record


async def lock(conn: asyncpg.Connection, job_id: int, *, age: timedelta = timedelta()) -> None:
    """Lock a job the way a worker does (locked_at, locked_by, attempts + 1)."""
    await conn.execute(
        "update graphile_worker._private_jobs set locked_at = now() - $2::interval, "
        "locked_by = 'worker-a', attempts = attempts + 1 where id = $1",
        job_id, age,
    )


# --- adding ---------------------------------------------------------------------------------


async def test_add_job_defaults(utils: wu.WorkerUtils, conn: asyncpg.Connection) -> None:
    job = await utils.add_job("hello")
    assert job.task_identifier == "hello"
    assert job.payload == {}
    assert (job.queue_name, job.priority, job.max_attempts, job.attempts) == (None, 0, 25, 0)
    assert job.key is None and job.flags is None and job.locked_at is None
    stored = await row(conn, job.id)
    assert stored is not None and json.loads(stored["payload"]) == {}


async def test_add_job_with_every_option(utils: wu.WorkerUtils, conn: asyncpg.Connection) -> None:
    run_at = datetime(2031, 5, 17, 9, 30, tzinfo=UTC)
    spec = JobSpec(
        queue_name="mail", run_at=run_at, max_attempts=3, job_key="welcome:1",
        priority=-5, flags=("slow", "gpu"),
    )
    job = await utils.add_job("send_email", SendEmail(to="a@example.com"), spec)
    assert job.payload == {"to": "a@example.com", "subject": "hi"}
    assert (job.queue_name, job.run_at, job.max_attempts) == ("mail", run_at, 3)
    assert (job.key, job.priority, job.flags) == ("welcome:1", -5, {"slow": True, "gpu": True})
    view = await conn.fetchrow("select * from graphile_worker.jobs where id = $1", job.id)
    assert view is not None
    assert (view["task_identifier"], view["queue_name"]) == ("send_email", "mail")


async def test_add_job_payload_shapes(utils: wu.WorkerUtils) -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = await utils.add_job("resize", Resize(image_id=7, at=at))
    assert job.payload == {"image_id": 7, "at": "2030-01-02T03:04:05Z"}
    assert (await utils.add_job("t", [1, "two", None])).payload == [1, "two", None]
    assert (await utils.add_job("t", {"nested": {"ok": True}})).payload == {"nested": {"ok": True}}
    assert (await utils.add_job("t", 42)).payload == 42


async def test_add_raw_job_takes_plain_json_only(utils: wu.WorkerUtils) -> None:
    job = await utils.add_raw_job("raw", {"a": [1, 2.5, "x", None, True]})
    assert job.payload == {"a": [1, 2.5, "x", None, True]}
    with pytest.raises(BadInputError, match="SendEmail"):
        await utils.add_raw_job("raw", {"a": SendEmail(to="x")})


async def test_unserialisable_payload_names_its_type(
    utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    class Opaque:
        pass

    with pytest.raises(BadInputError, match="Opaque"):
        await utils.add_job("t", {"thing": Opaque()})
    with pytest.raises(BadInputError, match="JSON"):
        await utils.add_job("t", {"x": float("nan")})
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (JobSpec(max_attempts=0), "max_attempts 0"),
        (JobSpec(priority=40000), "priority 40000"),
        (JobSpec(job_key=""), "job key"),
        (JobSpec(job_key="k" * 513), "job key"),
        (JobSpec(run_at=datetime(2030, 1, 1)), "timezone-aware"),
        (JobSpec(queue_name="q" * 129), "queue name"),
        (JobSpec(flags=("ok", "")), "flags"),
        (JobSpec(job_key="k", job_key_mode="sometimes"), "replace, preserve_run_at, unsafe_dedupe"),  # type: ignore[arg-type]
    ],
)
async def test_bad_options_are_bad_input(
    utils: wu.WorkerUtils, spec: JobSpec, message: str
) -> None:
    with pytest.raises(BadInputError, match=message):
        await utils.add_job("t", {}, spec)


async def test_bad_identifier_is_bad_input(utils: wu.WorkerUtils) -> None:
    with pytest.raises(BadInputError, match="task identifier"):
        await utils.add_job("", {})


async def test_database_bad_key_mode_error_is_translated(conn: asyncpg.Connection) -> None:
    with pytest.raises(BadInputError, match="unknown job key mode: expected one of replace"):  # noqa: SIM117
        with db.database_errors(SCHEMA):
            await conn.execute(
                "select graphile_worker.add_job('t', job_key => 'k', job_key_mode => 'nope')"
            )


async def test_missing_schema_says_run_migrate(db_url: str) -> None:
    async with await wu.WorkerUtils.connect(db_url, schema='odd "name"') as other:
        with pytest.raises(DatabaseError, match="run `gw migrate`"):
            await other.add_job("t")


async def test_mode_given_as_string(utils: wu.WorkerUtils) -> None:
    spec = JobSpec(job_key="k", job_key_mode="PRESERVE_RUN_AT")  # type: ignore[arg-type]
    job = await utils.add_job("t", {}, spec)
    assert job.key == "k"


# --- job key modes --------------------------------------------------------------------------


async def test_replace_mode_overwrites_everything(utils: wu.WorkerUtils) -> None:
    first_run = datetime.now(UTC) + timedelta(hours=1)
    later_run = first_run + timedelta(hours=5)
    first = await utils.add_job("a", {"v": 1}, JobSpec(job_key="k", run_at=first_run))
    second = await utils.add_job(
        "b", {"v": 2},
        JobSpec(job_key="k", run_at=later_run, queue_name="q", priority=3, max_attempts=4),
    )
    assert second.id == first.id
    assert (second.task_identifier, second.queue_name, second.payload) == ("b", "q", {"v": 2})
    assert (second.run_at, second.priority, second.max_attempts) == (later_run, 3, 4)
    assert second.revision == 1


async def test_preserve_run_at_keeps_run_at(utils: wu.WorkerUtils) -> None:
    first_run = datetime.now(UTC) + timedelta(hours=1)
    spec = JobSpec(job_key="k", job_key_mode=JobKeyMode.PRESERVE_RUN_AT)
    first = await utils.add_job("a", {"v": 1}, dataclasses.replace(spec, run_at=first_run))
    second = await utils.add_job(
        "a", {"v": 2}, dataclasses.replace(spec, run_at=first_run + timedelta(hours=3))
    )
    assert (second.id, second.run_at, second.payload) == (first.id, first_run, {"v": 2})


async def test_preserve_run_at_replaces_run_at_once_the_job_failed(
    utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    first_run = datetime.now(UTC) + timedelta(hours=1)
    new_run = first_run + timedelta(hours=3)
    spec = JobSpec(job_key="k", job_key_mode=JobKeyMode.PRESERVE_RUN_AT)
    first = await utils.add_job("a", {}, dataclasses.replace(spec, run_at=first_run))
    # One failed attempt: unlocked again, attempts 1, an error recorded.
    await conn.execute(
        "update graphile_worker._private_jobs set attempts = 1, last_error = 'boom' "
        "where id = $1", first.id,
    )
    second = await utils.add_job("a", {}, dataclasses.replace(spec, run_at=new_run))
    assert (second.id, second.run_at) == (first.id, new_run)
    assert (second.attempts, second.last_error) == (0, None)


async def test_unsafe_dedupe_leaves_the_existing_job_alone(
    utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    first = await utils.add_job("a", {"v": 1}, JobSpec(job_key="k", queue_name="q1"))
    await lock(conn, first.id)
    dedupe = JobSpec(job_key="k", job_key_mode=JobKeyMode.UNSAFE_DEDUPE, queue_name="q2")
    second = await utils.add_job("b", {"v": 2}, dedupe)
    assert second.id == first.id
    # The job that was there is returned as it is: its task, queue and payload.
    assert (second.task_identifier, second.queue_name, second.payload) == ("a", "q1", {"v": 1})
    assert second.revision == 1 and second.locked_by == "worker-a"
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 1


async def test_unsafe_dedupe_inserts_when_no_job_has_the_key(utils: wu.WorkerUtils) -> None:
    job = await utils.add_job(
        "a", {"v": 1}, JobSpec(job_key="new", job_key_mode=JobKeyMode.UNSAFE_DEDUPE)
    )
    assert (job.task_identifier, job.revision, job.payload) == ("a", 0, {"v": 1})


async def test_batch_job_items_accumulate(utils: wu.WorkerUtils) -> None:
    spec = JobSpec(job_key="digest:7")
    first = await utils.add_batch_job("digest", [{"n": 1}, {"n": 2}], spec)
    second = await utils.add_batch_job("digest", [SendEmail(to="x")], spec)
    assert second.id == first.id
    assert second.payload == [{"n": 1}, {"n": 2}, {"to": "x", "subject": "hi"}]
    assert second.is_batch


async def test_batch_job_rejects_unsafe_dedupe_and_non_lists(utils: wu.WorkerUtils) -> None:
    with pytest.raises(BadInputError, match="unsafe_dedupe"):
        await utils.add_batch_job(
            "d", [1], JobSpec(job_key="k", job_key_mode=JobKeyMode.UNSAFE_DEDUPE)
        )
    with pytest.raises(BadInputError, match="expected a list"):
        await utils.add_batch_job("d", {"n": 1})  # type: ignore[arg-type]


# --- bulk -----------------------------------------------------------------------------------


async def test_add_jobs_mixed_items(utils: wu.WorkerUtils) -> None:
    jobs = await utils.add_jobs([
        ("a", SendEmail(to="x")),
        ("b", {"n": 2}, JobSpec(queue_name="q", priority=2, flags=("f",))),
        RawJobSpec("c", [1, 2], JobSpec(job_key="ck", max_attempts=2)),
    ])
    by_task = {job.task_identifier: job for job in jobs}
    assert set(by_task) == {"a", "b", "c"}
    assert by_task["a"].payload == {"to": "x", "subject": "hi"}
    assert (by_task["b"].queue_name, by_task["b"].priority, by_task["b"].flags) == (
        "q", 2, {"f": True},
    )
    assert (by_task["c"].key, by_task["c"].max_attempts, by_task["c"].payload) == ("ck", 2, [1, 2])
    assert await utils.add_jobs([]) == []


async def test_add_jobs_preserve_run_at(utils: wu.WorkerUtils) -> None:
    run_at = datetime.now(UTC) + timedelta(hours=2)
    (first,) = await utils.add_jobs([("a", {}, JobSpec(job_key="k", run_at=run_at))])
    later = JobSpec(job_key="k", run_at=run_at + timedelta(days=1))
    (kept,) = await utils.add_jobs([("a", {"v": 2}, later)], job_key_preserve_run_at=True)
    assert (kept.id, kept.run_at, kept.payload) == (first.id, run_at, {"v": 2})
    (moved,) = await utils.add_jobs([("a", {"v": 3}, later)])
    assert moved.run_at == later.run_at


async def test_add_jobs_rejects_what_it_cannot_do(utils: wu.WorkerUtils) -> None:
    with pytest.raises(BadInputError, match="unsafe_dedupe"):
        await utils.add_jobs(
            [("a", {}, JobSpec(job_key="k", job_key_mode=JobKeyMode.UNSAFE_DEDUPE))]
        )
    with pytest.raises(BadInputError, match="more than once"):
        await utils.add_jobs([("a", {}, JobSpec(job_key="k")), ("b", {}, JobSpec(job_key="k"))])
    with pytest.raises(BadInputError, match="both replace and preserve_run_at"):
        await utils.add_jobs([
            ("a", {}, JobSpec(job_key="k1", job_key_mode=JobKeyMode.REPLACE)),
            ("a", {}, JobSpec(job_key="k2", job_key_mode=JobKeyMode.PRESERVE_RUN_AT)),
        ])
    with pytest.raises(BadInputError, match="expected"):
        await utils.add_jobs(["not a job"])  # type: ignore[list-item]


async def test_add_raw_jobs(utils: wu.WorkerUtils) -> None:
    jobs = await utils.add_raw_jobs([RawJobSpec("a", {"x": 1}), RawJobSpec("a", {"x": 2})])
    assert sorted(job.payload["x"] for job in jobs) == [1, 2]
    with pytest.raises(BadInputError, match="RawJobSpec"):
        await utils.add_raw_jobs([("a", {})])  # type: ignore[list-item]


# --- locked jobs (spec section 2) -----------------------------------------------------------


async def test_settling_functions_leave_locked_jobs_alone(
    utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    locked = await utils.add_job("t", {})
    free = await utils.add_job("t", {})
    await lock(conn, locked.id)
    future = datetime.now(UTC) + timedelta(days=1)

    rescheduled = await utils.reschedule_jobs([locked.id, free.id], run_at=future, priority=9)
    assert [job.id for job in rescheduled] == [free.id]
    assert (rescheduled[0].run_at, rescheduled[0].priority) == (future, 9)
    failed = await utils.permanently_fail_jobs([locked.id, free.id], "gave up")
    assert [(job.id, job.last_error) for job in failed] == [(free.id, "gave up")]
    assert failed[0].attempts == failed[0].max_attempts
    completed = await utils.complete_jobs([locked.id, free.id])
    assert [job.id for job in completed] == [free.id]

    still = await row(conn, locked.id)
    assert still is not None
    assert (still["locked_by"], still["last_error"], still["priority"]) == ("worker-a", None, 0)
    assert await row(conn, free.id) is None


async def test_locks_older_than_four_hours_are_touched(
    utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    stale = [await utils.add_job("t", {}) for _ in range(3)]
    for job in stale:
        await lock(conn, job.id, age=timedelta(hours=4, minutes=1))
    assert [j.id for j in await utils.reschedule_jobs([stale[0].id], attempts=0)] == [stale[0].id]
    failed = await utils.permanently_fail_jobs([stale[1].id])
    assert [(j.id, j.last_error) for j in failed] == [(stale[1].id, "Manually marked as failed")]
    assert [j.id for j in await utils.complete_jobs([stale[2].id])] == [stale[2].id]
    removable = await utils.add_job("t", {}, JobSpec(job_key="old"))
    await lock(conn, removable.id, age=timedelta(hours=5))
    removed = await utils.remove_job("old")
    assert removed is not None and removed.id == removable.id
    assert await row(conn, removable.id) is None


async def test_remove_job(utils: wu.WorkerUtils, conn: asyncpg.Connection) -> None:
    job = await utils.add_job("t", {}, JobSpec(job_key="gone"))
    removed = await utils.remove_job("gone")
    assert removed is not None and (removed.id, removed.task_identifier) == (job.id, "t")
    assert await row(conn, job.id) is None
    assert await utils.remove_job("gone") is None


async def test_remove_job_detaches_a_locked_job(
    utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    job = await utils.add_job("t", {}, JobSpec(job_key="busy"))
    await lock(conn, job.id)
    detached = await utils.remove_job("busy")
    assert detached is not None and detached.id == job.id
    stored = await row(conn, job.id)
    assert stored is not None
    assert stored["key"] is None and stored["attempts"] == stored["max_attempts"]
    assert stored["locked_by"] == "worker-a"  # it runs to its end, but never again


async def test_add_job_with_the_key_of_a_locked_job_creates_a_new_one(
    utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    old = await utils.add_job("t", {"v": 1}, JobSpec(job_key="k"))
    await lock(conn, old.id)
    new = await utils.add_job("t", {"v": 2}, JobSpec(job_key="k"))
    assert new.id != old.id and (new.key, new.payload, new.attempts) == ("k", {"v": 2}, 0)
    stored = await row(conn, old.id)
    assert stored is not None
    assert stored["key"] is None and stored["attempts"] == stored["max_attempts"]


async def test_add_job_key_race_is_retried(db_url: str, utils: wu.WorkerUtils) -> None:
    """Regression: add_job returned a row of nulls when a worker locked the keyed job
    between the function's detach step and its insert (spec section 8)."""
    old = await utils.add_job("t", {"v": 1}, JobSpec(job_key="race"))
    worker = await asyncpg.connect(db_url)
    try:
        tx = worker.transaction()
        await tx.start()
        await worker.execute(
            "update graphile_worker._private_jobs set locked_at = now(), "
            "locked_by = 'worker-a', attempts = 1 where id = $1", old.id,
        )
        adding = asyncio.create_task(utils.add_job("t", {"v": 2}, JobSpec(job_key="race")))
        await wait_until_blocked(worker, worker.get_server_pid())
        await tx.commit()
        new = await adding
    finally:
        await worker.close()
    assert new.id != old.id and new.payload == {"v": 2}


async def test_add_job_key_race_gives_up_with_a_clear_error(
    db_url: str, utils: wu.WorkerUtils, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wu.WorkerUtils, "key_race_retries", 1)
    old = await utils.add_job("t", {}, JobSpec(job_key="race"))
    worker = await asyncpg.connect(db_url)
    try:
        tx = worker.transaction()
        await tx.start()
        await worker.execute(
            "update graphile_worker._private_jobs set locked_at = now(), "
            "locked_by = 'worker-a', attempts = 1 where id = $1", old.id,
        )
        adding = asyncio.create_task(utils.add_job("t", {}, JobSpec(job_key="race")))
        await wait_until_blocked(worker, worker.get_server_pid())
        await tx.commit()
        with pytest.raises(JobKeyRaceError, match="'race'"):
            await adding
    finally:
        await worker.close()


async def wait_until_blocked(observer: asyncpg.Connection, blocker_pid: int) -> None:
    """Wait (bounded) until some session waits on a lock held by ``blocker_pid``."""
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        blocked = await observer.fetchval(
            "select count(*) from pg_stat_activity where $1 = any(pg_blocking_pids(pid))",
            blocker_pid,
        )
        if blocked:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("add_job never waited for the worker's lock")


async def test_force_unlock_workers(utils: wu.WorkerUtils, conn: asyncpg.Connection) -> None:
    mine = await utils.add_job("t", {}, JobSpec(queue_name="serial"))
    other = await utils.add_job("t", {})
    await lock(conn, mine.id)
    await conn.execute(
        "update graphile_worker._private_jobs set locked_at = now(), locked_by = 'worker-b' "
        "where id = $1", other.id,
    )
    await conn.execute(
        "update graphile_worker._private_job_queues set locked_at = now(), "
        "locked_by = 'worker-a' where queue_name = 'serial'"
    )
    await utils.force_unlock_workers(["worker-a"])
    released = await row(conn, mine.id)
    assert released is not None and released["locked_at"] is None and released["locked_by"] is None
    kept = await row(conn, other.id)
    assert kept is not None and kept["locked_by"] == "worker-b"
    queue = await conn.fetchrow(
        "select locked_by from graphile_worker._private_job_queues where queue_name = 'serial'"
    )
    assert queue is not None and queue["locked_by"] is None


# --- cleanup and migrate --------------------------------------------------------------------


async def test_cleanup(utils: wu.WorkerUtils, conn: asyncpg.Connection) -> None:
    dead = await utils.add_job("dead_task", {}, JobSpec(queue_name="dead_q"))
    await utils.permanently_fail_jobs([dead.id])
    await utils.add_job("live_task", {}, JobSpec(queue_name="live_q"))
    done = await utils.add_job("keep_me", {}, JobSpec(queue_name="locked_q"))
    await utils.complete_jobs([done.id])
    await utils.add_job("orphan_task", {})
    await conn.execute(
        "update graphile_worker._private_job_queues set locked_at = now(), locked_by = 'w' "
        "where queue_name = 'locked_q'"
    )
    # An orphaned task, and a job with no queue (a null that would break `not in`).
    await conn.execute(
        "delete from graphile_worker._private_jobs where task_id = (select id from "
        "graphile_worker._private_tasks where identifier = 'orphan_task')"
    )
    await utils.add_job("live_task", {})

    deleted = await utils.cleanup(
        [
            CleanupTask.DELETE_PERMAFAILED_JOBS,
            "gc_task_identifiers",
            CleanupTask.GC_JOB_QUEUES,
        ],
        task_identifiers_to_keep=["keep_me"],
    )
    assert deleted == {
        CleanupTask.DELETE_PERMAFAILED_JOBS: 1,
        CleanupTask.GC_TASK_IDENTIFIERS: 2,
        CleanupTask.GC_JOB_QUEUES: 1,
    }
    tasks = await conn.fetch("select identifier from graphile_worker._private_tasks")
    assert sorted(r["identifier"] for r in tasks) == ["keep_me", "live_task"]
    queues = await conn.fetch("select queue_name from graphile_worker._private_job_queues")
    assert sorted(r["queue_name"] for r in queues) == ["live_q", "locked_q"]


async def test_cleanup_defaults_and_bad_task(utils: wu.WorkerUtils) -> None:
    assert set(await utils.cleanup()) == {
        CleanupTask.GC_JOB_QUEUES, CleanupTask.GC_TASK_IDENTIFIERS,
    }
    with pytest.raises(BadInputError, match="GC_TASK_IDENTIFIERS, GC_JOB_QUEUES"):
        await utils.cleanup(["VACUUM"])


async def test_migrate_is_idempotent(utils: wu.WorkerUtils, conn: asyncpg.Connection) -> None:
    await utils.migrate()
    assert await conn.fetchval("select max(id) from graphile_worker.migrations") == 20


# --- transactions and notifications ---------------------------------------------------------


async def test_conn_in_a_rolled_back_transaction_leaves_no_job(
    utils: wu.WorkerUtils, db_url: str, conn: asyncpg.Connection
) -> None:
    caller = await asyncpg.connect(db_url)
    try:
        await caller.execute("create table orders (id int)")
        tx = caller.transaction()
        await tx.start()
        await caller.execute("insert into orders values (1)")
        job = await utils.add_job("ship", {"order": 1}, JobSpec(queue_name="ships"), conn=caller)
        assert job.queue_name == "ships"
        # Not visible outside the transaction yet.
        assert await row(conn, job.id) is None
        await tx.rollback()
        assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 0
        assert await conn.fetchval("select count(*) from orders") == 0

        async with caller.transaction():
            await caller.execute("insert into orders values (2)")
            kept = await utils.add_jobs([("ship", {"order": 2})], conn=caller)
        assert await row(conn, kept[0].id) is not None
    finally:
        await caller.close()


async def test_jobs_insert_notification_is_sent(
    utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def listener(_c: object, _pid: int, _channel: str, payload: str) -> None:
        heard.put_nowait(json.loads(payload))

    await conn.add_listener("jobs:insert", listener)
    await utils.add_job("t", {})
    assert (await asyncio.wait_for(heard.get(), 10))["count"] == 1
    await utils.add_jobs([("t", {}), ("t", {})])
    assert (await asyncio.wait_for(heard.get(), 10))["count"] == 2
    await utils.add_job("t", {}, JobSpec(job_key="k"))
    await heard.get()
    await utils.remove_job("k")
    assert (await asyncio.wait_for(heard.get(), 10))["count"] == -1
    await conn.remove_listener("jobs:insert", listener)


# --- reading --------------------------------------------------------------------------------


async def test_get_job_and_list_jobs(utils: wu.WorkerUtils, conn: asyncpg.Connection) -> None:
    ready = await utils.add_job("a", {"r": 1}, JobSpec(queue_name="q"))
    scheduled = await utils.add_job("b", {}, JobSpec(run_at=datetime.now(UTC) + timedelta(days=1)))
    locked = await utils.add_job("a", {})
    failed = await utils.add_job("b", {})
    await lock(conn, locked.id)
    await utils.permanently_fail_jobs([failed.id])

    got = await utils.get_job(ready.id)
    assert (got.task_identifier, got.queue_name, got.payload) == ("a", "q", {"r": 1})
    with pytest.raises(JobNotFoundError, match="no job with id 999999"):
        await utils.get_job(999999)

    async def ids(**filters: Any) -> list[int]:
        return [job.id for job in await utils.list_jobs(**filters)]

    assert await ids() == [ready.id, scheduled.id, locked.id, failed.id]
    assert await ids(state="ready") == [ready.id]
    assert await ids(state=JobState.SCHEDULED) == [scheduled.id]
    assert await ids(state="locked") == [locked.id]
    assert await ids(state="failed") == [failed.id]
    assert await ids(task="b") == [scheduled.id, failed.id]
    assert await ids(queue="q") == [ready.id]
    assert await ids(limit=2) == [ready.id, scheduled.id]
    now = datetime.now(UTC)
    states = [job_state(job, now) for job in await utils.list_jobs()]
    assert states == ["ready", "scheduled", "locked", "failed"]
    with pytest.raises(BadInputError, match="ready, scheduled, locked, failed"):
        await utils.list_jobs(state="done")


async def test_task_handlers_name_their_task(utils: wu.WorkerUtils) -> None:
    class Notify(pydantic.BaseModel):
        IDENTIFIER: ClassVar[str] = "notify"
        user: int

    job = await utils.add_job(Notify(user=3), spec=JobSpec(priority=1))
    assert (job.task_identifier, job.payload, job.priority) == ("notify", {"user": 3}, 1)
    batch = await utils.add_batch_job(Notify, [Notify(user=1), Notify(user=2)])
    assert (batch.task_identifier, batch.payload) == ("notify", [{"user": 1}, {"user": 2}])
    (bulk,) = await utils.add_jobs([(Notify, {"user": 9})])
    assert bulk.task_identifier == "notify"
    with pytest.raises(BadInputError, match="IDENTIFIER"):
        await utils.add_job(object())  # type: ignore[arg-type]


async def test_unsafe_dedupe_of_an_existing_job_sends_no_notification(
    utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    await utils.add_job("t", {}, JobSpec(job_key="k"))
    heard: asyncio.Queue[int] = asyncio.Queue()
    await conn.add_listener(
        "jobs:insert", lambda *args: heard.put_nowait(json.loads(args[3])["count"])
    )
    dedupe = JobSpec(job_key="k", job_key_mode=JobKeyMode.UNSAFE_DEDUPE)
    await utils.add_job("t", {}, dedupe)
    await utils.add_jobs([("t", {}), ("t", {}), ("t", {})])
    # Notifications arrive in order: had the dedupe notified, a count of 1 would come first.
    assert await asyncio.wait_for(heard.get(), 10) == 3


async def test_add_jobs_key_race_retries_the_missing_jobs(
    db_url: str, utils: wu.WorkerUtils, conn: asyncpg.Connection
) -> None:
    """Regression: add_jobs silently returned fewer jobs than asked when a worker locked a
    keyed job between the function's detach step and its insert."""
    (old,) = await utils.add_jobs([("t", {"v": 1}, JobSpec(job_key="race"))])
    worker = await asyncpg.connect(db_url)
    try:
        tx = worker.transaction()
        await tx.start()
        await worker.execute(
            "update graphile_worker._private_jobs set locked_at = now(), "
            "locked_by = 'worker-a', attempts = 1 where id = $1", old.id,
        )
        adding = asyncio.create_task(utils.add_jobs([
            ("t", {"v": 2}, JobSpec(job_key="race")), ("t", {"other": True}),
        ]))
        await wait_until_blocked(worker, worker.get_server_pid())
        await tx.commit()
        jobs = await adding
    finally:
        await worker.close()
    assert sorted(json.dumps(job.payload) for job in jobs) == ['{"other": true}', '{"v": 2}']
    assert old.id not in {job.id for job in jobs}
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 3


async def test_reschedule_with_options_object(utils: wu.WorkerUtils) -> None:
    job = await utils.add_job("t", {})
    at = datetime(2035, 1, 1, tzinfo=UTC)
    options = RescheduleJobOptions(run_at=at, priority=5, max_attempts=2)
    (moved,) = await utils.reschedule_jobs([job.id], options, priority=6)
    assert (moved.run_at, moved.priority, moved.max_attempts) == (at, 6, 2)
    with pytest.raises(BadInputError, match="attempts -1"):
        await utils.reschedule_jobs([job.id], attempts=-1)
    with pytest.raises(BadInputError, match="job id"):
        await utils.reschedule_jobs(["7"], priority=1)  # type: ignore[list-item]


async def test_odd_schema_name(db_url: str, conn: asyncpg.Connection) -> None:
    odd = 'odd "name"'
    async with await wu.WorkerUtils.connect(db_url, schema=odd, max_size=2) as utils:
        await utils.migrate()
        job = await utils.add_job("t", {"x": 1}, JobSpec(queue_name="q", job_key="k"))
        (bulk,) = await utils.add_jobs([("u", {})])
        assert [j.id for j in await utils.list_jobs(state="ready")] == [job.id, bulk.id]
        assert (await utils.get_job(job.id)).queue_name == "q"
        assert [j.id for j in await utils.reschedule_jobs([job.id], priority=2)] == [job.id]
        assert [j.id for j in await utils.permanently_fail_jobs([bulk.id])] == [bulk.id]
        assert (await utils.remove_job("k")) is not None
        await utils.force_unlock_workers(["nobody"])
        deleted = await utils.cleanup(list(CleanupTask))
        assert deleted[CleanupTask.DELETE_PERMAFAILED_JOBS] == 1
    assert await conn.fetchval('select count(*) from "odd ""name"""._private_tasks') == 0
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 0
