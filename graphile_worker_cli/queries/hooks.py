"""SQL used only when hooks ask for it: the trace-context table of the tracing plugin (the
JobRecovery decisions live with the sweep, in ``queries.recovery``). Each function takes
an escaped schema name."""

from __future__ import annotations

from functools import lru_cache

TRACE_TABLE = "_gw_job_traces"


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
from {schema}._gw_workers where id = $1"""
