-- Step 12: when a keyed job is replaced and both the old and the new payload are JSON
-- arrays, the arrays are concatenated (batch jobs accumulate their items).

create or replace function __SCHEMA__.add_jobs(
  specs __SCHEMA__.job_spec[],
  job_key_preserve_run_at boolean default false
) returns setof __SCHEMA__.jobs
language plpgsql as $$
begin
  insert into __SCHEMA__.tasks (identifier)
    select distinct s.identifier from unnest(specs) as s
    on conflict do nothing;
  insert into __SCHEMA__.job_queues (queue_name)
    select distinct s.queue_name from unnest(specs) as s
    where s.queue_name is not null
    on conflict do nothing;

  update __SCHEMA__.jobs as j
    set key = null, attempts = j.max_attempts, updated_at = now()
    from unnest(specs) as s
    where s.job_key is not null and j.key = s.job_key and j.is_available is not true;

  return query
    insert into __SCHEMA__.jobs as j
        (job_queue_id, task_id, payload, run_at, max_attempts, key, priority, flags)
      select q.id, t.id, coalesce(s.payload, '{}'::json), coalesce(s.run_at, now()),
             coalesce(s.max_attempts, 25), s.job_key, coalesce(s.priority, 0),
             (select jsonb_object_agg(f, true) from unnest(s.flags) as f)
        from unnest(specs) as s
        join __SCHEMA__.tasks as t on t.identifier = s.identifier
        left join __SCHEMA__.job_queues as q on q.queue_name = s.queue_name
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
