"""The worker's reads and writes of the jobs tables: register tasks, fetch, settle, hand
back, reset stale locks (the statements are in ``queries.worker``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from graphile_worker_cli import job
from graphile_worker_cli.queries import history as history_queries
from graphile_worker_cli.queries import worker as queries


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt to settle: the job, its error, and (batch jobs) the items to retry."""

    job_id: int
    message: str
    payload_json: str | None = None
    """The job's new payload as JSON text (``payloads.replacement_to_json``); None keeps it."""
    attempts: int | None = None
    """The attempt that failed: the write only applies while the row still has it."""
    run_at: datetime | None = None
    """When to run next (the task said ``retry_at``); None: ``delay`` or the backoff."""
    delay: float | None = None
    """Seconds from now to the next run (``retry_in`` or the task's backoff)."""
    permanent: bool = False
    """No attempt left: the job is failed for good."""

    @property
    def scheduled(self) -> bool:
        """Whether the default backoff does not apply."""
        return self.run_at is not None or self.delay is not None or self.permanent


async def ensure_tasks(
    conn: asyncpg.Connection, schema: str, identifiers: Sequence[str]
) -> dict[str, int]:
    """Make sure every identifier has a ``_private_tasks`` row; return identifier -> id."""
    names = list(identifiers)
    await conn.execute(queries.ENSURE_TASKS.sql(schema), names)
    rows = await conn.fetch(queries.TASK_IDS.sql(schema), names)
    return {row["identifier"]: row["id"] for row in rows}


async def fetch_jobs(
    conn: asyncpg.Connection,
    schema: str,
    worker_id: str,
    task_ids: Sequence[int],
    batch_size: int,
    forbidden_flags: Sequence[str] = (),
    task_identifiers: dict[int, str] | None = None,
) -> list[job.Job]:
    """Lock up to ``batch_size`` runnable jobs (at most one per named queue) for this worker."""
    if forbidden_flags:
        rows = await conn.fetch(
            queries.FETCH_JOBS_WITHOUT_FLAGS.sql(schema), worker_id, list(task_ids),
            batch_size, list(forbidden_flags),
        )
    else:
        rows = await conn.fetch(
            queries.FETCH_JOBS.sql(schema), worker_id, list(task_ids), batch_size
        )
    return job.jobs_from_rows(rows, task_identifiers or {})


async def fetch_jobs_within_room(
    conn: asyncpg.Connection,
    schema: str,
    worker_id: str,
    task_ids: Sequence[int],
    batch_size: int,
    room: dict[int, int],
    forbidden_flags: Sequence[str] = (),
    task_identifiers: dict[int, str] | None = None,
) -> tuple[list[job.Job], int]:
    """``fetch_jobs`` taking at most ``room[t]`` jobs of each task ``t`` it names; also
    returns how many jobs the statement considered (``batch_size`` of them: more may wait)."""
    limited, rooms = list(room), list(room.values())
    if forbidden_flags:
        rows = await conn.fetch(
            queries.FETCH_JOBS_WITHIN_ROOM_WITHOUT_FLAGS.sql(schema), worker_id,
            list(task_ids), batch_size, limited, rooms, list(forbidden_flags),
        )
    else:
        rows = await conn.fetch(
            queries.FETCH_JOBS_WITHIN_ROOM.sql(schema), worker_id, list(task_ids),
            batch_size, limited, rooms,
        )
    considered = rows[0]["candidates"] if rows else 0
    return job.jobs_from_rows(rows, task_identifiers or {}), considered


async def complete_jobs(
    conn: asyncpg.Connection, schema: str, worker_id: str, job_ids: Sequence[int],
    *, history: bool = False,
) -> None:
    """Delete finished jobs (still locked by us) and unlock their queues; with ``history``,
    record each in the job history in the same statement."""
    query = queries.COMPLETE_JOBS_RECORDING_HISTORY if history else queries.COMPLETE_JOBS
    await conn.execute(query.sql(schema), worker_id, list(job_ids))


async def complete_job_in_transaction(
    conn: asyncpg.Connection, schema: str, worker_id: str, job_id: int, attempt: int,
    *, history: bool = False,
) -> bool:
    """Delete the job (still locked by us, at ``attempt``) and unlock its queue, on
    ``conn`` inside the task's transaction (with ``history``, recording it in the job
    history); False when the job is no longer ours."""
    query = (
        queries.COMPLETE_JOB_IN_TRANSACTION_RECORDING_HISTORY if history
        else queries.COMPLETE_JOB_IN_TRANSACTION
    )
    deleted: int = await conn.fetchval(query.sql(schema), worker_id, job_id, attempt)
    return deleted == 1


