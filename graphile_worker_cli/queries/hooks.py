"""SQL used only when hooks ask for it: JobRecovery decisions applied after a sweep, and the
trace-context table of the tracing plugin. Each function takes an escaped schema name."""

from __future__ import annotations

from functools import lru_cache

from graphile_worker_cli.queries import recovery as recovery_queries

TRACE_TABLE = "_gw_job_traces"


@lru_cache(maxsize=64)
def jobs_of_dead_workers(schema: str) -> str:
    """$1 threshold seconds, $2 resilient multiplier, $3 resilient flags text[], $4 the
    sweeper's id. The jobs the sweep is about to recover, as they are now (run it in the
    sweep's transaction, before the sweep statement)."""
    threshold = recovery_queries._effective_threshold(schema)
    return f"""
select j.*, t.identifier as task_identifier, q.queue_name
from {schema}._private_jobs as j
join {schema}.{recovery_queries.REGISTRY_TABLE} as w on w.id = j.locked_by
join {schema}._private_tasks as t on t.id = j.task_id
left join {schema}._private_job_queues as q on q.id = j.job_queue_id
where w.last_heartbeat_at < now() - {threshold}
  and w.id is distinct from $4::text
order by j.id"""


@lru_cache(maxsize=64)
def recovery_reschedule(schema: str) -> str:
    """$1 job id, $2 run_at, $3 attempts (null: as the sweep left it)."""
    return f"""
update {schema}._private_jobs
set run_at = $2::timestamptz, attempts = coalesce($3::smallint, attempts), updated_at = now()
where id = $1 and locked_by is null"""


@lru_cache(maxsize=64)
def recovery_fail_with_backoff(schema: str) -> str:
    """$1 job id, $2 attempts as locked (the lost attempt counts). Backoff as a failure."""
    return f"""
update {schema}._private_jobs
set attempts = $2::smallint,
    run_at = greatest(now(), run_at) + exp(least($2::int, 10)) * interval '1 second',
    updated_at = now()
where id = $1 and locked_by is null"""


@lru_cache(maxsize=64)
def recovery_skip(schema: str) -> str:
    """$1 job id, $2 locked_by, $3 locked_at, $4 attempts, $5 run_at, $6 last_error:
    put the job back as the dead worker left it (locked), and its queue too."""
    return f"""
with job as (
  update {schema}._private_jobs
  set locked_by = $2, locked_at = $3, attempts = $4::smallint, run_at = $5,
      last_error = $6
  where id = $1 and locked_by is null
  returning job_queue_id
)
update {schema}._private_job_queues as q
set locked_by = $2, locked_at = $3
from job
where q.id = job.job_queue_id and q.locked_by is null"""


@lru_cache(maxsize=64)
def create_trace_table(schema: str) -> str:
    """No parameters. The producer's trace context per job (no foreign key: deleting jobs
    must not pay for it); rows are removed by the tracing plugin."""
    return f"""
create table if not exists {schema}.{TRACE_TABLE} (
  job_id bigint primary key,
  traceparent text not null,
  tracestate text,
  created_at timestamptz not null default now()
)"""


@lru_cache(maxsize=64)
def insert_trace(schema: str) -> str:
    """$1 job ids bigint[], $2 traceparent, $3 tracestate."""
    return f"""
insert into {schema}.{TRACE_TABLE} (job_id, traceparent, tracestate)
select unnest($1::bigint[]), $2::text, $3::text
on conflict (job_id) do update
  set traceparent = excluded.traceparent, tracestate = excluded.tracestate"""


@lru_cache(maxsize=64)
def get_trace(schema: str) -> str:
    """$1 job id. Returns traceparent, tracestate (or no row)."""
    return f"select traceparent, tracestate from {schema}.{TRACE_TABLE} where job_id = $1"


@lru_cache(maxsize=64)
def delete_traces(schema: str) -> str:
    """$1 job ids bigint[]."""
    return f"delete from {schema}.{TRACE_TABLE} where job_id = any($1::bigint[])"


@lru_cache(maxsize=64)
def prune_traces(schema: str) -> str:
    """No parameters. Rows whose job is gone (completed by a worker without tracing)."""
    return f"""
delete from {schema}.{TRACE_TABLE} as t
where not exists (select 1 from {schema}._private_jobs as j where j.id = t.job_id)"""


@lru_cache(maxsize=64)
def queue_stats(schema: str) -> str:
    """No parameters. Per task: runnable jobs and the age in seconds of the oldest one,
    locked jobs, permanently failed jobs (for metrics)."""
    return f"""
select t.identifier as task,
  count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts
                   and j.run_at <= now() and j.is_available)::int as runnable,
  coalesce(extract(epoch from now() - min(j.run_at) filter (
    where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now()
      and j.is_available)), 0)::float8 as oldest_runnable_age,
  count(*) filter (where j.locked_at is not null)::int as locked,
  count(*) filter (where j.locked_at is null and j.attempts >= j.max_attempts)::int as failed
from {schema}._private_jobs as j
join {schema}._private_tasks as t on t.id = j.task_id
group by t.identifier
order by t.identifier"""


@lru_cache(maxsize=64)
def heartbeat_age(schema: str) -> str:
    """$1 worker id. Seconds since this worker's last heartbeat (no row: unregistered)."""
    return f"""
select extract(epoch from now() - last_heartbeat_at)::float8 as age
from {schema}.{recovery_queries.REGISTRY_TABLE} where id = $1"""
