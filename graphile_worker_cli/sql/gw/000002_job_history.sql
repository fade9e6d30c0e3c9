-- gw's job history: one row per job that a gw worker completed or failed for good, kept for
-- `history_retention` (off by default: then nothing writes here). Written in the same
-- statement that settles the job; pruned in bounded batches by one worker at a time.
create table __SCHEMA__._gw_job_history (
  job_id bigint not null,
  task_identifier text not null,
  queue_name text,
  key text,
  attempts integer not null,
  max_attempts integer not null,
  created_at timestamptz not null,
  -- when the job was due (for a retried job: the run_at of its last attempt)
  run_at timestamptz not null,
  -- locked_at of the last attempt: when a worker took the job
  started_at timestamptz,
  finished_at timestamptz not null default now(),
  worker_id text not null,
  outcome text not null check (outcome in ('completed', 'failed')),
  last_error text
);
create index _gw_job_history_finished_at on __SCHEMA__._gw_job_history (finished_at);

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
