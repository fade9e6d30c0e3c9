"""The statements the worker issues: register tasks, fetch, settle, hand back, reset locks.

Each settling statement is guarded by ``locked_by = <this worker>``: a job whose lock we
no longer hold is not ours to touch, and re-running a statement whose first attempt landed
(but whose reply was lost with the connection) changes nothing. That makes every write
here safe to retry until it lands. ``graphile_worker_cli.worker.store`` runs them.
"""

from __future__ import annotations

from graphile_worker_cli.queries import Query

JOBS_INSERT_CHANNEL = "jobs:insert"
"""Notified (by the schema's functions, and by the recovery sweep) when jobs are added."""

# $1 identifiers text[]: adds the ones without a row.
ENSURE_TASKS = Query(
    """
insert into {s}._private_tasks as tasks (identifier)
select u.i from unnest($1::text[]) as u(i)
where not exists (select 1 from {s}._private_tasks as t where t.identifier = u.i)
on conflict do nothing"""
)

# $1 identifiers text[]. Returns id, identifier.
TASK_IDS = Query(
    "select id, identifier from {s}._private_tasks where identifier = any($1::text[])"
)

# The priorities that have available jobs are found from the high end of the index (the
# low end of each priority holds the entries of taken jobs until a vacuum); with
# ``priority = any(...)`` the scan stops at the first job not due yet in each priority
# instead of reading every job scheduled for later.
_FETCH = """
with recursive priorities as (
  (select jobs.priority from {s}._private_jobs as jobs
    where jobs.is_available order by jobs.priority desc limit 1)
  union all
  select (select jobs.priority from {s}._private_jobs as jobs
           where jobs.is_available and jobs.priority < priorities.priority
           order by jobs.priority desc limit 1)
    from priorities where priorities.priority is not null
), candidates as (
  select jobs.id, jobs.job_queue_id, jobs.priority, jobs.run_at
    from {s}._private_jobs as jobs
   where jobs.is_available
     and jobs.priority = any(array(select p.priority from priorities as p
                                    where p.priority is not null))
     and jobs.run_at <= now()
     and jobs.task_id = any($2::int[])
     and (jobs.job_queue_id is null
          or jobs.job_queue_id in (select q.id from {s}._private_job_queues as q
                                    where q.is_available for update skip locked))
     FLAGS
   order by jobs.priority, jobs.run_at
   limit $3
   for update skip locked
), chosen as (
  -- Jobs without a named queue all go; of each named queue, only its first job (the
  -- jobs without a queue, usually most of a batch, need no sorting for that).
  select c.id, c.job_queue_id from candidates as c where c.job_queue_id is null
  union all
  (select distinct on (c.job_queue_id) c.id, c.job_queue_id
     from candidates as c where c.job_queue_id is not null
    order by c.job_queue_id, c.priority, c.run_at, c.id)
), locked_queues as (
  update {s}._private_job_queues as q set locked_by = $1::text, locked_at = now()
    from chosen where q.id = chosen.job_queue_id
)
update {s}._private_jobs as jobs
   set attempts = jobs.attempts + 1, locked_by = $1::text, locked_at = now()
  from chosen
 where jobs.id = chosen.id
returning jobs.*,
  case when jobs.job_queue_id is not null then
    (select q.queue_name from {s}._private_job_queues as q
      where q.id = jobs.job_queue_id) end as queue_name
"""

# $1 worker id, $2 task ids int[], $3 batch size. Locks up to $3 runnable jobs (at most
# one per named queue) for the worker; returns the job rows plus queue_name.
FETCH_JOBS = Query(_FETCH.replace("FLAGS", ""))

# FETCH_JOBS, plus $4 forbidden flags text[]: jobs carrying any of them are skipped. A
# statement of its own so the common fetch keeps a plan without the flags test.
FETCH_JOBS_WITHOUT_FLAGS = Query(
    _FETCH.replace("FLAGS", "and (jobs.flags ?| $4::text[]) is not true")
)

# ``settle`` (a delete or update of ``{s}._private_jobs as jobs`` guarded by $1 = worker
# id), then the named queues of the jobs it touched that this worker holds are unlocked.
_UNLOCKING_QUEUES = """
with settled as (SETTLE
  returning jobs.job_queue_id
)
update {s}._private_job_queues as q set locked_by = null, locked_at = null
  from settled where q.id = settled.job_queue_id and q.locked_by = $1::text
"""

