"""Job history (``history_retention``): reading it, the dashboard's chart series, and the
periodic upkeep (queue-depth samples, bounded pruning) one worker at a time.

The rows themselves are written by the worker's settling statements
(``queries.worker.*_RECORDING_HISTORY``), in the statement that completes or fails a batch:
one row of parallel arrays per batch; the view ``_gw_job_history_entries`` reads it as one
row per job.
"""

from __future__ import annotations

import hashlib

from graphile_worker_cli.queries import Query


def maintenance_lock_key(schema: str) -> int:
    """The advisory lock key that lets one worker at a time sample and prune ``schema``'s
    history (a signed 64-bit value, as the bigint advisory lock functions want)."""
    digest = hashlib.blake2b(f"gw.history:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# $1 lock key, $2 statement timeout (text such as '30s'). Opens an upkeep transaction: its
# statements are bounded, and only one worker of the fleet holds the lock. Returns `locked`.
BEGIN_MAINTENANCE = Query(
    """
select set_config('statement_timeout', $2::text, true),
       pg_try_advisory_xact_lock($1::bigint) as locked""",
    "BEGIN_MAINTENANCE",
)

# No parameters. Counts the jobs by state into this minute's sample, unless this minute has
# one already. States as job.JobState: locked, failed (out of attempts), scheduled, ready.
SAMPLE_QUEUE_DEPTH = Query(
    """
insert into {s}._gw_queue_samples (sampled_at, ready, scheduled, locked, failed)
select date_trunc('minute', now()),
       count(*) filter (where jobs.is_available and jobs.run_at <= now()),
       count(*) filter (where jobs.is_available and jobs.run_at > now()),
       count(*) filter (where jobs.locked_at is not null),
       count(*) filter (where jobs.locked_at is null and jobs.attempts >= jobs.max_attempts)
  from {s}._private_jobs as jobs
 where not exists (select 1 from {s}._gw_queue_samples as s
                    where s.sampled_at = date_trunc('minute', now()))
on conflict (sampled_at) do nothing""",
    "SAMPLE_QUEUE_DEPTH",
)

# $1 retention seconds, $2 most history rows (each a batch of jobs) to delete. Deletes up to
# $2 rows finished before the retention; returns `deleted` (rows) and `jobs` (their jobs).
PRUNE_HISTORY = Query(
    """
with gone as (
  delete from {s}._gw_job_history
   where ctid = any(array(
     select h.ctid from {s}._gw_job_history as h
      where h.finished_at < now() - $1::float8 * interval '1 second'
      limit $2::int))
  returning cardinality(job_ids) as jobs
)
select count(*)::int as deleted, coalesce(sum(jobs), 0)::bigint as jobs from gone""",
    "PRUNE_HISTORY",
)

# $1 retention seconds, $2 most rows to delete. The same for the depth samples.
PRUNE_SAMPLES = Query(
    """
with gone as (
  delete from {s}._gw_queue_samples
   where sampled_at = any(array(
     select s.sampled_at from {s}._gw_queue_samples as s
      where s.sampled_at < now() - $1::float8 * interval '1 second'
      limit $2::int))
  returning 1
)
select count(*)::int as deleted from gone""",
    "PRUNE_SAMPLES",
)

# $1 task identifier (null: any), $2 finished at or after (null: any time), $3 only failed
# jobs (bool), $4 limit. One row per job, newest first; duration and wait in seconds.
LIST_HISTORY = Query(
    """
select e.job_id, e.task_identifier, e.queue_name, e.key, e.attempts, e.max_attempts,
       e.created_at, e.run_at, e.started_at, e.finished_at, e.worker_id, e.outcome,
       e.last_error,
       extract(epoch from e.finished_at - e.started_at)::float8 as duration,
       case when e.started_at is not null
            then greatest(0, extract(epoch from e.started_at - e.run_at))::float8 end as wait
  from {s}._gw_job_history_entries as e
 where ($1::text is null or e.task_identifier = $1::text)
   and ($2::timestamptz is null or e.finished_at >= $2::timestamptz)
   and (not $3::bool or e.outcome = 'failed')
 order by e.finished_at desc, e.job_id desc
 limit $4::bigint""",
    "LIST_HISTORY",
)

WAIT_EDGES: tuple[float, ...] = tuple(float(10.0 ** (j / 10)) for j in range(-30, 51))
"""Queue-wait histogram edges in seconds (1 ms to 10^5 s, ten a decade), as migration 5
describes ``_gw_job_history_minutes.wait_counts``: element 1 counts waits below the first
edge, element i + 1 those from edge i up to edge i + 1, the last those from the last edge
on. Fixed: the rolled-up rows were counted with them."""

# The history of [LO, HI) (timestamptz expressions) per minute: jobs completed and failed for
# good, the p50/p95 of their queue wait and the waits by bucket of WAIT_EDGES (EDGES, a
# float8[] expression). A job without started_at (settled by hand) has no wait.
_PER_MINUTE = """
waits as (
  select date_trunc('minute', e.finished_at) as minute, e.outcome,
         case when e.started_at is not null
              then greatest(0, extract(epoch from e.started_at - e.run_at))::float8 end as wait
    from {s}._gw_job_history_entries as e
   where e.finished_at >= LO and e.finished_at < HI
), per_minute as (
  select w.minute,
         count(*) filter (where w.outcome = 'completed')::int as completed,
         count(*) filter (where w.outcome = 'failed')::int as failed,
         percentile_cont(0.5) within group (order by w.wait) as wait_p50,
         percentile_cont(0.95) within group (order by w.wait) as wait_p95
    from waits as w
   group by w.minute
), per_bucket as (
  select w.minute, width_bucket(w.wait, EDGES) as bucket, count(*)::int as n
    from waits as w
   where w.wait is not null
   group by 1, 2
), histograms as (
  select m.minute, array_agg(coalesce(b.n, 0) order by k.k) as wait_counts
    from per_minute as m
   cross join generate_series(0, cardinality(EDGES)) as k(k)
    left join per_bucket as b on b.minute = m.minute and b.bucket = k.k
   group by m.minute
), minutes as (
  select m.minute, m.completed, m.failed, m.wait_p50, m.wait_p95, h.wait_counts
    from per_minute as m
    join histograms as h on h.minute = m.minute
)"""

# $1 grace seconds, $2 most seconds of history per statement, $3 WAIT_EDGES, $4 retention
# seconds. Rolls the closed minutes after _gw_history_state.rolled_until up into
# _gw_job_history_minutes: up to the minute $1 seconds ago (a record lands when its
# statement commits, stamped when it started), at most $2 seconds of them, starting at the
# first minute with history within the retention. Returns
# `minutes` (rows written), `rolled_until` and `behind` (more closed minutes are waiting).
ROLL_UP_HISTORY = Query(
    """
with bounds as (
  select greatest(coalesce(date_trunc('minute', (
           select min(h.finished_at) from {s}._gw_job_history as h
            where h.finished_at >= coalesce(st.rolled_until, '-infinity'))), c.closed),
           date_trunc('minute', now() - $4::float8 * interval '1 second')) as lo,
         c.closed
    from {s}._gw_history_state as st,
         (select date_trunc('minute', now() - $1::float8 * interval '1 second') as closed) as c
), span as (
  select b.lo, case when b.lo >= b.closed then b.closed
                    else least(b.closed, b.lo + $2::float8 * interval '1 second') end as hi,
         b.closed
    from bounds as b
),"""
    + _PER_MINUTE.replace("LO", "(select lo from span)").replace("HI", "(select hi from span)")
    .replace("EDGES", "$3::float8[]")
    + """, written as (
  insert into {s}._gw_job_history_minutes
         (minute, completed, failed, wait_p50, wait_p95, wait_counts)
  select minute, completed, failed, wait_p50, wait_p95, wait_counts from minutes
  on conflict (minute) do nothing
  returning 1
), moved as (
  update {s}._gw_history_state as st
     set rolled_until = greatest(st.rolled_until, span.hi)
    from span
  returning st.rolled_until
)
select (select count(*) from written)::int as minutes,
       (select rolled_until from moved) as rolled_until,
       (select hi < closed from span) as behind""",
    "ROLL_UP_HISTORY",
)

# $1 window seconds, $2 WAIT_EDGES. The history of the window per minute (the columns of
# _gw_job_history_minutes), from the minute the window starts in: the rolled-up minutes,
# and the minutes after them read from the history itself.
HISTORY_MINUTES = Query(
    """
with window_start as (
  select date_trunc('minute', now() - $1::float8 * interval '1 second') as t
), rolled as (
  select coalesce((select st.rolled_until from {s}._gw_history_state as st), '-infinity')
         as until
),"""
    + _PER_MINUTE.replace("LO", "(select greatest(w.t, r.until) from window_start as w,"
                                " rolled as r)")
    .replace("HI", "'infinity'").replace("EDGES", "$2::float8[]")
    + """
select m.minute, m.completed, m.failed, m.wait_p50, m.wait_p95, m.wait_counts
  from {s}._gw_job_history_minutes as m
 where m.minute >= (select t from window_start) and m.minute < (select until from rolled)
union all
select minute, completed, failed, wait_p50, wait_p95, wait_counts from minutes
 order by 1""",
    "HISTORY_MINUTES",
)

# HISTORY_MINUTES of a schema without the rollup (before gw migration 5): every minute of
# the window read from the history.
HISTORY_MINUTES_UNROLLED = Query(
    "\nwith" + _PER_MINUTE.replace(
        "LO", "date_trunc('minute', now() - $1::float8 * interval '1 second')"
    ).replace("HI", "'infinity'").replace("EDGES", "$2::float8[]")
    + "\nselect minute, completed, failed, wait_p50, wait_p95, wait_counts from minutes"
    " order by 1",
    "HISTORY_MINUTES_UNROLLED",
)

# $1 retention seconds, $2 most rows to delete. The rolled-up minutes older than the
# retention.
PRUNE_MINUTES = Query(
    """
with gone as (
  delete from {s}._gw_job_history_minutes
   where minute = any(array(
     select m.minute from {s}._gw_job_history_minutes as m
      where m.minute < now() - $1::float8 * interval '1 second'
      limit $2::int))
  returning 1
)
select count(*)::int as deleted from gone""",
    "PRUNE_MINUTES",
)

# $1 retention seconds. A worker with history on says so: WorkerUtils record the jobs they
# settle by hand while this is recent (queries.jobs.HISTORY_RECORDING).
SAY_RECORDING = Query(
    """
update {s}._gw_history_state
   set recording_seen_at = now(), retention_seconds = $1::float8""",
    "SAY_RECORDING",
)

# $1 window seconds, $2 bucket seconds. The queue-depth samples of the window, the largest
# of each bucket.
DEPTH_SERIES = Query(
    """
select to_timestamp(floor(extract(epoch from s.sampled_at) / $2::float8) * $2::float8)
         as bucket,
       max(s.ready) as ready, max(s.scheduled) as scheduled, max(s.locked) as locked,
       max(s.failed) as failed
  from {s}._gw_queue_samples as s
 where s.sampled_at >= now() - $1::float8 * interval '1 second'
 group by 1
 order by 1""",
    "DEPTH_SERIES",
)

# $1 the schema's name (unquoted). Whether the history tables exist (gw migration 2) and
# the charts' rollup (gw migration 5), and the database clock.
HISTORY_STATE = Query(
    """
select to_regclass(format('%I._gw_job_history_entries', $1::text)) is not null as present,
       to_regclass(format('%I._gw_job_history_minutes', $1::text)) is not null as rolled,
       now() as now""",
    "HISTORY_STATE",
)
