"""Read queries of the admin dashboard: counts by state, filtered job pages, queues.

The dashboard changes jobs only through ``WorkerUtils`` (the schema's own functions); these
statements only read.
A job's state follows the same rules as ``job.JobState``: locked (held by a worker), failed
(out of attempts), scheduled (available, run_at in the future), ready (available now).
"""

from __future__ import annotations

from graphile_worker_cli.queries import Query

_STATE = """
case
  when jobs.locked_at is not null then 'locked'
  when jobs.attempts >= jobs.max_attempts then 'failed'
  when jobs.run_at > now() then 'scheduled'
  else 'ready'
end
"""

# Counts per (task, queue, state); the caller sums them up by task, by queue and overall.
OVERVIEW = Query(
    f"""
select tasks.identifier as task_identifier, job_queues.queue_name,
       {_STATE} as state, count(*)::bigint as count
from {{s}}._private_jobs as jobs
left join {{s}}._private_tasks as tasks on tasks.id = jobs.task_id
left join {{s}}._private_job_queues as job_queues on job_queues.id = jobs.job_queue_id
group by 1, 2, 3
order by 1, 2, 3
""",
    "OVERVIEW",
)

# Filters, each null = any: $1 state, $2 task identifier, $3 queue name, $4 job key,
# $5 text in last_error (a LIKE pattern, already escaped, matched case-insensitively).
_FILTERS = f"""
where ($1::text is null or ({_STATE}) = $1::text)
and ($2::text is null or tasks.identifier = $2::text)
and ($3::text is null or job_queues.queue_name = $3::text)
and ($4::text is null or jobs.key = $4::text)
and ($5::text is null or jobs.last_error ilike $5::text escape '\\')
"""

_FROM_JOBS = """
from {s}._private_jobs as jobs
left join {s}._private_tasks as tasks on tasks.id = jobs.task_id
left join {s}._private_job_queues as job_queues on job_queues.id = jobs.job_queue_id
"""

ERROR_EXCERPT_CHARS = 240
"""How much of each last_error a page of jobs carries; the detail view has all of it."""

# One page of jobs, newest first, without payloads and with only the start of each
# last_error (both can be large; the detail view loads one job whole): filters $1-$5 as
# above, $6 limit, $7 offset.
LIST_JOBS = Query(
    f"""
select jobs.id, tasks.identifier as task_identifier, job_queues.queue_name,
       jobs.priority, jobs.run_at, jobs.attempts, jobs.max_attempts,
       left(jobs.last_error, {ERROR_EXCERPT_CHARS}) as last_error_excerpt,
       length(jobs.last_error) > {ERROR_EXCERPT_CHARS} as last_error_truncated,
       jobs.created_at, jobs.updated_at, jobs.key, jobs.locked_at, jobs.locked_by,
       jobs.revision, jobs.flags, {_STATE} as state
"""
    + _FROM_JOBS
    + _FILTERS
    + """
order by jobs.id desc
limit $6::bigint offset $7::bigint
""",
    "LIST_JOBS",
)

# How many jobs match filters $1-$5.
COUNT_JOBS = Query(
    "select count(*)::bigint" + _FROM_JOBS + _FILTERS,
    "COUNT_JOBS",
)

# The state of each of these jobs ($1 ids); ids with no job are absent.
JOB_STATES = Query(
    f"""
select jobs.id, {_STATE} as state
from {{s}}._private_jobs as jobs
where jobs.id = any($1::bigint[])
""",
    "JOB_STATES",
)

# Every queue with its lock and how many jobs point at it.
QUEUES = Query(
    """
select job_queues.queue_name, job_queues.locked_at, job_queues.locked_by,
       count(jobs.id)::bigint as job_count
from {s}._private_job_queues as job_queues
left join {s}._private_jobs as jobs on jobs.job_queue_id = job_queues.id
group by job_queues.id
order by job_queues.queue_name
""",
    "QUEUES",
)

# Every worker id that holds a job lock, registered or not (Node workers never register).
LOCK_HOLDERS = Query(
    """
select jobs.locked_by as id, count(*)::bigint as jobs_held, min(jobs.locked_at) as oldest_lock_at
from {s}._private_jobs as jobs
where jobs.locked_by is not null
group by jobs.locked_by
order by min(jobs.locked_at), jobs.locked_by
""",
    "LOCK_HOLDERS",
)

# The database clock: "run now" means now as the workers (which compare with now()) see it.
NOW = Query(
    "select now()",
    "NOW",
)