# ``_UNLOCKING_QUEUES`` that also records the jobs it finished in ``_gw_job_history``
# (``history_retention`` on): ``settle`` returns the job's columns under the names below
# (run_at and started_at as they were for the attempt that ended), and ``finished`` says
# which rows ended the job for good. They become one history row of parallel arrays (one
# row per statement, not per job: that keeps history cheap). One statement, so history
# costs no round trip either.
_RECORDING_HISTORY = """
with settled as (SETTLE
  returning jobs.id, jobs.job_queue_id, jobs.task_id, jobs.key, jobs.attempts,
            jobs.max_attempts, jobs.created_at, RUN_AT as run_at, STARTED_AT as started_at,
            jobs.last_error
), recorded as (
  insert into {s}._gw_job_history (worker_id, outcome, job_ids, task_identifiers,
                                   queue_names, keys, attempts, max_attempts, created_at,
                                   run_at, started_at, last_errors)
  select $1::text, OUTCOME, array_agg(settled.id), array_agg(t.identifier),
         array_agg(q.queue_name), array_agg(settled.key), array_agg(settled.attempts),
         array_agg(settled.max_attempts), array_agg(settled.created_at),
         array_agg(settled.run_at), array_agg(settled.started_at),
         array_agg(settled.last_error)
    from settled
    join {s}._private_tasks as t on t.id = settled.task_id
    left join {s}._private_job_queues as q on q.id = settled.job_queue_id
   where FINISHED
  having count(*) > 0
)
update {s}._private_job_queues as q set locked_by = null, locked_at = null
  from settled where q.id = settled.job_queue_id and q.locked_by = $1::text
"""


def _recording_history(settle: str, *, completed: bool) -> str:
    """``settle`` (a statement for ``_UNLOCKING_QUEUES``) that also writes job history.
    A failure's update joins the row as it was (``old``): its run_at and locked_at."""
    if completed:
        columns = {"RUN_AT": "jobs.run_at", "STARTED_AT": "jobs.locked_at",
                   "OUTCOME": "'completed'", "FINISHED": "true"}
    else:
        columns = {"RUN_AT": "old.run_at", "STARTED_AT": "old.locked_at",
                   "OUTCOME": "'failed'", "FINISHED": "settled.attempts >= settled.max_attempts"}
    text = _RECORDING_HISTORY.replace("SETTLE", settle)
    for placeholder, value in columns.items():
        text = text.replace(placeholder, value)
    return text


# Joined into a failure's update: the row as the statement found it (a joined table is read
# as of the statement's start), for the run_at and locked_at of the attempt that ended.
_OLD_ROW = """
    join {s}._private_jobs as old on old.id = f.id"""

RETRY_DELAY = "exp(least(ATTEMPTS, 10)) * interval '1 second'"
"""The reference's retry delay after a failure, as SQL: ATTEMPTS is the attempts made (the
same rule as its ``fail_jobs`` function), so every gw statement that reschedules a failed
job waits as a Node worker would."""

# $1 worker id, $2 job ids bigint[]: deletes the finished jobs still locked by the worker.
_COMPLETE = """
  delete from {s}._private_jobs as jobs
   where jobs.id = any($2::bigint[]) and jobs.locked_by = $1::text"""
COMPLETE_JOBS = Query(_UNLOCKING_QUEUES.replace("SETTLE", _COMPLETE))

# COMPLETE_JOBS that also records each job in _gw_job_history (outcome completed).
COMPLETE_JOBS_RECORDING_HISTORY = Query(_recording_history(_COMPLETE, completed=True))

# $1 worker id, $2 job ids bigint[], $3 messages text[], $4 replacement payloads json[]
# (null: keep), $5 attempt numbers int[] (null: any). Records each failed attempt:
# last_error, exponential backoff, lock cleared.
_FAIL = """
  update {s}._private_jobs as jobs
     set last_error = f.message,
         run_at = greatest(now(), jobs.run_at)
                  + """ + RETRY_DELAY.replace("ATTEMPTS", "jobs.attempts") + """,
         locked_by = null,
         locked_at = null,
         payload = coalesce(f.payload, jobs.payload)
    from unnest($2::bigint[], $3::text[], $4::json[], $5::int[])
         as f(id, message, payload, attempts)OLD
   where jobs.id = f.id and jobs.locked_by = $1::text
     and (f.attempts is null or jobs.attempts = f.attempts)"""
