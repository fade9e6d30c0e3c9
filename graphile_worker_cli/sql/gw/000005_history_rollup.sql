-- The dashboard's charts read the job history per minute. Reading a day of raw history
-- (every job of the day unnested) grows with the traffic, so the upkeep worker rolls each
-- closed minute up once into this table, and the charts read at most a day of these rows
-- plus the few minutes not rolled up yet.
create table __SCHEMA__._gw_job_history_minutes (
  minute timestamptz primary key,
  completed integer not null,
  failed integer not null,
  -- queue wait (started_at - run_at, seconds) of the minute's jobs that have a started_at
  wait_p50 float8,
  wait_p95 float8,
  -- the same waits counted by bucket: element 1 counts waits below 10^-3 s, element k+1
  -- those in [10^((k-31)/10), 10^((k-30)/10)) s for k = 1..80, element 82 those of 10^5 s
  -- or more (width_bucket over the 81 edges 10^(j/10), j = -30..50); the day chart's
  -- percentiles over 15 minutes come from their sums
  wait_counts integer[] not null
);

-- One row of history state shared by the fleet.
create table __SCHEMA__._gw_history_state (
  singleton boolean primary key default true check (singleton),
  -- every minute before this one is in _gw_job_history_minutes (null: none yet)
  rolled_until timestamptz,
  -- when a gw worker with history_retention last said so (each upkeep round), and its
  -- retention: WorkerUtils record the jobs they settle by hand while this is recent
  recording_seen_at timestamptz,
  retention_seconds float8
);
insert into __SCHEMA__._gw_history_state (singleton) values (true);

-- A job settled by hand (WorkerUtils, the dashboard, gw jobs) has no worker.
alter table __SCHEMA__._gw_job_history alter column worker_id drop not null;

-- Same stance as the reference's private tables: no direct access through RLS policies.
alter table __SCHEMA__._gw_job_history_minutes enable row level security;
alter table __SCHEMA__._gw_history_state enable row level security;
