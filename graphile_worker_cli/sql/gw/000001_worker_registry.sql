-- gw's worker registry: one row per running gw worker process that heartbeats.
-- Only workers listed here can ever be declared dead by the recovery sweep; lock holders
-- that never registered (the Node.js reference, old gw releases) keep the 4-hour rule.
create table __SCHEMA__._gw_workers (
  -- the worker's locked_by value
  id text primary key,
  host text not null,
  pid integer not null,
  version text not null,
  tasks text[] not null default '{}',
  -- how often this worker promised to heartbeat; a sweep never declares it dead before
  -- several of these intervals have passed, whatever threshold the sweeper was given
  heartbeat_interval interval not null,
  started_at timestamptz not null default now(),
  last_heartbeat_at timestamptz not null default now(),
  metadata jsonb not null default '{}'
);

-- Same stance as the reference's private tables: no direct access through RLS policies.
alter table __SCHEMA__._gw_workers enable row level security;
