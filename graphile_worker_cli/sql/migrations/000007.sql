-- Step 7: job_key_mode on add_job (replace, preserve_run_at, unsafe_dedupe), and
-- remove_job leaves a running job alone but stops it from ever retrying.

drop function __SCHEMA__.add_job(text, json, text, timestamptz, int, text, int, text[]);

create function __SCHEMA__.add_job(
  identifier text,
  payload json = null,
  queue_name text = null,
  run_at timestamptz = null,
  max_attempts integer = null,
  job_key text = null,
  priority integer = null,
  flags text[] = null,
  job_key_mode text = 'replace'
) returns __SCHEMA__.jobs
language plpgsql volatile as $$
declare
  v_job __SCHEMA__.jobs;
  v_flags jsonb := (select jsonb_object_agg(f, true) from unnest(add_job.flags) as f);
begin
  if length(identifier) > 128 then
    raise exception 'Task identifier is too long (max length: 128).' using errcode = 'GWBID';
  end if;
  if queue_name is not null and length(queue_name) > 128 then
    raise exception 'Job queue name is too long (max length: 128).' using errcode = 'GWBQN';
  end if;
  if job_key is not null and length(job_key) > 512 then
    raise exception 'Job key is too long (max length: 512).' using errcode = 'GWBJK';
  end if;
  if max_attempts < 1 then
    raise exception 'Job maximum attempts must be at least 1.' using errcode = 'GWBMA';
  end if;

  if job_key is not null and (job_key_mode is null or job_key_mode in ('replace', 'preserve_run_at')) then
    -- A waiting job with this key is updated in place. One that already started is out
    -- of date: it is detached below and a new job is inserted.
    insert into __SCHEMA__.jobs as j
        (task_identifier, payload, queue_name, run_at, max_attempts, key, priority, flags)
      values (add_job.identifier, coalesce(add_job.payload, '{}'::json), add_job.queue_name,
              coalesce(add_job.run_at, now()), coalesce(add_job.max_attempts, 25),
              add_job.job_key, coalesce(add_job.priority, 0), v_flags)
      on conflict (key) do update set
        task_identifier = excluded.task_identifier,
        payload = excluded.payload,
        queue_name = excluded.queue_name,
        max_attempts = excluded.max_attempts,
        run_at = case
          when add_job.job_key_mode = 'preserve_run_at' and j.attempts = 0 then j.run_at
          else excluded.run_at
        end,
        priority = excluded.priority,
        revision = j.revision + 1,
        flags = excluded.flags,
        attempts = 0,
        last_error = null
      where j.locked_at is null
      returning * into v_job;
    if found then
      return v_job;
    end if;
    update __SCHEMA__.jobs as j
      set key = null, attempts = j.max_attempts
      where j.key = add_job.job_key;
  elsif job_key is not null and job_key_mode = 'unsafe_dedupe' then
    -- Keep whatever job already has this key, running or not (only its revision moves
    -- so that a row comes back). Risky: the caller's new information may be ignored.
    insert into __SCHEMA__.jobs as j
        (task_identifier, payload, queue_name, run_at, max_attempts, key, priority, flags)
      values (add_job.identifier, coalesce(add_job.payload, '{}'::json), add_job.queue_name,
              coalesce(add_job.run_at, now()), coalesce(add_job.max_attempts, 25),
              add_job.job_key, coalesce(add_job.priority, 0), v_flags)
      on conflict (key) do update set revision = j.revision + 1
      returning * into v_job;
    return v_job;
  elsif job_key is not null then
    raise exception 'Invalid job_key_mode value, expected ''replace'', ''preserve_run_at'' or ''unsafe_dedupe''.'
      using errcode = 'GWBKM';
  end if;

  insert into __SCHEMA__.jobs
      (task_identifier, payload, queue_name, run_at, max_attempts, key, priority, flags)
    values (add_job.identifier, coalesce(add_job.payload, '{}'::json), add_job.queue_name,
            coalesce(add_job.run_at, now()), coalesce(add_job.max_attempts, 25),
            add_job.job_key, coalesce(add_job.priority, 0), v_flags)
    returning * into v_job;
  return v_job;
end;
$$;

create or replace function __SCHEMA__.remove_job(job_key text) returns __SCHEMA__.jobs
language plpgsql strict as $$
declare
  v_job __SCHEMA__.jobs;
begin
  delete from __SCHEMA__.jobs as j
    where j.key = remove_job.job_key and j.locked_at is null
    returning * into v_job;
  if found then
    return v_job;
  end if;
  -- running: let it finish, but free the key and make sure it never runs again
  update __SCHEMA__.jobs as j
    set attempts = j.max_attempts, key = null
    where j.key = remove_job.job_key
    returning * into v_job;
  return v_job;
end;
$$;
