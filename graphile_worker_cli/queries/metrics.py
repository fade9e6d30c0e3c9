"""SQL of the Prometheus metrics (``observability.metrics``): queue depth per task and the
age of this worker's heartbeat."""

from __future__ import annotations

from graphile_worker_cli.queries import Query
from graphile_worker_cli.queries.recovery import REGISTRY_TABLE

# No parameters. Per task: runnable jobs and the age in seconds of the oldest one, locked
# jobs, permanently failed jobs.
QUEUE_STATS = Query(
    """
select t.identifier as task,
  count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts
                   and j.run_at <= now() and j.is_available)::int as runnable,
  coalesce(extract(epoch from now() - min(j.run_at) filter (
    where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now()
      and j.is_available)), 0)::float8 as oldest_runnable_age,
  count(*) filter (where j.locked_at is not null)::int as locked,
  count(*) filter (where j.locked_at is null and j.attempts >= j.max_attempts)::int as failed
from {s}._private_jobs as j
join {s}._private_tasks as t on t.id = j.task_id
group by t.identifier
order by t.identifier""",
    "QUEUE_STATS",
)

# $1 worker id. Seconds since this worker's last heartbeat (no row: unregistered).
HEARTBEAT_AGE = Query(
    f"""
select extract(epoch from now() - last_heartbeat_at)::float8 as age
from {{s}}.{REGISTRY_TABLE} where id = $1""",
    "HEARTBEAT_AGE",
)
