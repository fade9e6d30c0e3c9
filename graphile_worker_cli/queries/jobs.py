"""SQL of the jobs API (``WorkerUtils``, ``SyncWorkerUtils``): adding, settling and
inspecting jobs.

Business rules live in the schema's own functions (``add_job``, ``add_jobs``,
``complete_jobs``...), so Node, SQL and Python callers behave the same; these statements only
call them and resolve the names the rows point to.

The statements run on every driver gw accepts a connection of (asyncpg, psycopg, psycopg2,
Django, SQLAlchemy), so each one fixes the types of what it returns: the JSON columns come
back as text (a driver that decodes JSON itself would turn the payload ``"42"`` into
``42``), and cleanup returns its counts as rows rather than in a command status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphile_worker_cli.queries import Query

if TYPE_CHECKING:
    from graphile_worker_cli import job


def _job_columns(alias: str) -> str:
    """The ``_private_jobs`` columns in table order (``job.JOB_COLUMNS``), JSON as text."""
    p = f"{alias}."
    return (
        f"{p}id, {p}job_queue_id, {p}task_id, {p}payload::text as payload, {p}priority,"
        f" {p}run_at, {p}attempts, {p}max_attempts, {p}last_error, {p}created_at,"
        f" {p}updated_at, {p}key, {p}locked_at, {p}locked_by, {p}revision,"
        f" {p}flags::text as flags"
    )


_ADD_JOB_CALL = """{s}.add_job(
  identifier => $1::text,
  payload => $2::json,
  queue_name => $3::text,
  run_at => $4::timestamptz,
  max_attempts => $5::int,
  job_key => $6::text,
  priority => $7::int,
  flags => $8::text[],
  job_key_mode => $9::text
)"""


def add_job_args(identifier: str, payload_json: str, spec: job.JobSpec) -> tuple[Any, ...]:
    """$1..$9 of ADD_JOB and ADD_JOB_CHECKED."""
    return (
        identifier,
        payload_json,
        spec.queue_name,
        spec.run_at,
        spec.max_attempts,
        spec.job_key,
        spec.priority,
        list(spec.flags) if spec.flags is not None else None,
        spec.job_key_mode.value if spec.job_key_mode is not None else None,
    )


# add_job: $1 identifier, $2 payload (JSON text), $3 queue_name, $4 run_at, $5 max_attempts,
# $6 job_key, $7 priority, $8 flags, $9 job_key_mode. Returns the job row, or a row of nulls
# when the keyed job was locked between the function's two steps (the reference's race).
ADD_JOB = Query(
    """
select """
    + _job_columns("added")
    + " from "
    + _ADD_JOB_CALL
    + " as added\n",
    "ADD_JOB",
)

# ADD_JOB after the schema check of `migrate.check_schema`, in one statement (what `gw
# add-job` and `quick_add_job` run on a connection of their own): $1..$9 as ADD_JOB, $10 the
# latest migration gw knows. The job is added only when the ledger's latest step is at
# least $10 and no breaking step is newer (CASE decides before add_job is called); else the
# job columns are null and `schema_ok` false. `schema_ok` is null without any step.
ADD_JOB_CHECKED = Query(
    """
with status as materialized (
  select max(id) as latest, max(id) filter (where breaking) as latest_breaking
  from {s}.migrations
), added as materialized (
  select case when status.latest >= $10::int
                and coalesce(status.latest_breaking, 0) <= $10::int
    then """
    + _ADD_JOB_CALL
    + """ end as job
  from status
)
select status.latest >= $10::int and coalesce(status.latest_breaking, 0) <= $10::int
         as schema_ok, """
    + _job_columns("(added.job)")
    + """
from status, added
""",
    "ADD_JOB_CHECKED",
)

# add_jobs: $1 JSON array of job_spec objects, $2 job_key_preserve_run_at.
ADD_JOBS = Query(
    """
select """
    + _job_columns("added")
    + """ from {s}.add_jobs(
  array(select json_populate_recordset(null::{s}.job_spec, $1::json)),
  $2::boolean
) as added
""",
    "ADD_JOBS",
)

# Names of tasks ($1 ids) and queues ($2 ids), in a statement of its own so it sees rows
# that add_job created in the statement before.
RESOLVE_NAMES = Query(
    """
