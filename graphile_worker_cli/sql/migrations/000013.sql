--! breaking
-- Step 13: job_spec, add_job and reschedule_jobs use smallint like the table columns.

alter type __SCHEMA__.job_spec alter attribute max_attempts type smallint;
alter type __SCHEMA__.job_spec alter attribute priority type smallint;

drop function __SCHEMA__.add_job;

create function __SCHEMA__.add_job(
  identifier text,
  payload json default null,
  queue_name text default null,
  run_at timestamptz default null,
  max_attempts smallint default null,
  job_key text default null,
  priority smallint default null,
  flags text[] default null,
  job_key_mode text default 'replace'
) returns __SCHEMA__.jobs
language plpgsql as $$
declare
  v_job __SCHEMA__.jobs;
begin
  if job_key is null or job_key_mode is null or job_key_mode in ('replace', 'preserve_run_at') then
    select * into v_job
      from __SCHEMA__.add_jobs(
        array[row(identifier, payload, queue_name, run_at, max_attempts, job_key, priority, flags)::__SCHEMA__.job_spec],
        job_key_mode = 'preserve_run_at')
      limit 1;
    return v_job;
  elsif job_key_mode = 'unsafe_dedupe' then
    insert into __SCHEMA__.tasks (identifier) values (add_job.identifier) on conflict do nothing;
    if add_job.queue_name is not null then
      insert into __SCHEMA__.job_queues (queue_name) values (add_job.queue_name) on conflict do nothing;
    end if;
    insert into __SCHEMA__.jobs as j
        (job_queue_id, task_id, payload, run_at, max_attempts, key, priority, flags)
      select q.id, t.id, coalesce(add_job.payload, '{}'::json), coalesce(add_job.run_at, now()),
             coalesce(add_job.max_attempts, 25), add_job.job_key, coalesce(add_job.priority, 0),
             (select jsonb_object_agg(f, true) from unnest(add_job.flags) as f)
        from __SCHEMA__.tasks as t
        left join __SCHEMA__.job_queues as q on q.queue_name = add_job.queue_name
        where t.identifier = add_job.identifier
      on conflict (key) do update set revision = j.revision + 1, updated_at = now()
      returning * into v_job;
    return v_job;
  else
    raise exception 'Invalid job_key_mode value, expected ''replace'', ''preserve_run_at'' or ''unsafe_dedupe''.'
      using errcode = 'GWBKM';
  end if;
end;
$$;

drop function __SCHEMA__.reschedule_jobs;

create function __SCHEMA__.reschedule_jobs(
  job_ids bigint[],
  run_at timestamptz default null,
  priority smallint default null,
  attempts smallint default null,
  max_attempts smallint default null
) returns setof __SCHEMA__.jobs
language sql as $$
  update __SCHEMA__.jobs as j
    set run_at = coalesce(reschedule_jobs.run_at, j.run_at),
        priority = coalesce(reschedule_jobs.priority, j.priority),
        attempts = coalesce(reschedule_jobs.attempts, j.attempts),
        max_attempts = coalesce(reschedule_jobs.max_attempts, j.max_attempts),
        updated_at = now()
    where j.id = any(job_ids)
      and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
    returning *;
$$;
