"""SQL of dead-worker recovery: the ``_gw_workers`` registry, liveness, heartbeats, the
sweep, and the JobRecovery decisions applied inside a sweep.

A registered worker is dead only when both hold: its heartbeat is older than its effective
threshold, and its liveness lock (a session-level advisory lock its process holds on a
connection of its own for its whole life) can be taken, so its database session is gone.
The lock key is derived from the worker id in SQL (``LIVENESS_KEY``), so the worker and
every sweeper compute the same key with no stored column.
"""

from __future__ import annotations

import hashlib

from graphile_worker_cli.queries import Query, worker

REGISTRY_TABLE = "_gw_workers"
JOBS_INSERT_CHANNEL = worker.JOBS_INSERT_CHANNEL

# Multiples of a worker's own heartbeat interval that must pass before any sweep may
# declare it dead, whatever threshold the sweeper was given.
MIN_MISSED_HEARTBEATS = 3

# The liveness lock key of worker id `<id>`: a signed 64-bit value for the bigint advisory
# lock functions. The prefix keeps it apart from other users of advisory locks.
LIVENESS_KEY = "hashtextextended('gw.liveness:' || {id}, 0)"


def sweep_lock_key(schema: str) -> int:
    """The advisory lock key that lets one sweeper at a time work on ``schema`` (unescaped).

    Derived from the schema name so fleets on different schemas of one database never
    wait for each other; a signed 64-bit value, as the bigint advisory lock functions want.
    """
    digest = hashlib.blake2b(f"gw.recovery.sweep:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# $1 worker id. Takes the worker's liveness lock for this session; false when another
# session holds it (the previous session of this worker not ended yet, or a sweeper
# testing it right now): try again shortly.
TAKE_LIVENESS_LOCK = Query(f"select pg_try_advisory_lock({LIVENESS_KEY.format(id='$1::text')})")

# $1 id, $2 host, $3 pid, $4 version, $5 tasks text[], $6 heartbeat interval (seconds),
# $7 metadata jsonb (text). Upsert: registering again refreshes everything but started_at.
# Returns `inserted` (false when the row already existed).
REGISTER_WORKER = Query(
    """
insert into {s}._gw_workers as w
  (id, host, pid, version, tasks, heartbeat_interval, metadata)
values ($1, $2, $3, $4, $5::text[], $6::float8 * interval '1 second', $7::jsonb)
on conflict (id) do update set
  host = excluded.host,
  pid = excluded.pid,
  version = excluded.version,
  tasks = excluded.tasks,
  heartbeat_interval = excluded.heartbeat_interval,
  metadata = excluded.metadata,
  last_heartbeat_at = now()
returning (xmax = 0) as inserted"""
)

# $1 id, $2 longest recent event-loop stall in seconds (null: not measured). Returns a row
# only when the worker is still registered.
HEARTBEAT = Query(
    """
update {s}._gw_workers
set last_heartbeat_at = now(),
    metadata = case when $2::float8 is null then metadata
               else metadata || jsonb_build_object('longest_stall_seconds', $2::float8) end
where id = $1
returning id"""
)

# $1 id. Only when the worker holds no job or queue lock any more: otherwise the row stays,
# goes stale, and a sweep recovers what is still locked. Returns `held`, the number of jobs
# and queues still locked by the worker (0: the row is gone).
DEREGISTER_WORKER = Query(
    """
with held as (
  select
    (select count(*) from {s}._private_jobs where locked_by = $1) as jobs,
    (select count(*) from {s}._private_job_queues where locked_by = $1) as queues
),
removed as (
  delete from {s}._gw_workers as w
  using held
  where w.id = $1 and held.jobs = 0 and held.queues = 0
  returning w.id
)
select (jobs + queues)::int as held from held"""
)

# $1 id. DEREGISTER_WORKER for a worker that knows it holds no job (every fetch answered,
# every outcome written): only its queue locks are counted, so the jobs table, where
# locked jobs are in no index, is not read. Returns `held` (queues; 0: the row is gone).
DEREGISTER_IDLE_WORKER = Query(
    """
with held as (
  select (select count(*) from {s}._private_job_queues where locked_by = $1) as queues
),
removed as (
  delete from {s}._gw_workers as w
  using held
  where w.id = $1 and held.queues = 0
  returning w.id
)
select queues::int as held from held"""
)

# $1 threshold seconds, $2 resilient multiplier, $3 resilient flags; alias w = registry.
_EFFECTIVE_THRESHOLD = f"""(
    greatest($1::float8 * interval '1 second', w.heartbeat_interval * {MIN_MISSED_HEARTBEATS})
    * case when exists (
        select 1 from {{s}}._private_jobs as j
        where j.locked_by = w.id and j.flags ?| $3::text[]
      ) then $2::integer else 1 end
  )"""
_LATE = f"w.last_heartbeat_at < now() - {_EFFECTIVE_THRESHOLD}"
# Whether worker w's liveness lock is free (its session is gone). Taking it is transaction
# scoped, so it is released when the statement's transaction ends; the case keeps the
# lock untouched for workers whose heartbeat is not late.
_SESSION_GONE = f"pg_try_advisory_xact_lock({LIVENESS_KEY.format(id='w.id')})"
# $4 (in the sweep; the sweeper's own id) is never dead.
_DEAD = (
    f"(case when {_LATE} and w.id is distinct from $4::text then {_SESSION_GONE} else false end)"
)

# $1 threshold seconds, $2 resilient multiplier, $3 resilient flags text[]. Every registered
# worker with its jobs and queues held, whether its heartbeat is late, whether its session
# still holds its liveness lock, and whether a sweep would declare it dead (stale).
LIST_ACTIVE_WORKERS = Query(
    f"""
select
  w.id, w.host, w.pid, w.version, w.tasks, w.started_at, w.last_heartbeat_at,
  extract(epoch from now() - w.started_at)::float8 as age,
  extract(epoch from now() - w.last_heartbeat_at)::float8 as heartbeat_age,
  extract(epoch from w.heartbeat_interval)::float8 as heartbeat_interval,
  extract(epoch from {_EFFECTIVE_THRESHOLD})::float8 as threshold,
  {_LATE} as late,
  not {_SESSION_GONE} as session_alive,
  {_LATE} and {_SESSION_GONE} as stale,
  (w.metadata ->> 'longest_stall_seconds')::float8 as longest_stall,
  (w.metadata -> 'connections' ->> 'pool')::int as pool_connections,
  (w.metadata -> 'connections' ->> 'sessions')::int as session_connections,
  (select count(*) from {{s}}._private_jobs as j where j.locked_by = w.id)::int
    as jobs_held,
  (select count(*) from {{s}}._private_job_queues as q where q.locked_by = w.id)::int
    as queues_held
from {{s}}._gw_workers as w
order by w.started_at, w.id"""
)

# No parameters. Lock holders with no registry row (reference workers, old gw): the sweep
# never touches them; only the 4-hour stale-lock rule applies.
LIST_UNREGISTERED_LOCK_HOLDERS = Query(
    """
select j.locked_by as id, count(*)::int as jobs_held, min(j.locked_at) as oldest_lock_at
from {s}._private_jobs as j
where j.locked_by is not null
  and not exists (select 1 from {s}._gw_workers as w where w.id = j.locked_by)
group by j.locked_by
order by min(j.locked_at), j.locked_by"""
)

# $1 unescaped schema name. Whether the schema is migrated and has gw's worker registry.
SCHEMA_STATE = Query(
    """
select
  to_regclass(quote_ident($1::text) || '._private_jobs') is not null as migrated,
  to_regclass(quote_ident($1::text) || '._gw_workers') is not null as has_registry"""
)

# $1 worker ids text[]. The schema's own function unlocks their jobs and queues; returns
# how many jobs they held.
FORCE_UNLOCK_WORKERS = Query(
    """
with held as (
  select count(*)::int as jobs from {s}._private_jobs where locked_by = any($1::text[])
)
select held.jobs from held, lateral (select {s}.force_unlock_workers($1::text[])) as unlock"""
)

# $1 sweep lock key, $2 statement and lock timeout, $3 idle-in-transaction timeout (texts
# such as '10s'). Opens a sweep: timeouts for this transaction only, so a sweeper that
# stalls mid-transaction loses its session and the lock within the idle timeout instead of
# holding every other sweeper off; then the fleet-wide sweep lock. Returns `locked`.
BEGIN_SWEEP = Query(
    """
select
  set_config('statement_timeout', $2::text, true),
  set_config('lock_timeout', $2::text, true),
  set_config('idle_in_transaction_session_timeout', $3::text, true),
  pg_try_advisory_xact_lock($1::bigint) as locked"""
)

# $1 threshold seconds, $2 resilient multiplier, $3 resilient flags text[], $4 the sweeping
# worker's own id (never swept; may be null), $5 recovery delay seconds. Run inside the
# transaction holding the sweep lock.
#
# Dead = registered, heartbeat older than its effective threshold, and liveness lock free.
# Their jobs are unlocked with the attempt they were running used (as the reference's
# stale-lock reset does: a job that kills its worker ends permanently failed after
# max_attempts), keep their place in line (run_at + the recovery delay), and say why in
# last_error. Their queues are unlocked and their rows deleted. A row being heartbeated
# right now is locked by that update and skipped. Idle workers are woken with a
# jobs:insert notice. Returns worker_ids, job_ids, queue_names (arrays).
SWEEP_STALE_WORKERS = Query(
    f"""
with dead as (
  select w.id
  from {{s}}._gw_workers as w
  where {_DEAD}
  for update of w skip locked
),
recovered_jobs as (
  update {{s}}._private_jobs as j
  set
    locked_at = null,
    locked_by = null,
    run_at = j.run_at + $5::float8 * interval '1 second',
    last_error = format(
      'worker %s died while running this job (recovered by sweep at %s)',
      dead.id,
      to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    ),
    updated_at = now()
  from dead
  where j.locked_by = dead.id
  returning j.id, j.run_at <= now() as due
),
unlocked_queues as (
  update {{s}}._private_job_queues as q
  set locked_at = null, locked_by = null
  from dead
  where q.locked_by = dead.id
  returning q.queue_name
),
removed as (
  delete from {{s}}._gw_workers as w
  using dead
  where w.id = dead.id
  returning w.id
),
notified as (
  select pg_notify(
    '{JOBS_INSERT_CHANNEL}',
    json_build_object('r', random(), 'count', (select count(*) from recovered_jobs))::text
  )
  where exists (select 1 from recovered_jobs where due)
)
select
  coalesce((select array_agg(id order by id) from removed), '{{}}') as worker_ids,
  coalesce((select array_agg(id order by id) from recovered_jobs), '{{}}') as job_ids,
  coalesce((select array_agg(queue_name order by queue_name) from unlocked_queues), '{{}}')
    as queue_names,
  (select count(*) from notified)::int as notified"""
)

# $1 threshold seconds, $2 resilient multiplier, $3 resilient flags text[], $4 the sweeper's
# id. The jobs the sweep is about to recover, as they are now (run it in the sweep's
# transaction, before the sweep statement; same dead rule).
JOBS_OF_DEAD_WORKERS = Query(
    f"""
select j.*, t.identifier as task_identifier, q.queue_name
from {{s}}._private_jobs as j
join {{s}}._gw_workers as w on w.id = j.locked_by
join {{s}}._private_tasks as t on t.id = j.task_id
left join {{s}}._private_job_queues as q on q.id = j.job_queue_id
where {_DEAD}
order by j.id"""
)

# JobRecovery decisions, applied after the sweep statement in its transaction.
# $1 job id, $2 run_at, $3 attempts (null: as the sweep left it).
RECOVERY_RESCHEDULE = Query(
    """
update {s}._private_jobs
set run_at = $2::timestamptz, attempts = coalesce($3::smallint, attempts), updated_at = now()
where id = $1 and locked_by is null"""
)

# $1 job id, $2 attempts as locked (the lost attempt counts). Backoff as a failure.
RECOVERY_FAIL_WITH_BACKOFF = Query(
    """
update {s}._private_jobs
set attempts = $2::smallint,
    run_at = greatest(now(), run_at)
             + """ + worker.RETRY_DELAY.replace("ATTEMPTS", "$2::int") + """,
    updated_at = now()
where id = $1 and locked_by is null"""
)

# $1 job id, $2 locked_by, $3 locked_at, $4 attempts, $5 run_at, $6 last_error: put the job
# back as the dead worker left it (locked), and its queue too.
RECOVERY_SKIP = Query(
    """
with job as (
  update {s}._private_jobs
  set locked_by = $2, locked_at = $3, attempts = $4::smallint, run_at = $5,
      last_error = $6
  where id = $1 and locked_by is null
  returning job_queue_id
)
update {s}._private_job_queues as q
set locked_by = $2, locked_at = $3
from job
where q.id = job.job_queue_id and q.locked_by is null"""
)

# Whether the schema has gw's cancel requests (gw migration 3); the worker's statement.
HAS_CANCEL_REQUESTS = worker.HAS_CANCEL_REQUESTS

# $1 ids of the jobs the sweep just recovered, $2 last_error of a cancelled job. Run in the
# sweep's transaction, after the JobRecovery hooks: a recovered job someone asked to cancel
# (its worker died before acting on it) is failed for good instead of running again.
FAIL_SWEPT_CANCELLED = Query(
    """
with cancelled as (
  update {s}._private_jobs as jobs
     set last_error = $2::text, attempts = jobs.max_attempts, updated_at = now()
    from {s}._gw_cancel_requests as r
   where r.job_id = jobs.id and jobs.id = any($1::bigint[]) and jobs.locked_at is null
  returning jobs.id
)
delete from {s}._gw_cancel_requests as r using cancelled where r.job_id = cancelled.id
""",
    "FAIL_SWEPT_CANCELLED",
)

# A sweep on a caller's connection (``conn=`` of any driver), inside the caller's open
# transaction: $1 the sweep lock key, held until that transaction ends. No timeouts are set:
# they would outlast the sweep, in the caller's transaction.
TRY_SWEEP_LOCK = Query("select pg_try_advisory_xact_lock($1::bigint) as locked", "TRY_SWEEP_LOCK")

# The sweep's savepoint in a caller's transaction (a dry run rolls back to it).
SAVEPOINT_SWEEP = Query("savepoint gw_sweep", "SAVEPOINT_SWEEP")
ROLLBACK_TO_SWEEP = Query("rollback to savepoint gw_sweep", "ROLLBACK_TO_SWEEP")
RELEASE_SWEEP = Query("release savepoint gw_sweep", "RELEASE_SWEEP")