select 'task' as kind, id, identifier as name
from {s}._private_tasks where id = any($1::int[])
union all
select 'queue' as kind, id, queue_name as name
from {s}._private_job_queues where id = any($2::int[])
""",
    "RESOLVE_NAMES",
)

_WITH_NAMES = (
    """
select """
    + _job_columns("jobs")
    + """, tasks.identifier as task_identifier, job_queues.queue_name
from changed as jobs
left join {s}._private_tasks as tasks on tasks.id = jobs.task_id
left join {s}._private_job_queues as job_queues on job_queues.id = jobs.job_queue_id
order by jobs.id
"""
)

# complete_jobs: $1 job ids. Deletes unlocked (or stale-locked) jobs, returns them.
COMPLETE_JOBS = Query(
    "with changed as (select * from {s}.complete_jobs($1::bigint[]))" + _WITH_NAMES,
    "COMPLETE_JOBS",
)

# $1 the schema's name (unquoted). Whether the schema has the history state (gw migration 5),
# so the settling statements below may name it.
HISTORY_STATE_PRESENT = Query(
    "select to_regclass(format('%I._gw_history_state', $1::text)) is not null as present",
    "HISTORY_STATE_PRESENT",
)

HISTORY_ON_WITHIN = "1 hour"
"""How recently a worker with history_retention must have said so (its upkeep, once a
minute) for a job settled by hand to be recorded."""

# Jobs settled by hand recorded in _gw_job_history, as a worker records the jobs it settles,
# while a worker with history on has said so lately: SETTLED names the rows settled
# (_private_jobs columns, as they are now), OUTCOME the outcome, FILTER which rows ended
# their job now. No worker: worker_id null; started_at is the lock, if one was stale.
_RECORDED_BY_HAND = """, recorded as (
  insert into {s}._gw_job_history (finished_at, worker_id, outcome, job_ids,
                                   task_identifiers, queue_names, keys, attempts,
                                   max_attempts, created_at, run_at, started_at, last_errors)
  select statement_timestamp(), null, OUTCOME, array_agg(c.id), array_agg(t.identifier),
         array_agg(q.queue_name), array_agg(c.key), array_agg(c.attempts),
         array_agg(c.max_attempts), array_agg(c.created_at), array_agg(c.run_at),
         array_agg(c.locked_at), array_agg(c.last_error)
    from SETTLED as c
    join {s}._private_tasks as t on t.id = c.task_id
    left join {s}._private_job_queues as q on q.id = c.job_queue_id
   where FILTER and exists (
     select 1 from {s}._gw_history_state as st
      where st.recording_seen_at > now() - interval '""" + HISTORY_ON_WITHIN + """')
  having count(*) > 0
)"""


def _recorded_by_hand(settled: str, outcome: str, finished: str = "true") -> str:
    return (_RECORDED_BY_HAND.replace("SETTLED", settled)
            .replace("OUTCOME", f"'{outcome}'").replace("FILTER", finished))


# COMPLETE_JOBS that also records the jobs while history is on.
COMPLETE_JOBS_RECORDING_HISTORY = Query(
    "with changed as (select * from {s}.complete_jobs($1::bigint[]))"
    + _recorded_by_hand("changed", "completed") + _WITH_NAMES,
    "COMPLETE_JOBS_RECORDING_HISTORY",
)

# A statement reads the rows as they were before it changed them: a job already failed for
# good before permanently_fail_jobs has its record.
_NEWLY_FAILED = """(select c.* from changed as c
           join {s}._private_jobs as before on before.id = c.id
          where before.attempts < before.max_attempts)"""

# permanently_fail_jobs: $1 job ids, $2 reason.
PERMANENTLY_FAIL_JOBS = Query(
    "with changed as (select * from {s}.permanently_fail_jobs($1::bigint[], $2::text))"
    + _WITH_NAMES,
    "PERMANENTLY_FAIL_JOBS",
)

# permanently_fail_jobs with the function's default reason: $1 job ids.
PERMANENTLY_FAIL_JOBS_DEFAULT_REASON = Query(
    "with changed as (select * from {s}.permanently_fail_jobs($1::bigint[]))" + _WITH_NAMES,
    "PERMANENTLY_FAIL_JOBS_DEFAULT_REASON",
)

# PERMANENTLY_FAIL_JOBS(_DEFAULT_REASON) that also record the jobs failed now while history
# is on.
PERMANENTLY_FAIL_JOBS_RECORDING_HISTORY = Query(
    "with changed as (select * from {s}.permanently_fail_jobs($1::bigint[], $2::text))"
    + _recorded_by_hand(_NEWLY_FAILED, "failed") + _WITH_NAMES,
    "PERMANENTLY_FAIL_JOBS_RECORDING_HISTORY",
)
PERMANENTLY_FAIL_JOBS_DEFAULT_REASON_RECORDING_HISTORY = Query(
    "with changed as (select * from {s}.permanently_fail_jobs($1::bigint[]))"
    + _recorded_by_hand(_NEWLY_FAILED, "failed") + _WITH_NAMES,
    "PERMANENTLY_FAIL_JOBS_DEFAULT_REASON_RECORDING_HISTORY",
)

# reschedule_jobs: $1 job ids, $2 run_at, $3 priority, $4 attempts, $5 max_attempts.
RESCHEDULE_JOBS = Query(
    "with changed as (select * from {s}.reschedule_jobs($1::bigint[],"
    " run_at => $2::timestamptz, priority => $3::int, attempts => $4::int,"
    " max_attempts => $5::int))" + _WITH_NAMES,
    "RESCHEDULE_JOBS",
)

# remove_job: $1 job key. Returns the deleted (or, if locked, detached) job or nulls.
REMOVE_JOB = Query(
    "with changed as (select * from {s}.remove_job($1::text))" + _WITH_NAMES,
    "REMOVE_JOB",
)

# Cleanup. `not exists` instead of `not in`: a null in the subquery would make `not in`
# match nothing at all.
DELETE_PERMAFAILED_JOBS = Query(
    """
