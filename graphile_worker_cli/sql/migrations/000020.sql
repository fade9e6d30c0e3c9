-- Step 20: add_jobs and add_job insert task and queue rows only when they are missing.

create or replace function __SCHEMA__.add_job(
  identifier text,
  payload json default null,
  queue_name text default null,
  run_at timestamptz default null,
  max_attempts int default null,
  job_key text default null,
  priority int default null,
  flags text[] default null,
  job_key_mode text default 'replace'
) returns __SCHEMA__._private_jobs
language plpgsql as $$
declare
  v_job __SCHEMA__._private_jobs;
begin
  if job_key is null or job_key_mode is null or job_key_mode in ('replace', 'preserve_run_at') then
    select * into v_job
      from __SCHEMA__.add_jobs(
        array[row(identifier, payload, queue_name, run_at, max_attempts::smallint, job_key,
                  priority::smallint, flags)::__SCHEMA__.job_spec],
        job_key_mode = 'preserve_run_at')
      limit 1;
    return v_job;
  elsif job_key_mode = 'unsafe_dedupe' then
    insert into __SCHEMA__._private_tasks (identifier)
      select add_job.identifier
      where not exists (
        select 1 from __SCHEMA__._private_tasks as known where known.identifier = add_job.identifier)
      on conflict do nothing;
    if add_job.queue_name is not null then
      insert into __SCHEMA__._private_job_queues (queue_name)
        select add_job.queue_name
        where not exists (
          select 1 from __SCHEMA__._private_job_queues as known
          where known.queue_name = add_job.queue_name)
        on conflict do nothing;
    end if;
    -- Keep whatever job already holds this key, running or not; only revision and
    -- updated_at move so that a row comes back. The caller's news may go unacted upon.
    insert into __SCHEMA__._private_jobs as j
        (job_queue_id, task_id, payload, run_at, max_attempts, key, priority, flags)
      select q.id, t.id, coalesce(add_job.payload, '{}'::json), coalesce(add_job.run_at, now()),
             coalesce(add_job.max_attempts::smallint, 25::smallint), add_job.job_key,
             coalesce(add_job.priority::smallint, 0::smallint),
             (select jsonb_object_agg(f, true) from unnest(add_job.flags) as f)
        from __SCHEMA__._private_tasks as t
        left join __SCHEMA__._private_job_queues as q on q.queue_name = add_job.queue_name
        where t.identifier = add_job.identifier
      on conflict (key) do update set revision = j.revision + 1, updated_at = now()
      returning * into v_job;
    -- revision 0 means the row is new: only then is there something for workers to do
    if v_job.revision = 0 then
      perform pg_notify('jobs:insert', '{"r":' || random()::text || ',"count":1}');
    end if;
    return v_job;
  else
    raise exception 'Invalid job_key_mode value, expected ''replace'', ''preserve_run_at'' or ''unsafe_dedupe''.'
      using errcode = 'GWBKM';
  end if;
end;
$$;

create or replace function __SCHEMA__.add_jobs(
  specs __SCHEMA__.job_spec[],
  job_key_preserve_run_at boolean default false
) returns setof __SCHEMA__._private_jobs
language plpgsql as $$
begin
  -- Insert only identifiers and queue names not seen before, so that the identity
  -- sequences do not advance on every call (on conflict alone would burn a value each time).
  insert into __SCHEMA__._private_tasks (identifier)
    select distinct s.identifier from unnest(specs) as s
    where not exists (
      select 1 from __SCHEMA__._private_tasks as known where known.identifier = s.identifier)
    on conflict do nothing;
  insert into __SCHEMA__._private_job_queues (queue_name)
    select distinct s.queue_name from unnest(specs) as s
    where s.queue_name is not null
      and not exists (
        select 1 from __SCHEMA__._private_job_queues as known where known.queue_name = s.queue_name)
    on conflict do nothing;

  update __SCHEMA__._private_jobs as j
    set key = null, attempts = j.max_attempts, updated_at = now()
    from unnest(specs) as s
    where s.job_key is not null and j.key = s.job_key and j.is_available is not true;

  -- Wake workers up: count is the number of specs, an upper bound of the rows inserted.
  perform pg_notify(
    'jobs:insert',
    '{"r":' || random()::text || ',"count":' || array_length(specs, 1)::text || '}');

  return query
    insert into __SCHEMA__._private_jobs as j
        (job_queue_id, task_id, payload, run_at, max_attempts, key, priority, flags)
      select q.id, t.id, coalesce(s.payload, '{}'::json), coalesce(s.run_at, now()),
             coalesce(s.max_attempts, 25), s.job_key, coalesce(s.priority, 0),
             (select jsonb_object_agg(f, true) from unnest(s.flags) as f)
        from unnest(specs) as s
        join __SCHEMA__._private_tasks as t on t.identifier = s.identifier
        left join __SCHEMA__._private_job_queues as q on q.queue_name = s.queue_name
      on conflict (key) do update set
        job_queue_id = excluded.job_queue_id,
        task_id = excluded.task_id,
        payload = case
          when json_typeof(j.payload) = 'array' and json_typeof(excluded.payload) = 'array'
            then (j.payload::jsonb || excluded.payload::jsonb)::json
          else excluded.payload
        end,
        max_attempts = excluded.max_attempts,
        run_at = case
          when add_jobs.job_key_preserve_run_at is true and j.attempts = 0 then j.run_at
          else excluded.run_at
        end,
        priority = excluded.priority,
        revision = j.revision + 1,
        flags = excluded.flags,
        attempts = 0,
        last_error = null,
        updated_at = now()
      where j.locked_at is null
      returning *;
end;
$$;
