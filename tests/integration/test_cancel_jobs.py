"""Cancelling jobs (issue 17 item 4) with real workers and real PostgreSQL: a job not
running is failed for good as ``cancelled``; a running one is aborted by the gw worker
holding it (reason "cancelled") and failed for good when the task returns or the abort
window ends; a job held by a worker gw cannot reach is only marked; a worker that missed
the notification still learns of the request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import (
    CancelOutcome,
    JobCancellation,
    SweepStaleWorkersOptions,
    SyncWorkerUtils,
    Worker,
    WorkerContext,
    WorkerUtils,
    hooks,
)
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.worker import store
from tests.helpers import recovery as recovery_helpers
from tests.helpers.waiting import wait_until
from tests.helpers.worker import S, add_job, make_options


async def _row(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select attempts, max_attempts, last_error, locked_by from {S}._private_jobs"
        " where id = $1", job_id,
    )


async def _requests(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch(f"select job_id from {S}._gw_cancel_requests order by job_id")
    return [row["job_id"] for row in rows]


@contextlib.asynccontextmanager
async def _utils(db_url: str) -> AsyncIterator[WorkerUtils]:
    async with await WorkerUtils.connect(db_url, max_size=2) as utils:
        yield utils


@contextlib.asynccontextmanager
async def _running(worker: Worker) -> AsyncIterator[Worker]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.request_shutdown("test over")
        await asyncio.wait_for(task, 30)


async def _registered_and_locked(conn: asyncpg.Connection, worker: Worker, job_id: int) -> None:
    async def ready() -> bool:
        row = await conn.fetchrow(
            f"select (select locked_by from {S}._private_jobs where id = $1) as locked_by,"
            f" exists (select 1 from {S}._gw_workers where id = $2) as registered",
            job_id, worker.worker_id,
        )
        return row is not None and row["locked_by"] == worker.worker_id and row["registered"]

    await wait_until(ready)


# --- jobs that are not running ------------------------------------------------------------------


async def test_a_waiting_job_is_failed_for_good_and_the_others_are_reported(
    db_url: str, conn: asyncpg.Connection
) -> None:
    waiting = await add_job(conn, "t", {"n": 1})
    failed = await add_job(conn, "t", None, max_attempts=1)
    await conn.execute(
        f"update {S}._private_jobs set attempts = 1, last_error = 'boom' where id = $1", failed
    )
    async with _utils(db_url) as utils:
        result = await utils.cancel_jobs([waiting, failed, 999_999, waiting])
    assert result == [
        JobCancellation(waiting, CancelOutcome.CANCELLED),
        JobCancellation(failed, CancelOutcome.ALREADY_FAILED),
        JobCancellation(999_999, CancelOutcome.NOT_FOUND),
    ]
    row = await _row(conn, waiting)
    assert row is not None and row["last_error"] == "cancelled"
    assert row["attempts"] == row["max_attempts"]  # never fetched again
    kept = await _row(conn, failed)
    assert kept is not None and kept["last_error"] == "boom"
    assert await _requests(conn) == []  # nothing running: nothing to ask


async def test_bad_ids_are_refused_and_no_ids_is_nothing(db_url: str) -> None:
    async with _utils(db_url) as utils:
        with pytest.raises(BadInputError, match="invalid job id 'x': expected an integer"):
            await utils.cancel_jobs(["x"])  # type: ignore[list-item]
        assert await utils.cancel_jobs([]) == []


async def test_the_sync_twin_cancels_on_a_callers_psycopg_connection(
    db_url: str, conn: asyncpg.Connection
) -> None:
    psycopg = pytest.importorskip("psycopg")
    job_id = await add_job(conn, "t", None)

    def cancel() -> list[JobCancellation]:
        with psycopg.connect(db_url) as pconn:
            return SyncWorkerUtils(schema=S).cancel_jobs([job_id], conn=pconn)

    result = await asyncio.to_thread(cancel)
    assert result == [JobCancellation(job_id, CancelOutcome.CANCELLED)]
    row = await _row(conn, job_id)
    assert row is not None and row["last_error"] == "cancelled"


# --- jobs a gw worker runs ----------------------------------------------------------------------


async def test_a_running_job_is_aborted_and_failed_for_good_as_cancelled(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "polite", None, max_attempts=5)
    seen: list[str] = []
    permanent: list[tuple[int, str]] = []

    async def polite(payload: Any, ctx: WorkerContext) -> str:
        seen.append(await ctx.abort_signal.wait())
        return "returned normally"  # whatever it returns, it was cancelled

    options = make_options(db_url).define_job(polite, "polite")
    options.hooks.on(
        hooks.JobPermanentlyFail, lambda c: permanent.append((c.job.id, c.error))
    )
    worker = await options.init()
    async with _running(worker), _utils(db_url) as utils:
        await _registered_and_locked(conn, worker, job_id)
        result = await utils.cancel_jobs([job_id])
        assert result == [JobCancellation(job_id, CancelOutcome.REQUESTED, worker.worker_id)]

        async def failed_for_good() -> bool:
            row = await _row(conn, job_id)
            return row is not None and row["locked_by"] is None

        await wait_until(failed_for_good)
    assert seen == ["cancelled"]
    row = await _row(conn, job_id)
    assert row is not None and row["last_error"] == "cancelled"
    assert row["attempts"] == row["max_attempts"] == 5
    assert permanent == [(job_id, "cancelled")]
    assert await _requests(conn) == []


async def test_a_task_ignoring_the_signal_is_stopped_when_the_abort_window_ends(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "stubborn", None)
    stopped: list[str | None] = []

    async def stubborn(payload: Any, ctx: WorkerContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.append(ctx.abort_signal.reason)
            raise

    worker = await make_options(db_url, shutdown_abort_timeout=0.3).define_job(
        stubborn, "stubborn"
    ).init()
    async with _running(worker), _utils(db_url) as utils:
        await _registered_and_locked(conn, worker, job_id)
        await utils.cancel_jobs([job_id])

        async def unlocked() -> bool:
            row = await _row(conn, job_id)
            return row is not None and row["locked_by"] is None

        await wait_until(unlocked)
    assert stopped == ["cancelled"]
    row = await _row(conn, job_id)
    assert row is not None and row["last_error"] == "cancelled"
    assert row["attempts"] == row["max_attempts"]


async def test_a_worker_that_missed_the_notification_learns_on_reconnecting(
    db_url: str, conn: asyncpg.Connection, pg_admin_url: str
) -> None:
    """The listen connection is cut and cannot come back (the database refuses new
    connections) while the cancel is asked for, on a connection opened before; once it is
    back, the worker looks for requests and aborts the job. The periodic look is far off
    (poll_interval 30s: every 150s), so only the reconnection can find it in time."""
    job_id = await add_job(conn, "polite", None)
    seen: list[str] = []

    async def polite(payload: Any, ctx: WorkerContext) -> None:
        seen.append(await ctx.abort_signal.wait())

    lost = asyncio.Event()
    options = make_options(db_url, poll_interval=30.0).define_job(polite, "polite")
    options.hooks.on(hooks.ListenConnectionLost, lambda c: lost.set())
    worker = await options.init()
    database = await conn.fetchval("select current_database()")
    admin = await asyncpg.connect(pg_admin_url)
    try:
        async with _running(worker), _utils(db_url) as utils:
            await _registered_and_locked(conn, worker, job_id)
            await admin.execute(f'alter database "{database}" allow_connections false')
            await conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where datname = current_database() and query ilike 'listen %'"
                " and pid <> pg_backend_pid()"
            )
            await asyncio.wait_for(lost.wait(), 20)
            result = await utils.cancel_jobs([job_id])
            assert result[0].outcome is CancelOutcome.REQUESTED
            assert seen == []  # nobody told the worker
            await admin.execute(f'alter database "{database}" allow_connections true')

            async def failed() -> bool:
                row = await _row(conn, job_id)
                return row is not None and row["last_error"] == "cancelled"

            await wait_until(failed)
    finally:
        await admin.execute(f'alter database "{database}" allow_connections true')
        await admin.close()
    assert seen == ["cancelled"]


async def test_shutdown_fails_a_cancelled_job_instead_of_handing_it_back(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """The request was recorded but never heard (as if the notification was lost) and the
    periodic look is far off: the worker looks once more before handing running jobs back
    at shutdown, and fails the job instead."""
    job_id = await add_job(conn, "polite", None)
    seen: list[str] = []

    async def polite(payload: Any, ctx: WorkerContext) -> None:
        seen.append(await ctx.abort_signal.wait())

    worker = await make_options(
        db_url, poll_interval=30.0, shutdown_grace_period=0.1
    ).define_job(polite, "polite").init()
    async with _running(worker):
        await _registered_and_locked(conn, worker, job_id)
        await conn.execute(
            f"insert into {S}._gw_cancel_requests (job_id, locked_by) values ($1, $2)",
            job_id, worker.worker_id,
        )
    assert seen == ["cancelled"]
    row = await _row(conn, job_id)
    assert row is not None and row["last_error"] == "cancelled"
    assert row["attempts"] == row["max_attempts"] and row["locked_by"] is None
    assert await _requests(conn) == []


async def test_a_cancelled_job_that_was_handed_back_is_failed_by_the_next_look(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """A request whose worker let the job go before acting on it (it missed the request
    and stopped) is finished by whichever gw worker looks next: the job is failed, not
    run again."""
    job_id = await add_job(conn, "t", None)
    await conn.execute(
        f"update {S}._private_jobs set locked_by = 'gone', locked_at = now(),"
        f" attempts = 1 where id = $1", job_id,
    )
    await conn.execute(
        f"insert into {S}._gw_workers (id, host, pid, version, heartbeat_interval)"
        " values ('gone', 'h', 1, 'x', interval '10 seconds')"
    )
    async with _utils(db_url) as utils:
        assert (await utils.cancel_jobs([job_id]))[0] == JobCancellation(
            job_id, CancelOutcome.REQUESTED, "gone"
        )
    # 'gone' hands it back without acting on the request, as a stopping worker does
    # (RETURN_JOBS: an attempt given back, run_at pushed by the retry delay).
    await conn.execute(
        f"update {S}._private_jobs set locked_by = null, locked_at = null, attempts = 0,"
        f" run_at = now() + interval '1 minute' where id = $1", job_id,
    )
    ran: list[int] = []

    async def t(payload: Any, ctx: WorkerContext) -> None:
        ran.append(ctx.job_id)

    worker = await make_options(db_url).define_job(t, "t").init()
    async with _running(worker):
        await wait_until(lambda: _requests_empty(conn))
    row = await _row(conn, job_id)
    assert row is not None and row["last_error"] == "cancelled"
    assert ran == []


async def _requests_empty(conn: asyncpg.Connection) -> bool:
    return await _requests(conn) == []


# --- jobs gw cannot interrupt -------------------------------------------------------------------


async def test_a_job_held_by_an_unregistered_worker_is_only_marked(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """As a reference Node.js worker holds it: it runs on, is never run again, and once
    that worker lets it go a gw worker's look records it as cancelled."""
    job_id = await add_job(conn, "t", None, max_attempts=5)
    await conn.execute(
        f"update {S}._private_jobs set locked_by = 'node-worker', locked_at = now(),"
        f" attempts = 1 where id = $1", job_id,
    )
    async with _utils(db_url) as utils:
        result = await utils.cancel_jobs([job_id])
    assert result == [JobCancellation(job_id, CancelOutcome.MARKED, "node-worker")]
    row = await _row(conn, job_id)
    assert row is not None and row["locked_by"] == "node-worker"  # not interrupted
    assert row["attempts"] == row["max_attempts"]  # never run again
    # The Node worker fails it as its fail_job does (attempts untouched, lock cleared).
    await conn.execute(
        f"update {S}._private_jobs set last_error = 'node says no', locked_by = null,"
        f" locked_at = null where id = $1", job_id,
    )
    worker = await make_options(db_url).define_job(lambda p: None, "t").init()
    async with _running(worker):
        await wait_until(lambda: _requests_empty(conn))
    row = await _row(conn, job_id)
    assert row is not None and row["last_error"] == "cancelled"
    assert row["attempts"] == row["max_attempts"]


