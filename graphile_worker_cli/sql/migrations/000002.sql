-- Step 2: job keys, locks recorded on the job itself, remove_job.

alter table __SCHEMA__.jobs
  add column key text constraint jobs_key_key unique constraint jobs_key_check check (length(key) > 0);
alter table __SCHEMA__.jobs add column locked_at timestamptz;
alter table __SCHEMA__.jobs add column locked_by text;

-- jobs already running keep their lock, now copied onto the job row
update __SCHEMA__.jobs as j
  set locked_at = q.locked_at, locked_by = q.locked_by
  from __SCHEMA__.job_queues as q
  where q.queue_name = j.queue_name and q.locked_at is not null;

drop function if exists __SCHEMA__.add_job(text, json, text, timestamptz, int);

create function __SCHEMA__.add_job(
  identifier text,
  payload json = '{}',
  queue_name text = null,
  run_at timestamptz = now(),
  max_attempts int = 25,
  job_key text = null
) returns __SCHEMA__.jobs
language plpgsql volatile as $$
declare
  v_job __SCHEMA__.jobs;
begin
  if job_key is not null then
    -- replace the waiting job with this key; the queue stays unless a new one is given
    insert into __SCHEMA__.jobs as j (task_identifier, payload, queue_name, run_at, max_attempts, key)
      values (add_job.identifier, add_job.payload, add_job.queue_name, add_job.run_at,
              add_job.max_attempts, add_job.job_key)
      on conflict (key) do update set
        task_identifier = excluded.task_identifier,
        payload = excluded.payload,
        queue_name = coalesce(add_job.queue_name, j.queue_name),
        max_attempts = excluded.max_attempts,
        run_at = excluded.run_at,
        attempts = 0,
        last_error = null
      where j.locked_at is null
      returning * into v_job;
    if found then
      return v_job;
    end if;
    -- the job with this key is running: detach it so it never retries, then add anew
    update __SCHEMA__.jobs as j
      set key = null, attempts = j.max_attempts
      where j.key = add_job.job_key;
  end if;

  insert into __SCHEMA__.jobs (task_identifier, payload, queue_name, run_at, max_attempts, key)
    values (add_job.identifier, add_job.payload, add_job.queue_name, add_job.run_at,
            add_job.max_attempts, add_job.job_key)
    returning * into v_job;
  return v_job;
end;
$$;

create function __SCHEMA__.remove_job(job_key text) returns __SCHEMA__.jobs
language sql strict volatile as $$
  delete from __SCHEMA__.jobs as j
    where j.key = remove_job.job_key and j.locked_at is null
    returning *;
$$;

create or replace function __SCHEMA__.get_job(
  worker_id text,
  task_identifiers text[] = null,
  job_expiry interval = interval '4 hours'
) returns __SCHEMA__.jobs
language plpgsql volatile as $$
declare
  v_id bigint;
  v_queue text;
  v_job __SCHEMA__.jobs;
  v_now timestamptz := now();
begin
  if worker_id is null or length(worker_id) < 10 then
    raise exception 'invalid worker id';
  end if;

  select q.queue_name, j.id into v_queue, v_id
    from __SCHEMA__.jobs as j
    join __SCHEMA__.job_queues as q on q.queue_name = j.queue_name
    where (q.locked_at is null or q.locked_at < v_now - job_expiry)
      and j.run_at <= v_now
      and j.attempts < j.max_attempts
      and (task_identifiers is null or j.task_identifier = any(task_identifiers))
    order by j.priority, j.run_at, j.id
    limit 1
    for update of q skip locked;

  if v_queue is null then
    return null;
  end if;

  update __SCHEMA__.job_queues as q
    set locked_by = worker_id, locked_at = v_now
    where q.queue_name = v_queue;

  update __SCHEMA__.jobs as j
    set attempts = j.attempts + 1, locked_by = worker_id, locked_at = v_now
    where j.id = v_id
    returning * into v_job;
  return v_job;
end;
$$;

create or replace function __SCHEMA__.fail_job(worker_id text, job_id bigint, error_message text)
returns __SCHEMA__.jobs
language plpgsql volatile strict as $$
declare
  v_job __SCHEMA__.jobs;
begin
  update __SCHEMA__.jobs as j
    set last_error = error_message,
        run_at = greatest(now(), j.run_at) + exp(least(j.attempts, 10)) * interval '1 second',
        locked_by = null,
        locked_at = null
    where j.id = job_id and j.locked_by = worker_id
    returning * into v_job;
  update __SCHEMA__.job_queues as q
    set locked_by = null, locked_at = null
    where q.queue_name = v_job.queue_name and q.locked_by = worker_id;
  return v_job;
end;
$$;
