"""Job history (``history_retention``): reading it, the dashboard's chart series, and the
periodic upkeep (queue-depth samples, bounded pruning) one worker at a time.

The rows themselves are written by the worker's settling statements
(``queries.worker.*_RECORDING_HISTORY``), in the statement that completes or fails a job.
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

# $1 retention seconds, $2 most rows to delete. Deletes up to $2 history rows older than
# the retention; returns `deleted`.
PRUNE_HISTORY = Query(
    """
with gone as (
  delete from {s}._gw_job_history
   where ctid = any(array(
     select h.ctid from {s}._gw_job_history as h
      where h.finished_at < now() - $1::float8 * interval '1 second'
      limit $2::int))
  returning 1
)
select count(*)::int as deleted from gone""",
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
# jobs (bool), $4 limit. Newest first; duration and wait in seconds.
LIST_HISTORY = Query(
    """
select h.job_id, h.task_identifier, h.queue_name, h.key, h.attempts, h.max_attempts,
       h.created_at, h.run_at, h.started_at, h.finished_at, h.worker_id, h.outcome,
       h.last_error,
       extract(epoch from h.finished_at - h.started_at)::float8 as duration,
       greatest(0, extract(epoch from h.started_at - h.run_at))::float8 as wait
  from {s}._gw_job_history as h
 where ($1::text is null or h.task_identifier = $1::text)
   and ($2::timestamptz is null or h.finished_at >= $2::timestamptz)
   and (not $3::bool or h.outcome = 'failed')
 order by h.finished_at desc, h.job_id desc
 limit $4::bigint""",
    "LIST_HISTORY",
)

# $1 window seconds, $2 bucket seconds. Per bucket of the window (by finish time): jobs
# completed and failed for good, and the p50/p95 of their queue wait (started - run_at).
HISTORY_SERIES = Query(
    """
select to_timestamp(floor(extract(epoch from h.finished_at) / $2::float8) * $2::float8)
         as bucket,
       count(*) filter (where h.outcome = 'completed')::bigint as completed,
       count(*) filter (where h.outcome = 'failed')::bigint as failed,
       percentile_cont(0.5) within group (
         order by greatest(0, extract(epoch from h.started_at - h.run_at))) as wait_p50,
       percentile_cont(0.95) within group (
         order by greatest(0, extract(epoch from h.started_at - h.run_at))) as wait_p95
  from {s}._gw_job_history as h
 where h.finished_at >= now() - $1::float8 * interval '1 second'
 group by 1
 order by 1""",
    "HISTORY_SERIES",
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

# $1 the schema's name (unquoted). Whether the history tables exist (gw migration 2), and
# the database clock.
HISTORY_STATE = Query(
    """
select to_regclass(format('%I._gw_job_history', $1::text)) is not null as present,
       now() as now""",
    "HISTORY_STATE",
)