async def test_cancel_inside_the_callers_transaction_waits_for_commit(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "t", None)
    other = await asyncpg.connect(db_url)
    try:
        async with other.transaction():
            await WorkerUtils(schema=S).cancel_jobs([job_id], conn=other)
            row = await _row(conn, job_id)
            assert row is not None and row["last_error"] is None
        row = await _row(conn, job_id)
        assert row is not None and row["last_error"] == "cancelled"
    finally:
        await other.close()


async def test_the_sweep_fails_a_dead_workers_cancelled_job_instead_of_recovering_it(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """Its worker died before acting on the request: the sweep, in its own transaction,
    fails the job as cancelled, so no worker can fetch it in between."""
    await recovery_helpers.register(conn, "dead-worker")
    cancelled = await recovery_helpers.add_locked_job(conn, "dead-worker")
    other = await recovery_helpers.add_locked_job(conn, "dead-worker")
    async with _utils(db_url) as utils:
        result = await utils.cancel_jobs([cancelled])
        assert result[0].outcome is CancelOutcome.REQUESTED
        await recovery_helpers.age_heartbeat(conn, "dead-worker", "1 hour")
        swept = await utils.sweep_stale_workers(SweepStaleWorkersOptions(threshold=60.0))
    assert sorted(swept.recovered_job_ids) == sorted([cancelled, other])
    row = await recovery_helpers.job_row(conn, cancelled)
    assert row["last_error"] == "cancelled" and row["attempts"] == row["max_attempts"]
    assert row["locked_by"] is None
    recovered = await recovery_helpers.job_row(conn, other)
    assert recovered["attempts"] < recovered["max_attempts"]  # the other one runs again
    assert await _requests(conn) == []


async def test_a_job_locked_by_the_worker_but_not_running_there_is_failed(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """Its outcome's write did not apply (as when a failure guarded by the attempt number
    lands after the job was marked): nothing else would unlock it for 4 hours."""
    worker = await make_options(db_url).define_job(lambda p: None, "t").init()
    async with _running(worker), _utils(db_url) as utils:
        async def registered() -> bool:
            return bool(await conn.fetchval(
                f"select exists (select 1 from {S}._gw_workers where id = $1)",
                worker.worker_id,
            ))

        await wait_until(registered)
        job_id = await add_job(conn, "other_task", None)
        await conn.execute(
            f"update {S}._private_jobs set locked_by = $2, locked_at = now(), attempts = 1"
            " where id = $1", job_id, worker.worker_id,
        )
        result = await utils.cancel_jobs([job_id])
        assert result[0].outcome is CancelOutcome.REQUESTED

        async def failed() -> bool:
            row = await _row(conn, job_id)
            return row is not None and row["locked_by"] is None

        await wait_until(failed)
    row = await _row(conn, job_id)
    assert row is not None and row["last_error"] == "cancelled"
    assert row["attempts"] == row["max_attempts"]
    assert await _requests(conn) == []


async def test_with_job_history_on_a_cancelled_running_job_is_recorded_as_failed(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "polite", None, queue_name="exports")

    async def polite(payload: Any, ctx: WorkerContext) -> None:
        await ctx.abort_signal.wait()

    worker = await make_options(db_url, history_retention=86_400.0).define_job(
        polite, "polite"
    ).init()
    async with _running(worker), _utils(db_url) as utils:
        await _registered_and_locked(conn, worker, job_id)
        await utils.cancel_jobs([job_id])

        async def recorded() -> bool:
            return bool(await conn.fetchval(
                f"select count(*) from {S}._gw_job_history_entries where job_id = $1", job_id
            ))

        await wait_until(recorded)
    row = await conn.fetchrow(
        f"select * from {S}._gw_job_history_entries where job_id = $1", job_id
    )
    assert row is not None
    assert (row["outcome"], row["last_error"], row["worker_id"]) == (
        "failed", "cancelled", worker.worker_id
    )
    assert (row["task_identifier"], row["queue_name"]) == ("polite", "exports")
    assert row["started_at"] is not None and row["attempts"] == row["max_attempts"]
    queue_locked = await conn.fetchval(
        f"select locked_by from {S}._private_job_queues where queue_name = 'exports'"
    )
    assert queue_locked is None  # its named queue was unlocked


# --- a request whose worker let the job go without acting on it -------------------------------


async def test_a_job_released_with_a_pending_request_is_failed_when_fetched_not_run(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's worker never acted on the request and its lock was released by hand; the
    next gw worker to fetch it fails it as cancelled at once instead of running it (its
    cancel watch knew the table had a request; its next look is 150s away)."""
    job_id = await add_job(conn, "t", None, max_attempts=3)
    await conn.execute(
        f"update {S}._private_jobs set locked_by = 'silent', locked_at = now(), attempts = 1"
        " where id = $1", job_id,
    )
    await conn.execute(
        f"insert into {S}._gw_cancel_requests (job_id, locked_by) values ($1, 'silent')",
        job_id,
    )
    ran: list[int] = []
    looked = asyncio.Event()
    real_look = store.cancel_requests

    async def look(*args: Any, **kwargs: Any) -> Any:
        found = await real_look(*args, **kwargs)
        looked.set()
        return found

    monkeypatch.setattr(store, "cancel_requests", look)

    async def t(payload: Any, ctx: WorkerContext) -> None:
        ran.append(ctx.job_id)

    worker = await make_options(db_url, poll_interval=30.0).define_job(t, "t").init()
    async with _running(worker):
        await asyncio.wait_for(looked.wait(), 20)  # it saw the request (the job still held)
        await conn.execute(
            f"update {S}._private_jobs set locked_by = null, locked_at = null, attempts = 0"
            " where id = $1", job_id,
        )  # released by hand (as `gw workers unlock` does), runnable now
        trigger = await add_job(conn, "t", None)  # its notification makes the worker fetch
        await wait_until(lambda: _ran(ran, trigger))
        await wait_until(lambda: _requests_empty(conn))
    assert ran == [trigger]
    row = await _row(conn, job_id)
    assert row is not None and row["last_error"] == "cancelled"
    assert (row["attempts"], row["locked_by"]) == (3, None)


async def _ran(ran: list[int], job_id: int) -> bool:
    return job_id in ran


async def _started(runs: list[str]) -> bool:
    return bool(runs)


async def test_a_worker_handing_a_job_back_at_shutdown_applies_its_cancel_request(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker stops before it acts on the request (it never heard of it, and its last
    look before stopping found nothing): the hand-back fails the job as cancelled instead
    of letting it go, and another worker never runs it."""
    job_id = await add_job(conn, "polite", None, max_attempts=3)
    runs: list[str] = []

    async def polite(payload: Any, ctx: WorkerContext) -> None:
        runs.append(ctx.worker_id)
        await ctx.abort_signal.wait()

    first = await make_options(
        db_url, poll_interval=30.0, shutdown_grace_period=0.0, shutdown_abort_timeout=0.1
    ).define_job(polite, "polite").init()
    async with _running(first):
        await _registered_and_locked(conn, first, job_id)
        await wait_until(lambda: _started(runs))  # locked is not yet running under load
        assert first._cancels is not None

        async def looked_too_early() -> None:
            return None

        monkeypatch.setattr(first._cancels, "final_check", looked_too_early)
        await conn.execute(
            f"insert into {S}._gw_cancel_requests (job_id, locked_by) values ($1, $2)",
            job_id, first.worker_id,
        )
    row = await _row(conn, job_id)
    assert row is not None and row["last_error"] == "cancelled"
    assert (row["attempts"], row["locked_by"]) == (3, None)
    assert await _requests(conn) == []

    second = await make_options(db_url).define_job(polite, "polite").init()
    await asyncio.wait_for(second.run_once(), 30)
    assert runs == [first.worker_id]


async def test_fetches_make_no_cancel_check_while_no_request_exists(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default path stays one statement per fetch: once the cancel watch has looked and
    found the table empty, fetched jobs are not checked against it."""
    real_among = store.requested_among
    checks: list[list[int]] = []

    async def among(conn: Any, schema: str, job_ids: Any) -> list[int]:
        checks.append(list(job_ids))
        return await real_among(conn, schema, job_ids)

    monkeypatch.setattr(store, "requested_among", among)
    ran: list[int] = []

    async def t(payload: Any, ctx: WorkerContext) -> None:
        ran.append(ctx.job_id)

    worker = await make_options(db_url, poll_interval=30.0).define_job(t, "t").init()
    async with _running(worker):
        await wait_until(lambda: _nothing_pending(worker))  # its first look: no requests
        ids = [await add_job(conn, "t", {"n": n}) for n in range(3)]
        await wait_until(lambda: _ran_all(ran, ids))
    assert checks == []


async def _ran_all(ran: list[int], job_ids: list[int]) -> bool:
    return set(job_ids) <= set(ran)


async def _nothing_pending(worker: Worker) -> bool:
    return worker._cancels is not None and not worker._cancels.pending