with deleted as (
  delete from {s}._private_jobs as jobs
  where jobs.attempts >= jobs.max_attempts
  and jobs.locked_at is null
  returning 1
)
select count(*) as deleted from deleted
""",
    "DELETE_PERMAFAILED_JOBS",
)

# $1 task identifiers to keep.
GC_TASK_IDENTIFIERS = Query(
    """
with deleted as (
  delete from {s}._private_tasks as tasks
  where not exists (select 1 from {s}._private_jobs as jobs where jobs.task_id = tasks.id)
  and not exists (select 1 from unnest($1::text[]) as keep(identifier)
                  where keep.identifier = tasks.identifier)
  returning 1
)
select count(*) as deleted from deleted
""",
    "GC_TASK_IDENTIFIERS",
)

GC_JOB_QUEUES = Query(
    """
with deleted as (
  delete from {s}._private_job_queues as job_queues
  where job_queues.locked_at is null
  and not exists (select 1 from {s}._private_jobs as jobs
                  where jobs.job_queue_id = job_queues.id)
  returning 1
)
select count(*) as deleted from deleted
""",
    "GC_JOB_QUEUES",
)

_SELECT_JOBS = (
    """
select """
    + _job_columns("jobs")
    + """, tasks.identifier as task_identifier, job_queues.queue_name
from {s}._private_jobs as jobs
left join {s}._private_tasks as tasks on tasks.id = jobs.task_id
left join {s}._private_job_queues as job_queues on job_queues.id = jobs.job_queue_id
"""
)

# get_job: $1 job id.
GET_JOB = Query(
    _SELECT_JOBS + "where jobs.id = $1::bigint",
    "GET_JOB",
)

# get_job by key: $1 job key text (the reference's unique jobs.key).
GET_JOB_BY_KEY = Query(
    _SELECT_JOBS + "where jobs.key = $1::text",
    "GET_JOB_BY_KEY",
)

# list_jobs: $1 task identifier, $2 queue name, $3 state, $4 limit (each filter null = any).
# States: locked (held by a worker), failed (out of attempts, not locked), scheduled
# (available, run_at in the future), ready (available now).
LIST_JOBS = Query(
    _SELECT_JOBS
    + """
