"""SQL for cron: the known-crontab registry and the exactly-once scheduling statement
(run by ``cron.store``)."""

from __future__ import annotations

from graphile_worker_cli.queries import Query

# $1 ids text[] (null: every row). identifier, known_since, last_execution, ordered by id.
KNOWN_CRONTABS = Query(
    """
select identifier, known_since, last_execution
from {s}._private_known_crontabs
where $1::text[] is null or identifier = any($1::text[])
order by identifier
""",
    "KNOWN_CRONTABS",
)

# $1 ids text[], $2 known_since timestamptz; ids already known are left alone.
REGISTER_CRONTABS = Query(
    """
insert into {s}._private_known_crontabs (identifier, known_since)
select unnest($1::text[]), $2::timestamptz
on conflict (identifier) do nothing
""",
    "REGISTER_CRONTABS",
)

# One statement, so claiming the minute and adding its jobs commit together: the upsert
# moves last_execution forward only, and only the ids it moved get a job.
# $1..$8 per request (arrays): id, task identifier, payload JSON, queue name, max_attempts,
# job key, priority, job key mode; $9 the minute. Returns (identifier, job_id) per claimed id.
SCHEDULE_CRON_JOBS = Query(
    """
with wanted as (
  select *
  from unnest($1::text[], $2::text[], $3::json[], $4::text[], $5::int[], $6::text[],
              $7::int[], $8::text[])
    with ordinality as w(identifier, task, payload, queue_name, max_attempts, job_key,
                         priority, job_key_mode, position)
),
claimed as (
  insert into {s}._private_known_crontabs as known (identifier, known_since, last_execution)
  select identifier, $9::timestamptz, $9::timestamptz from wanted
  on conflict (identifier) do update
    set last_execution = excluded.last_execution
    where known.last_execution is null or known.last_execution < excluded.last_execution
  returning known.identifier
)
select added.identifier, (added.job).id as job_id
from (
  -- add_job sits in the select list, after the join: it runs only for claimed ids
  -- (a volatile target list also keeps this subquery from being flattened).
  select wanted.identifier, {s}.add_job(
    wanted.task, wanted.payload, wanted.queue_name, $9::timestamptz, wanted.max_attempts,
    wanted.job_key, wanted.priority, null::text[], wanted.job_key_mode
  ) as job
  from wanted
  join claimed on claimed.identifier = wanted.identifier
  order by wanted.position
) as added
""",
    "SCHEDULE_CRON_JOBS",
)
