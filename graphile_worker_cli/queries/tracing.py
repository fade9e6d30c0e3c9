"""SQL of the tracing plugin (``observability.tracing``): the table that carries a
producer's trace context to the worker that runs the job."""

from __future__ import annotations

from graphile_worker_cli.queries import Query

TRACE_TABLE = "_gw_job_traces"

# No parameters. The producer's trace context per job (no foreign key: deleting jobs must not
# pay for it); rows are removed by the tracing plugin.
CREATE_TRACE_TABLE = Query(
    f"""
create table if not exists {{s}}.{TRACE_TABLE} (
  job_id bigint primary key,
  traceparent text not null,
  tracestate text,
  created_at timestamptz not null default now()
)""",
    "CREATE_TRACE_TABLE",
)

# $1 job ids bigint[], $2 traceparent, $3 tracestate.
INSERT_TRACE = Query(
    f"""
insert into {{s}}.{TRACE_TABLE} (job_id, traceparent, tracestate)
select unnest($1::bigint[]), $2::text, $3::text
on conflict (job_id) do update
  set traceparent = excluded.traceparent, tracestate = excluded.tracestate""",
    "INSERT_TRACE",
)

# $1 job id. Returns traceparent, tracestate (or no row).
GET_TRACE = Query(
    f"select traceparent, tracestate from {{s}}.{TRACE_TABLE} where job_id = $1",
    "GET_TRACE",
)

# $1 job ids bigint[].
DELETE_TRACES = Query(
    f"delete from {{s}}.{TRACE_TABLE} where job_id = any($1::bigint[])", "DELETE_TRACES"
)

# No parameters. Rows whose job is gone (completed by a worker without tracing).
PRUNE_TRACES = Query(
    f"""
delete from {{s}}.{TRACE_TABLE} as t
where not exists (select 1 from {{s}}._private_jobs as j where j.id = t.job_id)""",
    "PRUNE_TRACES",
)