FAIL_JOBS = Query(_UNLOCKING_QUEUES.replace("SETTLE", _FAIL.replace("OLD", "")))

# FAIL_JOBS that also records the jobs out of attempts in _gw_job_history (outcome failed).
FAIL_JOBS_RECORDING_HISTORY = Query(
    _recording_history(_FAIL.replace("OLD", _OLD_ROW), completed=False)
)

# FAIL_JOBS with the next run time chosen by the task: $6 run_at timestamptz[] (null: see
# $7), $7 delay in seconds float8[] (null: the exponential backoff), $8 permanent bool[]
# (true: attempts = max_attempts, as permanently_fail_jobs leaves a job). A statement of its
# own so the common failure keeps its plan.
_FAIL_SCHEDULED = """
  update {s}._private_jobs as jobs
     set last_error = f.message,
         run_at = coalesce(f.run_at, now() + f.delay * interval '1 second',
                           greatest(now(), jobs.run_at)
                           + """ + RETRY_DELAY.replace("ATTEMPTS", "jobs.attempts") + """),
         attempts = case when f.permanent then jobs.max_attempts else jobs.attempts end,
         locked_by = null,
         locked_at = null,
         payload = coalesce(f.payload, jobs.payload)
    from unnest($2::bigint[], $3::text[], $4::json[], $5::int[], $6::timestamptz[],
                $7::float8[], $8::bool[])
         as f(id, message, payload, attempts, run_at, delay, permanent)OLD
   where jobs.id = f.id and jobs.locked_by = $1::text
     and (f.attempts is null or jobs.attempts = f.attempts)"""
FAIL_JOBS_SCHEDULED = Query(
    _UNLOCKING_QUEUES.replace("SETTLE", _FAIL_SCHEDULED.replace("OLD", ""))
)

# FAIL_JOBS_SCHEDULED that also records the jobs out of attempts in _gw_job_history.
FAIL_JOBS_SCHEDULED_RECORDING_HISTORY = Query(
    _recording_history(_FAIL_SCHEDULED.replace("OLD", _OLD_ROW), completed=False)
)

# $1 worker id, $2 job ids bigint[], $3 delay in seconds float8 (null: leave run_at).
# Hands the jobs back without using up an attempt.
RETURN_JOBS = Query(
    _UNLOCKING_QUEUES.replace("SETTLE", """
  update {s}._private_jobs as jobs
     set attempts = greatest(0, jobs.attempts - 1),
         locked_by = null,
         locked_at = null,
         run_at = case when $3::float8 is null then jobs.run_at
                       else greatest(jobs.run_at, now() + $3::float8 * interval '1 second') end
   where jobs.id = any($2::bigint[]) and jobs.locked_by = $1::text""")
)

# $1 worker id, $2 ids bigint[] of the jobs the worker holds (kept). Hands back every
# other job locked by the worker (a fetch whose reply was lost with its connection).
RETURN_ORPHANS = Query(
    _UNLOCKING_QUEUES.replace("SETTLE", """
  update {s}._private_jobs as jobs
     set attempts = greatest(0, jobs.attempts - 1), locked_by = null, locked_at = null
   where jobs.locked_by = $1::text and not (jobs.id = any($2::bigint[]))""")
)

# No parameters. Unlocks jobs and queues whose lock is older than four hours (a crashed
# worker's), as the reference does.
RESET_STALE_LOCKS = Query(
    """
with jobs_reset as (
  update {s}._private_jobs as jobs
     set locked_at = null, locked_by = null, run_at = greatest(jobs.run_at, now())
   where jobs.locked_at < now() - interval '4 hours'
)
update {s}._private_job_queues as q set locked_at = null, locked_by = null
 where q.locked_at < now() - interval '4 hours'
"""
)

# One round trip: shows whether a connection is still alive.
PING = Query("select 1")

# $1 channel text, $2 payload text: the listen probe's notification (see worker.listen_probe).
NOTIFY = Query("select pg_notify($1, $2)")
