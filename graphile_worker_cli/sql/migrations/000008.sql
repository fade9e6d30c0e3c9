-- Step 8: the cron scheduler's memory of which crontab items it has seen and run.

create table __SCHEMA__.known_crontabs (
  identifier text not null constraint known_crontabs_pkey primary key,
  known_since timestamptz not null,
  last_execution timestamptz
);
alter table __SCHEMA__.known_crontabs enable row level security;
