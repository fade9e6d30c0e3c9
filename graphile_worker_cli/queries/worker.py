"""Every SQL statement the worker issues, schema-qualified.

Each settling statement is guarded by ``locked_by = <this worker>``: a job whose lock we
no longer hold is not ours to touch, and re-running a statement whose first attempt landed
(but whose reply was lost with the connection) changes nothing. That makes every write
here safe to retry until it lands.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from graphile_worker_cli import db, job

STALE_LOCK_AGE = "4 hours"
JOBS_INSERT_CHANNEL = "jobs:insert"
"""Notified (by the schema's functions, and by the recovery sweep) when jobs are added."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt to settle: the job, its error, and (batch jobs) the items to retry."""

    job_id: int
    message: str
    payload_json: str | None = None
    """The job's new payload as JSON text (``payloads.replacement_to_json``); None keeps it."""
    attempts: int | None = None
    """The attempt that failed: the write only applies while the row still has it."""


@functools.lru_cache(maxsize=64)
def _sql(name: str, schema: str, with_flags: bool = False) -> str:
    s = db.escape_identifier(schema)
    jobs = f"{s}._private_jobs"
    queues = f"{s}._private_job_queues"
    tasks = f"{s}._private_tasks"
    if name == "ensure_tasks":
        # $1 identifiers
        return (
            f"insert into {tasks} as tasks (identifier) "
            f"select u.i from unnest($1::text[]) as u(i) "
            f"where not exists (select 1 from {tasks} as t where t.identifier = u.i) "
            f"on conflict do nothing"
        )
    if name == "task_ids":
        # $1 identifiers
        return f"select id, identifier from {tasks} where identifier = any($1::text[])"
    if name == "fetch":
        # $1 worker id, $2 task ids, $3 batch size[, $4 forbidden flags]
        flags = "and (jobs.flags ?| $4::text[]) is not true" if with_flags else ""
        # The priorities that have available jobs, found from the high end of the index
        # (the low end of each priority holds the entries of taken jobs until a vacuum);
        # with ``priority = any(...)`` the scan stops at the first job not due yet in each
        # priority instead of reading every job scheduled for later.
        return f"""
with recursive priorities as (
  (select jobs.priority from {jobs} as jobs
    where jobs.is_available order by jobs.priority desc limit 1)
  union all
  select (select jobs.priority from {jobs} as jobs
           where jobs.is_available and jobs.priority < priorities.priority
           order by jobs.priority desc limit 1)
    from priorities where priorities.priority is not null
), candidates as (
  select jobs.id, jobs.job_queue_id, jobs.priority, jobs.run_at
    from {jobs} as jobs
   where jobs.is_available
     and jobs.priority = any(array(select p.priority from priorities as p
                                    where p.priority is not null))
     and jobs.run_at <= now()
     and jobs.task_id = any($2::int[])
     and (jobs.job_queue_id is null
          or jobs.job_queue_id in (select q.id from {queues} as q
                                    where q.is_available for update skip locked))
     {flags}
   order by jobs.priority, jobs.run_at
   limit $3
   for update skip locked
), chosen as (
  -- Jobs without a named queue all go; of each named queue, only its first job (the
  -- jobs without a queue, usually most of a batch, need no sorting for that).
  select c.id, c.job_queue_id from candidates as c where c.job_queue_id is null
  union all
  (select distinct on (c.job_queue_id) c.id, c.job_queue_id
     from candidates as c where c.job_queue_id is not null
    order by c.job_queue_id, c.priority, c.run_at, c.id)
), locked_queues as (
  update {queues} as q set locked_by = $1::text, locked_at = now()
    from chosen where q.id = chosen.job_queue_id
)
update {jobs} as jobs
   set attempts = jobs.attempts + 1, locked_by = $1::text, locked_at = now()
  from chosen
 where jobs.id = chosen.id
returning jobs.*,
  case when jobs.job_queue_id is not null then
    (select q.queue_name from {queues} as q where q.id = jobs.job_queue_id) end as queue_name
"""
    if name == "complete":
        # $1 worker id, $2 job ids
        return _unlocking_queues(queues, f"""
  delete from {jobs} as jobs
   where jobs.id = any($2::bigint[]) and jobs.locked_by = $1::text""")
    if name == "fail":
        # $1 worker id, $2 job ids, $3 messages, $4 replacement payloads (null: keep),
        # $5 attempt numbers (null: any)
        return _unlocking_queues(queues, f"""
  update {jobs} as jobs
     set last_error = f.message,
         run_at = greatest(now(), jobs.run_at)
                  + exp(least(jobs.attempts, 10)) * interval '1 second',
         locked_by = null,
         locked_at = null,
         payload = coalesce(f.payload, jobs.payload)
    from unnest($2::bigint[], $3::text[], $4::json[], $5::int[])
         as f(id, message, payload, attempts)
   where jobs.id = f.id and jobs.locked_by = $1::text
     and (f.attempts is null or jobs.attempts = f.attempts)""")
    if name == "return":
        # $1 worker id, $2 job ids, $3 delay in seconds (null: leave run_at)
        return _unlocking_queues(queues, f"""
  update {jobs} as jobs
     set attempts = greatest(0, jobs.attempts - 1),
         locked_by = null,
         locked_at = null,
         run_at = case when $3::float8 is null then jobs.run_at
                       else greatest(jobs.run_at, now() + $3::float8 * interval '1 second') end
   where jobs.id = any($2::bigint[]) and jobs.locked_by = $1::text""")
    if name == "return_orphans":
        # $1 worker id, $2 ids of the jobs this worker is running (keep those)
        return _unlocking_queues(queues, f"""
  update {jobs} as jobs
     set attempts = greatest(0, jobs.attempts - 1), locked_by = null, locked_at = null
   where jobs.locked_by = $1::text and not (jobs.id = any($2::bigint[]))""")
    if name == "reset_stale":
        return f"""
with jobs_reset as (
  update {jobs} as jobs
     set locked_at = null, locked_by = null, run_at = greatest(jobs.run_at, now())
   where jobs.locked_at < now() - interval '{STALE_LOCK_AGE}'
)
update {queues} as q set locked_at = null, locked_by = null
 where q.locked_at < now() - interval '{STALE_LOCK_AGE}'
"""
    raise KeyError(name)


def statement(name: str, schema: str) -> str:
    """The text of one of the statements above ("fetch", "complete", ...), for tools that
    time the database on its own (bench/)."""
    return _sql(name, schema)


def _unlocking_queues(queues: str, settle: str) -> str:
    """``settle`` (a delete or update of ``{jobs} as jobs``, guarded by ``$1`` = worker
    id), then unlock the named queues of the jobs it touched that this worker holds."""
    return f"""
with settled as ({settle}
  returning jobs.job_queue_id
)
update {queues} as q set locked_by = null, locked_at = null
  from settled where q.id = settled.job_queue_id and q.locked_by = $1::text
"""


async def ensure_tasks(
    conn: asyncpg.Connection, schema: str, identifiers: Sequence[str]
) -> dict[str, int]:
    """Make sure every identifier has a ``_private_tasks`` row; return identifier -> id."""
    names = list(identifiers)
    await conn.execute(_sql("ensure_tasks", schema), names)
    rows = await conn.fetch(_sql("task_ids", schema), names)
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
            _sql("fetch", schema, True), worker_id, list(task_ids), batch_size,
            list(forbidden_flags),
        )
    else:
        rows = await conn.fetch(_sql("fetch", schema), worker_id, list(task_ids), batch_size)
    return job.jobs_from_rows(rows, task_identifiers or {})


