-- gw's fleet-wide upkeep of the jobs table: one row per kind of upkeep, shared by every gw
-- worker of the schema, so one worker does it for the fleet and the others skip it.
create table __SCHEMA__._gw_maintenance (
  -- 'reset_stale_locks' or 'vacuum_jobs'
  task text primary key,
  -- reset_stale_locks: no job or queue lock can pass four hours old before this moment
  -- (the oldest lock the last reset saw, or now less an hour for locks it could not see,
  -- plus four hours), so a reset before then would find nothing to unlock
  due_at timestamptz,
  -- the worker that last claimed the task, when, and when it finished (null: running)
  claimed_by text,
  claimed_at timestamptz,
  finished_at timestamptz,
  -- vacuum_jobs: dead rows the last vacuum could not remove (older snapshots still saw them)
  dead_rows_left bigint not null default 0,
  runs bigint not null default 0
);

-- No reset is due before the oldest lock held now turns four hours old.
insert into __SCHEMA__._gw_maintenance (task, due_at)
select 'reset_stale_locks',
       least(
         (select min(locked_at) from __SCHEMA__._private_jobs),
         (select min(locked_at) from __SCHEMA__._private_job_queues),
         now() - interval '1 hour'
       ) + interval '4 hours';

insert into __SCHEMA__._gw_maintenance (task, finished_at) values ('vacuum_jobs', now());

-- Same stance as the reference's private tables: no direct access through RLS policies.
alter table __SCHEMA__._gw_maintenance enable row level security;
