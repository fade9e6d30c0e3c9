"""Every public method of ``WorkerUtils`` and ``SyncWorkerUtils`` takes ``conn=`` with
every kind of connection an application holds, and runs inside the caller's transaction:
what it did is there for the caller before the commit, invisible to others, and gone
after a rollback. A method added to either API without being listed here (that is,
without driver support shown) fails ``test_every_public_method_is_exercised``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
import pytest

from graphile_worker_cli import job, migrate, sync
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.job_input import CANCELLED_ERROR, CancelOutcome
from graphile_worker_cli.recovery import SweepStaleWorkersOptions
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.connection_kinds import SCHEMA, Opener, Txn, django_alias
from tests.helpers.database import count
from tests.helpers.recovery import add_locked_job, age_heartbeat, register

S = SCHEMA

# Methods that are not statements on a connection: making and closing the object.
NOT_JOBS_METHODS = {"connect", "close"}


Check = Callable[[Txn, asyncpg.Connection, dict[str, Any]], Awaitable[None]]
"""Calls one method through the transaction and checks what it returned and did."""


async def _add_job(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    added = await txn.call("add_job", "send", {"to": "a"}, job.JobSpec(job_key="k-send"))
    assert (added.task_identifier, added.key) == ("send", "k-send")
    seen["send"] = added.id


async def _add_raw_job(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    added = await txn.call("add_raw_job", "raw", {"n": 1})
    assert added.payload == {"n": 1}
    seen["raw"] = added.id


async def _add_batch_job(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    added = await txn.call("add_batch_job", "batch", [1, 2], job.JobSpec(job_key="k-batch"))
    again = await txn.call("add_batch_job", "batch", [3], job.JobSpec(job_key="k-batch"))
    assert again.id == added.id and again.payload == [1, 2, 3]
    seen["batch"] = added.id


async def _add_jobs(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    added = await txn.call("add_jobs", [("bulk", {"i": 1}), ("bulk", {"i": 2})])
    assert [item.payload for item in added] == [{"i": 1}, {"i": 2}]


async def _add_raw_jobs(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    added = await txn.call("add_raw_jobs", [job.RawJobSpec("bulk_raw", {"r": True})])
    assert [item.task_identifier for item in added] == ["bulk_raw"]
    seen["bulk_raw"] = added[0].id


async def _get_job(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    found = await txn.call("get_job", seen["send"])
    assert found.payload == {"to": "a"}
    assert (await txn.call("get_job", key="k-send")).id == seen["send"]


async def _list_jobs(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    listed = await txn.call("list_jobs", task="bulk")
    assert [item.payload for item in listed] == [{"i": 1}, {"i": 2}]


async def _reschedule_jobs(
    txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]
) -> None:
    changed = await txn.call("reschedule_jobs", [seen["send"]], priority=7)
    assert [item.priority for item in changed] == [7]


async def _complete_jobs(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    done = await txn.call("complete_jobs", [seen["raw"]])
    assert [item.id for item in done] == [seen["raw"]]


async def _permanently_fail_jobs(
    txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]
) -> None:
    failed = await txn.call("permanently_fail_jobs", [seen["batch"]], "no more")
    assert [item.last_error for item in failed] == ["no more"]


async def _remove_job(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    removed = await txn.call("remove_job", "k-send")
    assert removed is not None and removed.id == seen["send"]


async def _force_unlock_workers(
    txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]
) -> None:
    await txn.call("force_unlock_workers", ["worker-forced"])
    row = await _locked_by_in_txn(txn, seen["forced"])
    assert row is None


async def _cleanup(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    deleted = await txn.call("cleanup", ["DELETE_PERMAFAILED_JOBS"])
    assert list(deleted.values()) == [1]  # the batch job failed above


async def _cancel_jobs(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    (cancelled,) = await txn.call("cancel_jobs", [seen["bulk_raw"]])
    assert (cancelled.job_id, cancelled.outcome) == (seen["bulk_raw"], CancelOutcome.CANCELLED)
    assert (await txn.call("get_job", seen["bulk_raw"])).last_error == CANCELLED_ERROR
    # The dead registered worker's job is running as far as anyone knows: a request.
    results = await txn.call("cancel_jobs", [seen["dead"], 987_654])
    assert [(r.job_id, r.outcome.value, r.worker_id) for r in results] == [
        (seen["dead"], "requested", "worker-dead"), (987_654, "not_found", None)
    ]


async def _list_history(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    history = await txn.call("list_history", task="finished_before")
    assert [(entry.job_id, entry.task_identifier) for entry in history] == [
        (seen["history"], "finished_before")
    ]


async def _list_active_workers(
    txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]
) -> None:
    workers = await txn.call("list_active_workers")
    assert {(w.id, w.stale) for w in workers} == {("worker-dead", True)}


async def _sweep_stale_workers(
    txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]
) -> None:
    dry = await txn.call("sweep_stale_workers", SweepStaleWorkersOptions(dry_run=True))
    assert dry.worker_ids == ["worker-dead"] and dry.dry_run
    assert [w.id for w in await txn.call("list_active_workers")] == ["worker-dead"]
    swept = await txn.call("sweep_stale_workers")
    assert swept.recovered_job_ids == [seen["dead"]]
    cancelled = await txn.call("get_job", seen["dead"])  # requested above: failed, not rerun
    assert (cancelled.last_error, cancelled.attempts) == ("cancelled", cancelled.max_attempts)
    assert await txn.call("list_active_workers") == []


async def _migrate(txn: Txn, observer: asyncpg.Connection, seen: dict[str, Any]) -> None:
    await txn.call("migrate")  # already migrated: nothing to do, and no error


CALLS: dict[str, Check] = {
    "add_job": _add_job,
    "add_raw_job": _add_raw_job,
    "add_batch_job": _add_batch_job,
    "add_jobs": _add_jobs,
    "add_raw_jobs": _add_raw_jobs,
    "get_job": _get_job,
    "list_jobs": _list_jobs,
    "reschedule_jobs": _reschedule_jobs,
    "complete_jobs": _complete_jobs,
    "permanently_fail_jobs": _permanently_fail_jobs,
    "remove_job": _remove_job,
    "force_unlock_workers": _force_unlock_workers,
    "cleanup": _cleanup,
    "cancel_jobs": _cancel_jobs,
    "list_history": _list_history,
    "list_active_workers": _list_active_workers,
    "sweep_stale_workers": _sweep_stale_workers,
    "migrate": _migrate,
}
"""In the order they run: later checks use what earlier ones added."""


def _public_methods(api: type) -> set[str]:
    return {
        name for name, member in vars(api).items()
        if not name.startswith("_") and callable(member) and name not in NOT_JOBS_METHODS
    }


def test_every_public_method_is_exercised() -> None:
    for api in (WorkerUtils, sync.SyncWorkerUtils):
        missing = _public_methods(api) - CALLS.keys()
        assert not missing, (
            f"{api.__name__} methods {sorted(missing)} are not called with every kind of "
            "connection: add them to CALLS"
        )
        for name in _public_methods(api):
            assert "conn" in inspect.signature(getattr(api, name)).parameters, name


async def _locked_by_in_txn(txn: Txn, job_id: int) -> str | None:
    found = await txn.call("get_job", job_id)
    locked_by: str | None = found.locked_by
    return locked_by


async def test_every_method_runs_in_the_callers_transaction(
    kind: Opener, db_url: str, observer: asyncpg.Connection
) -> None:
    # Committed beforehand by someone else: a dead registered worker holding a job, and a
    # job locked by a worker that is to be force-unlocked.
    await register(observer, "worker-dead")
    await age_heartbeat(observer, "worker-dead", "1 hour")
    seen: dict[str, Any] = {
        "dead": await add_locked_job(observer, "worker-dead"),
        "forced": await add_locked_job(observer, "worker-forced"),
        "history": 9001,
    }
    await observer.execute(
        f"insert into {S}._gw_job_history (worker_id, outcome, job_ids, task_identifiers,"
        " queue_names, keys, attempts, max_attempts, created_at, run_at, started_at,"
        " last_errors) values ('w', 'completed', '{9001}', '{finished_before}', '{NULL}',"
        " '{NULL}', '{1}', '{25}', array[now()], array[now()], array[now()], '{NULL}')"
    )
    jobs_before = await count(observer, f"select count(*) from {S}._private_jobs")
    async with kind(db_url) as txn:
        for check in CALLS.values():
            await check(txn, observer, seen)
        # Nothing of it is visible outside the transaction before the commit...
        assert await count(observer, f"select count(*) from {S}._private_jobs") == jobs_before
        assert await count(observer, f"select count(*) from {S}._gw_workers") == 1
        await txn.rollback()
    # ...and a rollback leaves everything as it was.
    assert await count(observer, f"select count(*) from {S}._private_jobs") == jobs_before
    assert await count(observer, f"select count(*) from {S}._gw_workers") == 1
    locked = await observer.fetch(f"select locked_by from {S}._private_jobs order by id")
    assert [row["locked_by"] for row in locked] == ["worker-dead", "worker-forced"]


FRESH = "app_jobs"


async def test_migrate_runs_in_the_callers_transaction_under_the_migration_lock(
    kind: Opener, db_url: str, observer: asyncpg.Connection
) -> None:
    async with kind(db_url) as txn:
        txn.gw = type(txn.gw)(schema=FRESH)
        await txn.call("migrate")
        # The lock gw's migrators take is held by the caller's session until it ends.
        holders = await observer.fetchval(
            "select count(*) from pg_locks where locktype = 'advisory' and granted"
            " and (classid::bigint << 32 | objid::bigint) = $1",
            migrate.advisory_lock_key(FRESH),
        )
        assert holders == 1
        assert await _schema_exists(observer) is False
        await txn.rollback()
    assert await _schema_exists(observer) is False
    async with kind(db_url) as txn:
        txn.gw = type(txn.gw)(schema=FRESH)
        await txn.call("migrate")
        added = await txn.call("add_job", "after_migrate")
        await txn.commit()
    await migrate.check_schema(observer, FRESH)  # complete: the reference's steps and gw's
    status = await migrate.migration_status(observer, FRESH)
    assert (status.latest, status.gw_latest) == (
        migrate.LATEST_MIGRATION, max(s.number for s in migrate.gw_migrations())
    )
    assert await count(observer, f"select count(*) from {FRESH}._private_jobs") == 1
    assert added.task_identifier == "after_migrate"


async def _schema_exists(observer: asyncpg.Connection) -> bool:
    found: bool = await observer.fetchval(
        "select exists(select 1 from pg_namespace where nspname = $1)", FRESH
    )
    return found


def test_an_autocommitting_connection_is_refused_for_a_migration(db_url: str) -> None:
    gw = sync.SyncWorkerUtils(schema=FRESH)
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(BadInputError, match=r"migrate\(conn=...\) runs inside your "
                           r"transaction, but the psycopg Connection has none open"):
            gw.migrate(conn=conn)
        with pytest.raises(BadInputError, match="sweep_stale_workers"):
            gw.sweep_stale_workers(conn=conn)
        # Inside an explicit transaction block the same connection is fine.
        with conn.transaction():
            gw.migrate(conn=conn)
            assert conn.execute("select to_regclass('app_jobs.jobs')").fetchone() != (None,)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select to_regclass('app_jobs.jobs')").fetchone() != (None,)


async def test_an_asyncpg_connection_outside_a_transaction_migrates_step_by_step(
    db_url: str, observer: asyncpg.Connection
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await WorkerUtils(schema=FRESH).migrate(conn=conn)
    finally:
        await conn.close()
    await migrate.check_schema(observer, FRESH)


def test_a_django_connection_outside_atomic_is_refused_for_a_migration(db_url: str) -> None:
    from django.db import connections, transaction

    alias = django_alias(db_url)
    conn = connections[alias]
    gw = sync.SyncWorkerUtils(schema=FRESH)
    try:
        with pytest.raises(BadInputError, match="but the Django connection has none open"):
            gw.migrate(conn=conn)
        with transaction.atomic(using=alias):
            gw.migrate(conn=conn)
        assert gw.list_jobs(conn=conn) == []
    finally:
        conn.close()
