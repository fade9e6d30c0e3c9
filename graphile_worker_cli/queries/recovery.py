"""SQL of dead-worker recovery: the ``_gw_workers`` registry, heartbeats and the sweep.

Each function returns one statement for a schema (already escaped with
``db.escape_identifier``); the docstring gives the parameter order.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from graphile_worker_cli.queries import worker

REGISTRY_TABLE = "_gw_workers"
JOBS_INSERT_CHANNEL = worker.JOBS_INSERT_CHANNEL

# Multiples of a worker's own heartbeat interval that must pass before any sweep may
# declare it dead, whatever threshold the sweeper was given.
MIN_MISSED_HEARTBEATS = 3


def sweep_lock_key(schema: str) -> int:
    """The advisory lock key that lets one sweeper at a time work on ``schema`` (unescaped).

    Derived from the schema name so fleets on different schemas of one database never
    wait for each other; a signed 64-bit value as ``pg_try_advisory_xact_lock`` wants.
    """
    digest = hashlib.blake2b(f"gw.recovery.sweep:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@lru_cache(maxsize=64)
def register_worker(schema: str) -> str:
    """$1 id, $2 host, $3 pid, $4 version, $5 tasks text[], $6 heartbeat interval (seconds),
    $7 metadata jsonb (text). Upsert: registering again refreshes everything but started_at.
    Returns ``inserted`` (false when the row already existed)."""
    return f"""
insert into {schema}.{REGISTRY_TABLE} as w
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


@lru_cache(maxsize=64)
def heartbeat(schema: str) -> str:
    """$1 id. Returns a row only when the worker is still registered."""
    return f"""
update {schema}.{REGISTRY_TABLE}
set last_heartbeat_at = now()
where id = $1
returning id"""


@lru_cache(maxsize=64)
def deregister_worker(schema: str) -> str:
    """$1 id. Only when the worker holds no job or queue lock any more: otherwise the row
    stays, goes stale, and a sweep recovers what is still locked. Returns ``held``, the
    number of jobs and queues still locked by the worker (0: the row is gone)."""
    return f"""
with held as (
  select
    (select count(*) from {schema}._private_jobs where locked_by = $1) as jobs,
    (select count(*) from {schema}._private_job_queues where locked_by = $1) as queues
),
removed as (
  delete from {schema}.{REGISTRY_TABLE} as w
  using held
  where w.id = $1 and held.jobs = 0 and held.queues = 0
  returning w.id
)
select (jobs + queues)::int as held from held"""


def _effective_threshold(schema: str) -> str:
    # $1 threshold seconds, $2 resilient multiplier, $3 resilient flags; alias w = registry.
    return f"""(
    greatest($1::float8 * interval '1 second', w.heartbeat_interval * {MIN_MISSED_HEARTBEATS})
    * case when exists (
        select 1 from {schema}._private_jobs as j
        where j.locked_by = w.id and j.flags ?| $3::text[]
      ) then $2::integer else 1 end
  )"""


@lru_cache(maxsize=64)
def list_active_workers(schema: str) -> str:
    """$1 threshold seconds, $2 resilient multiplier, $3 resilient flags text[].
    Every registered worker with its jobs and queues held and whether it is stale."""
    return f"""
select
  w.id, w.host, w.pid, w.version, w.tasks, w.started_at, w.last_heartbeat_at,
  extract(epoch from now() - w.started_at)::float8 as age,
  extract(epoch from now() - w.last_heartbeat_at)::float8 as heartbeat_age,
  extract(epoch from w.heartbeat_interval)::float8 as heartbeat_interval,
  extract(epoch from {_effective_threshold(schema)})::float8 as threshold,
  w.last_heartbeat_at < now() - {_effective_threshold(schema)} as stale,
  (select count(*) from {schema}._private_jobs as j where j.locked_by = w.id)::int
    as jobs_held,
  (select count(*) from {schema}._private_job_queues as q where q.locked_by = w.id)::int
    as queues_held
from {schema}.{REGISTRY_TABLE} as w
order by w.started_at, w.id"""


@lru_cache(maxsize=64)
def list_unregistered_lock_holders(schema: str) -> str:
    """No parameters. Lock holders with no registry row (reference workers, old gw):
    the sweep never touches them; only the 4-hour stale-lock rule applies."""
    return f"""
select j.locked_by as id, count(*)::int as jobs_held, min(j.locked_at) as oldest_lock_at
from {schema}._private_jobs as j
where j.locked_by is not null
  and not exists (select 1 from {schema}.{REGISTRY_TABLE} as w where w.id = j.locked_by)
group by j.locked_by
order by min(j.locked_at), j.locked_by"""


SCHEMA_STATE = f"""
select
  to_regclass($1::text || '._private_jobs') is not null as migrated,
  to_regclass($1::text || '.{REGISTRY_TABLE}') is not null as has_registry"""
"""$1 escaped schema. Whether the schema is migrated and has gw's worker registry."""


@lru_cache(maxsize=64)
def count_locked_jobs(schema: str) -> str:
    """$1 worker ids text[]. How many jobs these workers hold."""
    return f"select count(*)::int from {schema}._private_jobs where locked_by = any($1::text[])"


@lru_cache(maxsize=64)
def force_unlock_workers(schema: str) -> str:
    """$1 worker ids text[]. The schema's own function: unlocks their jobs and queues."""
    return f"select {schema}.force_unlock_workers($1::text[])"


TRY_SWEEP_LOCK = "select pg_try_advisory_xact_lock($1::bigint)"


@lru_cache(maxsize=64)
def sweep_stale_workers(schema: str) -> str:
    """$1 threshold seconds, $2 resilient multiplier, $3 resilient flags text[],
    $4 recovery delay seconds, $5 the sweeping worker's own id (never swept; may be null).
    Run inside the transaction holding the sweep lock.

    Dead = registered and heartbeat older than its effective threshold. Their jobs are
    unlocked with the unfinished attempt given back (except jobs detached by
    remove_job/add_job while locked: those were modified after locking and already sit at
    max_attempts, so they must not come back), run_at pushed by the recovery delay; their
    queues are unlocked and their rows deleted. A row being heartbeated right now is
    locked by that update and skipped. Idle workers are woken with a jobs:insert notice.
    Returns worker_ids, job_ids, queue_names (arrays)."""
    return f"""
with dead as (
  select w.id, w.last_heartbeat_at
  from {schema}.{REGISTRY_TABLE} as w
  where w.last_heartbeat_at < now() - {_effective_threshold(schema)}
    and w.id is distinct from $5::text
  for update of w skip locked
),
recovered_jobs as (
  update {schema}._private_jobs as j
  set
    locked_at = null,
    locked_by = null,
    attempts = case
      when j.attempts >= j.max_attempts and j.updated_at > j.locked_at then j.attempts
      else greatest(j.attempts - 1, 0)
    end,
    run_at = greatest(j.run_at, now()) + $4::float8 * interval '1 second',
    last_error = format(
      'worker %s stopped heartbeating at %s (sweep at %s); job recovered by sweep',
      dead.id,
      to_char(dead.last_heartbeat_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    ),
    updated_at = now()
  from dead
  where j.locked_by = dead.id
  returning j.id, j.run_at <= now() as due
),
unlocked_queues as (
  update {schema}._private_job_queues as q
  set locked_at = null, locked_by = null
  from dead
  where q.locked_by = dead.id
  returning q.queue_name
),
removed as (
  delete from {schema}.{REGISTRY_TABLE} as w
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
