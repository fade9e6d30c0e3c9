-- Cancel requests for jobs that were running when someone cancelled them (gw jobs cancel,
-- WorkerUtils.cancel_jobs, the dashboard). A job that is not running is failed at once and
-- needs no row here; a running one is failed as `cancelled` by the gw worker holding it,
-- which learns of the request from a `gw:cancel` notification or, if it missed that, from
-- this table. Rows go once the job is failed or gone. No foreign key to _private_jobs: it
-- would add triggers to the reference's table.
create table __SCHEMA__._gw_cancel_requests (
  job_id bigint primary key,
  -- the job's locked_by when the cancel was asked for
  locked_by text not null,
  requested_at timestamptz not null default now()
);

-- Same stance as the reference's private tables: no direct access through RLS policies.
alter table __SCHEMA__._gw_cancel_requests enable row level security;