where ($1::text is null or tasks.identifier = $1::text)
and ($2::text is null or job_queues.queue_name = $2::text)
and (
  $3::text is null
  or ($3::text = 'locked' and jobs.locked_at is not null)
  or ($3::text = 'failed' and jobs.locked_at is null and jobs.attempts >= jobs.max_attempts)
  or ($3::text = 'scheduled' and jobs.is_available and jobs.run_at > now())
  or ($3::text = 'ready' and jobs.is_available and jobs.run_at <= now())
)
order by jobs.id
limit $4::bigint
""",
    "LIST_JOBS",
)

CANCEL_CHANNEL = "gw:cancel"
"""Notified when running jobs are asked to stop; the payload names them (``ids``), so a gw
worker running none of them need not look (see ``worker.cancel``)."""

# Holders of a notification's ids; past it, the payload says only how many (its size is
# capped at 8000 bytes) and every gw worker looks in _gw_cancel_requests.
CANCEL_NOTIFY_MAX_IDS = 200

# cancel_jobs: $1 job ids bigint[] (distinct), $2 last_error of a cancelled job. One
# statement, so each job is judged under its row lock, as it stands:
# - no lock (or one older than 4 hours, as permanently_fail_jobs): failed for good now;
# - locked by a registered gw worker: a request row, and that worker is notified;
# - locked by anyone else (a reference worker cannot be told): a request row, and the job
#   is marked out of attempts, as the reference's remove_job marks a locked job, so it is
#   never run again whatever that worker does;
# - already out of attempts and not locked: left alone.
# Returns one row per id of $1: job_id, outcome, locked_by.
CANCEL_JOBS = Query(
    """
with targets as (
  select jobs.id, jobs.locked_by,
         jobs.locked_at is not null and jobs.locked_at >= now() - interval '4 hours'
           as running,
         jobs.attempts >= jobs.max_attempts as failed,
         exists (select 1 from {s}._gw_workers as w where w.id = jobs.locked_by)
           as registered
    from {s}._private_jobs as jobs
   where jobs.id = any($1::bigint[])
     for update of jobs
), failed_now as (
  update {s}._private_jobs as jobs
     set last_error = $2::text, attempts = jobs.max_attempts, updated_at = now()
    from targets as t
   where jobs.id = t.id and not t.running and not t.failed
), marked as (
  update {s}._private_jobs as jobs
     set attempts = jobs.max_attempts, updated_at = now()
    from targets as t
   where jobs.id = t.id and t.running and not t.registered
), requested as (
  insert into {s}._gw_cancel_requests as r (job_id, locked_by)
  select t.id, t.locked_by from targets as t where t.running
  on conflict (job_id) do update set locked_by = excluded.locked_by, requested_at = now()
  returning r.job_id
), notified as (
  select pg_notify('"""
    + CANCEL_CHANNEL
    + """', case when count(*) <= """
    + str(CANCEL_NOTIFY_MAX_IDS)
    + """
                  then json_build_object('ids', array_agg(job_id))
                  else json_build_object('count', count(*)) end::text)
    from requested
  having count(*) > 0
)
select wanted.id as job_id,
       case when t.id is null then 'not_found'
            when t.running and t.registered then 'requested'
            when t.running then 'marked'
            when t.failed then 'already_failed'
            else 'cancelled' end as outcome,
       case when t.running then t.locked_by end as locked_by,
       (select count(*) from notified) as notifications
  from unnest($1::bigint[]) with ordinality as wanted(id, position)
  left join targets as t on t.id = wanted.id
 order by wanted.position
""",
    "CANCEL_JOBS",
)

_FAILED_NOW = """
   where jobs.id = t.id and not t.running and not t.failed
), marked as ("""

# CANCEL_JOBS that also records the jobs it failed for good (not running) while history is
# on; a running job is recorded by the worker that ends it, if it records history.
CANCEL_JOBS_RECORDING_HISTORY = Query(
    CANCEL_JOBS.text.replace(_FAILED_NOW, _FAILED_NOW.replace(
        "\n), marked as (",
        "\n  returning jobs.*\n)" + _recorded_by_hand("failed_now", "failed") + ", marked as (",
    )),
    "CANCEL_JOBS_RECORDING_HISTORY",
)
