-- gw's job history (`history_retention`, off by default: then nothing writes here). Each row
-- is one settling statement of a gw worker: the jobs it completed, or failed for good, as
-- parallel arrays (element i of every array is job i). One row per batch rather than per
-- job keeps the cost of history on the worker's completions small. Rows are written in the
-- statement that settles the jobs and pruned in bounded batches by one worker at a time.
create table __SCHEMA__._gw_job_history (
  finished_at timestamptz not null default now(),
  worker_id text not null,
  outcome text not null check (outcome in ('completed', 'failed')),
  job_ids bigint[] not null,
  task_identifiers text[] not null,
  queue_names text[] not null,
  keys text[] not null,
  attempts integer[] not null,
  max_attempts integer[] not null,
  created_at timestamptz[] not null,
  -- when each job's last attempt was due (a retried job's run_at moves with each retry)
  run_at timestamptz[] not null,
  -- locked_at of that attempt: when a worker took the job
  started_at timestamptz[] not null,
  last_errors text[] not null
);
create index _gw_job_history_finished_at on __SCHEMA__._gw_job_history (finished_at);

-- One row per job, for reading the history with SQL.
create view __SCHEMA__._gw_job_history_entries as
select e.job_id, e.task_identifier, e.queue_name, e.key, e.attempts, e.max_attempts,
       e.created_at, e.run_at, e.started_at, h.finished_at, h.worker_id, h.outcome,
       e.last_error
  from __SCHEMA__._gw_job_history as h,
       unnest(h.job_ids, h.task_identifiers, h.queue_names, h.keys, h.attempts,
              h.max_attempts, h.created_at, h.run_at, h.started_at, h.last_errors)
         as e(job_id, task_identifier, queue_name, key, attempts, max_attempts, created_at,
              run_at, started_at, last_error);

-- Queue depth, sampled once a minute by one worker (the dashboard's depth chart).
create table __SCHEMA__._gw_queue_samples (
  sampled_at timestamptz primary key,
  ready integer not null,
  scheduled integer not null,
  locked integer not null,
  failed integer not null
);

-- Same stance as the reference's private tables: no direct access through RLS policies.
alter table __SCHEMA__._gw_job_history enable row level security;
alter table __SCHEMA__._gw_queue_samples enable row level security;