async def complete_jobs(
    conn: asyncpg.Connection, schema: str, worker_id: str, job_ids: Sequence[int]
) -> None:
    """Delete finished jobs (still locked by us) and unlock their queues."""
    await conn.execute(_sql("complete", schema), worker_id, list(job_ids))


async def fail_jobs(
    conn: asyncpg.Connection, schema: str, worker_id: str, failures: Sequence[Failure]
) -> None:
    """Record failed attempts: last_error, exponential backoff, lock cleared, queue unlocked."""
    await conn.execute(
        _sql("fail", schema), worker_id, [f.job_id for f in failures],
        [f.message for f in failures], [f.payload_json for f in failures],
        [f.attempts for f in failures],
    )


async def return_jobs(
    conn: asyncpg.Connection,
    schema: str,
    worker_id: str,
    job_ids: Sequence[int],
    delay: float | None = None,
) -> None:
    """Hand jobs back without using up an attempt; ``delay`` seconds pushes run_at later."""
    await conn.execute(_sql("return", schema), worker_id, list(job_ids), delay)


async def return_orphans(
    conn: asyncpg.Connection, schema: str, worker_id: str, running_ids: Sequence[int]
) -> None:
    """Hand back jobs locked by this worker that it is not running (a fetch whose reply
    was lost with its connection)."""
    await conn.execute(_sql("return_orphans", schema), worker_id, list(running_ids))


async def reset_stale_locks(conn: asyncpg.Connection, schema: str) -> None:
    """Unlock jobs and queues whose lock is older than four hours (a crashed worker's)."""
    await conn.execute(_sql("reset_stale", schema))


async def ping(conn: asyncpg.Connection) -> None:
    """One round trip: shows whether the connection is still alive."""
    await conn.execute("select 1")
