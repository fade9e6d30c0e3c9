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

# The priorities that have available jobs are found from the high end of the index (gw's
# _gw_jobs_fetch_index, which the planner prefers to the reference's bigger jobs_main_index;
# the low end of each priority holds the entries of taken jobs until a vacuum); with
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
  select jobs.id, jobs.job_queue_id, jobs.priority, jobs.run_atCOLUMNS
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
CHOSEN), locked_queues as (
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
      where q.id = jobs.job_queue_id) end as queue_nameCOUNT
"""

_CHOSEN = """), chosen as (
  -- Jobs without a named queue all go; of each named queue, only its first job (the
  -- jobs without a queue, usually most of a batch, need no sorting for that).
  select c.id, c.job_queue_id from candidates as c where c.job_queue_id is null
  union all
  (select distinct on (c.job_queue_id) c.id, c.job_queue_id
     from candidates as c where c.job_queue_id is not null
    order by c.job_queue_id, c.priority, c.run_at, c.id)
"""

# The same choice, then each task with a limit keeps only its first jobs, as many as it has
# room for: $4 task ids int[], $5 room int[] (the worker's max_concurrency of the task less
# the jobs of it the worker holds). The candidates it leaves out stay as they were: only
# the chosen jobs (and their queues) get locked_by, as with a named queue's other jobs.
_CHOSEN_WITHIN_ROOM = """), one_per_queue as (
  select c.id, c.job_queue_id, c.task_id, c.priority, c.run_at
    from candidates as c where c.job_queue_id is null
  union all
  (select distinct on (c.job_queue_id) c.id, c.job_queue_id, c.task_id, c.priority, c.run_at
     from candidates as c where c.job_queue_id is not null
    order by c.job_queue_id, c.priority, c.run_at, c.id)
), ranked as (
  select o.id, o.job_queue_id, o.task_id,
         row_number() over (partition by o.task_id order by o.priority, o.run_at, o.id) as nth
    from one_per_queue as o
), chosen as (
  select r.id, r.job_queue_id
    from ranked as r
    left join unnest($4::int[], $5::int[]) as room(task_id, jobs) on room.task_id = r.task_id
   where room.jobs is null or r.nth <= room.jobs
"""


def _fetch(*, flags: str, within_room: bool) -> Query:
    columns, chosen = (", jobs.task_id", _CHOSEN_WITHIN_ROOM) if within_room else ("", _CHOSEN)
    # With room, each row also says how many candidates there were: as many as the batch
    # means more jobs may be waiting (the cap may have passed over other tasks' jobs).
    count = ",\n  (select count(*) from candidates) as candidates" if within_room else ""
    return Query(
        _FETCH.replace("COLUMNS", columns).replace("CHOSEN", chosen).replace("FLAGS", flags)
        .replace("COUNT", count)
    )


# $1 worker id, $2 task ids int[], $3 batch size. Locks up to $3 runnable jobs (at most
# one per named queue) for the worker; returns the job rows plus queue_name.
FETCH_JOBS = _fetch(flags="", within_room=False)

# FETCH_JOBS, plus $4 forbidden flags text[]: jobs carrying any of them are skipped. A
# statement of its own so the common fetch keeps a plan without the flags test.
FETCH_JOBS_WITHOUT_FLAGS = _fetch(
    flags="and (jobs.flags ?| $4::text[]) is not true", within_room=False
)

# FETCH_JOBS for a worker with per-task limits (max_concurrency), plus $4 task ids int[]
# and $5 room int[]: at most $5[i] jobs of task $4[i] (see _CHOSEN_WITHIN_ROOM); each row
# also has ``candidates``, the jobs considered. Tasks without room are left out of $2 by
# the worker. Only used when some task has a limit, so the common fetch is unchanged.
FETCH_JOBS_WITHIN_ROOM = _fetch(flags="", within_room=True)

# FETCH_JOBS_WITHIN_ROOM, plus $6 forbidden flags text[].
FETCH_JOBS_WITHIN_ROOM_WITHOUT_FLAGS = _fetch(
    flags="and (jobs.flags ?| $6::text[]) is not true", within_room=True
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

# Job history (``history_retention`` on): a settling CTE ``settled`` returns the columns of
# ``_SETTLED_FOR_HISTORY`` (run_at and started_at as they were for the attempt that ended),
# and ``_RECORDED`` turns the rows that ended their job for good (``FINISHED``) into one
# history row of parallel arrays: one row per statement, not per job, which keeps history
# cheap; and no round trip of its own. Stamped when the statement starts, not the
# transaction (a task's own transaction may have begun long before its completion), so the
# charts' rollup, a minute behind, sees it.
_SETTLED_FOR_HISTORY = """
  returning jobs.id, jobs.job_queue_id, jobs.task_id, jobs.key, jobs.attempts,
            jobs.max_attempts, jobs.created_at, RUN_AT as run_at, STARTED_AT as started_at,
            jobs.last_error"""
_RECORDED = """recorded as (
  insert into {s}._gw_job_history (finished_at, worker_id, outcome, job_ids,
                                   task_identifiers, queue_names, keys, attempts,
                                   max_attempts, created_at, run_at, started_at, last_errors)
  select statement_timestamp(), $1::text, OUTCOME, array_agg(settled.id),
         array_agg(t.identifier),
         array_agg(q.queue_name), array_agg(settled.key), array_agg(settled.attempts),
         array_agg(settled.max_attempts), array_agg(settled.created_at),
         array_agg(settled.run_at), array_agg(settled.started_at),
         array_agg(settled.last_error)
    from settled
    join {s}._private_tasks as t on t.id = settled.task_id
    left join {s}._private_job_queues as q on q.id = settled.job_queue_id
   where FINISHED
  having count(*) > 0
)"""
_RECORDING_HISTORY = (
    "\nwith settled as (SETTLE" + _SETTLED_FOR_HISTORY + "\n), " + _RECORDED + """
update {s}._private_job_queues as q set locked_by = null, locked_at = null
  from settled where q.id = settled.job_queue_id and q.locked_by = $1::text
"""
)
_COMPLETED = {"RUN_AT": "jobs.run_at", "STARTED_AT": "jobs.locked_at",
              "OUTCOME": "'completed'", "FINISHED": "true"}
# A failure's update joins the row as it was (``old``) for its run_at and locked_at.
_FAILED = {"RUN_AT": "old.run_at", "STARTED_AT": "old.locked_at", "OUTCOME": "'failed'",
           "FINISHED": "settled.attempts >= settled.max_attempts"}


def _filled(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def _recording_history(settle: str, *, completed: bool) -> str:
    """``settle`` (a statement for ``_UNLOCKING_QUEUES``) that also writes job history."""
    return _filled(_RECORDING_HISTORY.replace("SETTLE", settle),
                   _COMPLETED if completed else _FAILED)


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

def _counting(settle: str) -> str:
    """A settling statement (``_UNLOCKING_QUEUES`` or ``_recording_history``, whose last
    step unlocks the queues) that returns how many jobs it settled instead."""
    head, unlock, tail = settle.rpartition("\nupdate {s}._private_job_queues as q")
    if not unlock:
        raise ValueError("a settling statement ends by unlocking the queues")
    return f"{head}, unlocked as ({unlock}{tail})\nselect count(*)::int from settled\n"


# $1 worker id, $2 job id bigint, $3 attempt int. Completes one job inside its task's own
# transaction (``ctx.transaction()``): as COMPLETE_JOBS, and only while the job is still at
# this attempt (an earlier run of the job cannot complete a later one). Returns how many
# jobs it deleted: 0 when the job is no longer this worker's, so the caller rolls back.
_COMPLETE_ONE = """
with settled as (
  delete from {s}._private_jobs as jobs
   where jobs.id = $2::bigint and jobs.locked_by = $1::text and jobs.attempts = $3::int
  RETURNING
), unlocked as (
  update {s}._private_job_queues as q set locked_by = null, locked_at = null
    from settled where q.id = settled.job_queue_id and q.locked_by = $1::text
)HISTORY
select count(*)::int from settled
"""
COMPLETE_JOB_IN_TRANSACTION = Query(
    _COMPLETE_ONE.replace("RETURNING", "returning jobs.job_queue_id").replace("HISTORY", "")
)

# COMPLETE_JOB_IN_TRANSACTION that also records the job in _gw_job_history.
COMPLETE_JOB_IN_TRANSACTION_RECORDING_HISTORY = Query(_filled(
    _COMPLETE_ONE.replace("\n  RETURNING", _SETTLED_FOR_HISTORY)
    .replace("HISTORY", ", " + _RECORDED),
    _COMPLETED,
))

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

# How long before a reset's snapshot a lock it could not see may have been taken: a lock's
# locked_at is its transaction's start, and a transaction still open when the reset began
# commits its locks after the reset looked. Fetches are single statements; an hour is slack.
_UNSEEN_LOCK_SLACK = "interval '1 hour'"

# $1 worker id. The stale-lock reset of RESET_STALE_LOCKS, done only when due: gw's workers
# share one `reset_stale_locks` row in _gw_maintenance whose due_at is the earliest moment
# any lock held at the last reset can pass four hours (a reset sooner would unlock nothing).
# Not due: no scan of the jobs table. Due: one scan finds every locked job (locked jobs are
# in no index), unlocks those over four hours old and moves due_at to the oldest remaining
# lock plus four hours (or now less the slack, for locks the scan could not see). A second
# caller at the same moment waits for the first and then finds it not due. Returns `known`
# (false: the row is missing), `ran`, `jobs_reset`, `queues_reset`, `due_at`.
RESET_STALE_LOCKS_WHEN_DUE = Query(
    """
with claim as (
  select m.task from {s}._gw_maintenance as m
   where m.task = 'reset_stale_locks' and (m.due_at is null or m.due_at <= now())
   for update
), locked_jobs as materialized (
  select jobs.id, jobs.locked_at from {s}._private_jobs as jobs
   where jobs.locked_at is not null and exists (select 1 from claim)
), locked_queues as materialized (
  select q.id, q.locked_at from {s}._private_job_queues as q
   where q.locked_at is not null and exists (select 1 from claim)
), jobs_reset as (
  update {s}._private_jobs as jobs
     set locked_at = null, locked_by = null, run_at = greatest(jobs.run_at, now())
   where jobs.id = any(array(select l.id from locked_jobs as l
                              where l.locked_at < now() - interval '4 hours'))
     and jobs.locked_at < now() - interval '4 hours'
  returning jobs.id
), queues_reset as (
  update {s}._private_job_queues as q set locked_at = null, locked_by = null
   where q.id = any(array(select l.id from locked_queues as l
                           where l.locked_at < now() - interval '4 hours'))
     and q.locked_at < now() - interval '4 hours'
  returning q.id
), scheduled as (
  update {s}._gw_maintenance as m
     set due_at = least(
           (select min(l.locked_at) from locked_jobs as l
             where l.locked_at >= now() - interval '4 hours'),
           (select min(l.locked_at) from locked_queues as l
             where l.locked_at >= now() - interval '4 hours'),
           now() - """ + _UNSEEN_LOCK_SLACK + """
         ) + interval '4 hours',
         claimed_by = $1::text, claimed_at = now(), finished_at = now(),
         runs = m.runs + 1
    from claim
   where m.task = claim.task
  returning m.due_at
)
select
  exists (select 1 from {s}._gw_maintenance where task = 'reset_stale_locks') as known,
  exists (select 1 from claim) as ran,
  (select count(*) from jobs_reset)::int as jobs_reset,
  (select count(*) from queues_reset)::int as queues_reset,
  (select due_at from scheduled) as due_at"""
)

# No parameters. Puts back a missing `reset_stale_locks` row, due at once.
ENSURE_STALE_LOCK_RESET_ROW = Query(
    """
insert into {s}._gw_maintenance (task, due_at) values ('reset_stale_locks', null)
on conflict (task) do nothing"""
)

# One round trip: shows whether a connection is still alive.
PING = Query("select 1")

# $1 channel text, $2 payload text: the listen probe's notification (see worker.listen_probe).
NOTIFY = Query("select pg_notify($1, $2)")

# $1 worker id, $2 last_error of a cancelled job. The cancel requests (gw migration 3) as
# one worker sees them, tidied first: a requested job nobody holds any more (its worker
# handed it back, died and was swept, or was a reference worker that let it go) is failed
# for good now, and requests for jobs that are gone (completed) are dropped. Rows locked
# elsewhere (a fetch, another worker's check) are skipped, to be tidied next time. Returns
# job_id of every request left and ``mine``: whether this worker holds that job.
CANCEL_CHECK = Query(
    """
with finished as (
  update {s}._private_jobs as jobs
     set last_error = $2::text, attempts = jobs.max_attempts, updated_at = now()
   where jobs.id in (select j.id from {s}._private_jobs as j
                       join {s}._gw_cancel_requests as r on r.job_id = j.id
                      where j.locked_at is null
                      order by j.id
                        for update of j skip locked)
  returning jobs.id
), forgotten as (
  delete from {s}._gw_cancel_requests as r
   where r.job_id in (select id from finished)
      or not exists (select 1 from {s}._private_jobs as jobs where jobs.id = r.job_id)
)
select r.job_id, jobs.locked_by is not distinct from $1::text as mine
  from {s}._gw_cancel_requests as r
  join {s}._private_jobs as jobs on jobs.id = r.job_id
 where r.job_id not in (select id from finished)
 order by r.job_id
""",
    "CANCEL_CHECK",
)

# CANCEL_CHECK that also records the jobs it fails for good in _gw_job_history (outcome
# failed; no started_at: nobody held them), for a worker with history on.
CANCEL_CHECK_RECORDING_HISTORY = Query(
    CANCEL_CHECK.text.replace(
        "\n  returning jobs.id\n), forgotten as (",
        _filled(_SETTLED_FOR_HISTORY, {"RUN_AT": "jobs.run_at",
                                       "STARTED_AT": "null::timestamptz"})
        + "\n), " + _filled(_RECORDED.replace("settled", "finished"),
                            {"OUTCOME": "'failed'", "FINISHED": "true"})
        + ", forgotten as (",
    ),
    "CANCEL_CHECK_RECORDING_HISTORY",
)

# $1 job ids bigint[] (a fetch's). Those someone asked to cancel: a job whose worker let it
# go without acting on its request must be failed, not run (see worker.fetch_loop).
REQUESTED_AMONG = Query(
    "select r.job_id from {s}._gw_cancel_requests as r where r.job_id = any($1::bigint[])",
    "REQUESTED_AMONG",
)

# $1 worker id, $2 job ids bigint[], $3 last_error of a cancelled job. The worker's cancelled
# jobs, still locked by it, failed for good (attempts = max_attempts, as
# permanently_fail_jobs leaves a job), their named queues unlocked and their requests
# dropped. Guarded by the lock like every settling statement: safe to repeat.
_FINISH_CANCELLED = """
with settled as (
  update {s}._private_jobs as jobs
     set last_error = $3::text, attempts = jobs.max_attempts, locked_by = null,
         locked_at = null, updated_at = now()OLD
   where jobs.id = any($2::bigint[]) and jobs.locked_by = $1::text
  RETURNING
), unlocked as (
  update {s}._private_job_queues as q set locked_by = null, locked_at = null
    from settled where q.id = settled.job_queue_id and q.locked_by = $1::text
)HISTORY
delete from {s}._gw_cancel_requests as r using settled where r.job_id = settled.id
returning r.job_id
"""


def _finish_cancelled(finish: str, *, history: bool) -> str:
    if not history:
        return (finish.replace("OLD", "")
                .replace("RETURNING", "returning jobs.id, jobs.job_queue_id")
                .replace("HISTORY", ""))
    return _filled(
        finish
        .replace("OLD", "\n    from {s}._private_jobs as old")
        .replace("jobs.locked_by = $1::text\n", "jobs.locked_by = $1::text and old.id = jobs.id\n")
        .replace("\n  RETURNING", _SETTLED_FOR_HISTORY)
        .replace("HISTORY", ", " + _RECORDED),
        _FAILED,
    )


FINISH_CANCELLED = Query(_finish_cancelled(_FINISH_CANCELLED, history=False), "FINISH_CANCELLED")

# FINISH_CANCELLED that also records the jobs in _gw_job_history (outcome failed).
FINISH_CANCELLED_RECORDING_HISTORY = Query(
    _finish_cancelled(_FINISH_CANCELLED, history=True), "FINISH_CANCELLED_RECORDING_HISTORY"
)

# FINISH_CANCELLED for only those of the jobs someone asked to cancel (a hand-back at
# shutdown applies the requests first); returns their ids (job_id).
_FINISH_REQUESTED = _FINISH_CANCELLED.replace(
    "jobs.locked_by = $1::text\n",
    "jobs.locked_by = $1::text\n"
    "     and jobs.id in (select c.job_id from {s}._gw_cancel_requests as c)\n",
)
FINISH_REQUESTED = Query(_finish_cancelled(_FINISH_REQUESTED, history=False), "FINISH_REQUESTED")

# FINISH_REQUESTED that also records the jobs in _gw_job_history (outcome failed).
FINISH_REQUESTED_RECORDING_HISTORY = Query(
    _finish_cancelled(_FINISH_REQUESTED, history=True), "FINISH_REQUESTED_RECORDING_HISTORY"
)

# $1 unescaped schema name. Whether the schema has gw's cancel requests (gw migration 3):
# a worker on an older schema (--no-migrate) runs without cancel support.
HAS_CANCEL_REQUESTS = Query(
    "select to_regclass(quote_ident($1::text) || '._gw_cancel_requests') is not null",
    "HAS_CANCEL_REQUESTS",
)