async def fail_jobs(
    conn: asyncpg.Connection, schema: str, worker_id: str, failures: Sequence[Failure],
    *, history: bool = False,
) -> None:
    """Record failed attempts: last_error, next run (exponential backoff unless the task
    chose), lock cleared, queue unlocked; with ``history``, the jobs out of attempts are
    recorded in the job history in the same statement."""
    common = (
        worker_id, [f.job_id for f in failures], [f.message for f in failures],
        [f.payload_json for f in failures], [f.attempts for f in failures],
    )
    if not any(f.scheduled for f in failures):
        query = queries.FAIL_JOBS_RECORDING_HISTORY if history else queries.FAIL_JOBS
        await conn.execute(query.sql(schema), *common)
        return
    scheduled = (
        queries.FAIL_JOBS_SCHEDULED_RECORDING_HISTORY if history
        else queries.FAIL_JOBS_SCHEDULED
    )
    await conn.execute(
        scheduled.sql(schema), *common, [f.run_at for f in failures],
        [f.delay for f in failures], [f.permanent for f in failures],
    )


async def return_jobs(
    conn: asyncpg.Connection,
    schema: str,
    worker_id: str,
    job_ids: Sequence[int],
    delay: float | None = None,
) -> None:
    """Hand jobs back without using up an attempt; ``delay`` seconds pushes run_at later."""
    await conn.execute(queries.RETURN_JOBS.sql(schema), worker_id, list(job_ids), delay)


async def return_orphans(
    conn: asyncpg.Connection, schema: str, worker_id: str, held_ids: Sequence[int]
) -> None:
    """Hand back jobs locked by this worker other than ``held_ids`` (a fetch whose reply
    was lost with its connection)."""
    await conn.execute(queries.RETURN_ORPHANS.sql(schema), worker_id, list(held_ids))


async def reset_stale_locks(conn: asyncpg.Connection, schema: str) -> None:
    """Unlock jobs and queues whose lock is older than four hours (a crashed worker's)."""
    await conn.execute(queries.RESET_STALE_LOCKS.sql(schema))


async def has_cancel_requests(conn: asyncpg.Connection, schema: str) -> bool:
    """Whether the schema has gw's cancel requests table (gw migration 3)."""
    return bool(await conn.fetchval(queries.HAS_CANCEL_REQUESTS.sql(schema), schema))


async def cancel_requests(
    conn: asyncpg.Connection, schema: str, worker_id: str, message: str,
    *, history: bool = False,
) -> tuple[list[int], int]:
    """Ids of the jobs this worker holds that someone asked to cancel (after tidying the
    requests nobody will act on: see ``queries.worker.CANCEL_CHECK``; with ``history``,
    the jobs it fails are recorded), and how many requests are left in all."""
    query = queries.CANCEL_CHECK_RECORDING_HISTORY if history else queries.CANCEL_CHECK
    rows = await conn.fetch(query.sql(schema), worker_id, message)
    return [row["job_id"] for row in rows if row["mine"]], len(rows)


async def requested_among(
    conn: asyncpg.Connection, schema: str, job_ids: Sequence[int]
) -> list[int]:
    """Those of ``job_ids`` someone asked to cancel."""
    rows = await conn.fetch(queries.REQUESTED_AMONG.sql(schema), list(job_ids))
    return [row["job_id"] for row in rows]


async def finish_requested(
    conn: asyncpg.Connection, schema: str, worker_id: str, job_ids: Sequence[int], message: str,
    *, history: bool = False,
) -> list[int]:
    """``finish_cancelled`` for only those of ``job_ids`` someone asked to cancel; returns
    their ids."""
    query = (
        queries.FINISH_REQUESTED_RECORDING_HISTORY if history else queries.FINISH_REQUESTED
    )
    rows = await conn.fetch(query.sql(schema), worker_id, list(job_ids), message)
    return [row["job_id"] for row in rows]


async def finish_cancelled(
    conn: asyncpg.Connection, schema: str, worker_id: str, job_ids: Sequence[int], message: str,
    *, history: bool = False,
) -> None:
    """Fail cancelled jobs (still locked by us) for good and drop their requests; with
    ``history``, record them in the job history in the same statement."""
    query = queries.FINISH_CANCELLED_RECORDING_HISTORY if history else queries.FINISH_CANCELLED
    await conn.execute(query.sql(schema), worker_id, list(job_ids), message)


async def reset_stale_locks_when_due(
    conn: asyncpg.Connection, schema: str, worker_id: str
) -> asyncpg.Record | None:
    """``reset_stale_locks`` when gw's maintenance row says a lock may have gone stale since
    the last reset (else nothing is read); the statement's row (``ran``, ``jobs_reset``,
    ``queues_reset``, ``due_at``), or None when the row was missing (put back now: call
    again). Raises ``asyncpg.UndefinedTableError`` on a schema without gw's migration 4."""
    row = await conn.fetchrow(queries.RESET_STALE_LOCKS_WHEN_DUE.sql(schema), worker_id)
    if row is not None and row["known"]:
        return row
    await conn.execute(queries.ENSURE_STALE_LOCK_RESET_ROW.sql(schema))
    return None


async def ping(conn: asyncpg.Connection) -> None:
    """One round trip: shows whether the connection is still alive."""
    await conn.execute(queries.PING.text)


async def history_tables_exist(conn: asyncpg.Connection, schema: str) -> bool:
    """Whether ``schema`` has gw's job history tables (gw migration 2)."""
    row = await conn.fetchrow(history_queries.HISTORY_STATE.sql(schema), schema)
    return bool(row is not None and row["present"])
