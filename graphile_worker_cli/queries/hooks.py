"""SQL used only when hooks ask for it: JobRecovery decisions applied after a sweep. Each
function takes an escaped schema name. (The tracing and metrics statements are in
``queries.tracing`` and ``queries.metrics``.)"""

from __future__ import annotations

from functools import lru_cache

from graphile_worker_cli.queries import recovery as recovery_queries


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
