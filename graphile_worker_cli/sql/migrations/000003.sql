--! breaking
-- Step 3: jobs without a queue run in parallel (queue_name may be null); the queue-count
-- triggers only fire for jobs that have a queue.

alter table __SCHEMA__.jobs alter column queue_name drop not null;

create or replace function __SCHEMA__.add_job(
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
    insert into __SCHEMA__.jobs as j (task_identifier, payload, queue_name, run_at, max_attempts, key)
      values (add_job.identifier, add_job.payload, add_job.queue_name, add_job.run_at,
              add_job.max_attempts, add_job.job_key)
      on conflict (key) do update set
        task_identifier = excluded.task_identifier,
        payload = excluded.payload,
        queue_name = excluded.queue_name,
        max_attempts = excluded.max_attempts,
        run_at = excluded.run_at,
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
  end if;

  insert into __SCHEMA__.jobs (task_identifier, payload, queue_name, run_at, max_attempts, key)
    values (add_job.identifier, add_job.payload, add_job.queue_name, add_job.run_at,
            add_job.max_attempts, add_job.job_key)
    returning * into v_job;
  return v_job;
end;
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

  select j.queue_name, j.id into v_queue, v_id
    from __SCHEMA__.jobs as j
    where (j.locked_at is null or j.locked_at < v_now - job_expiry)
      and (j.queue_name is null or exists (
        select 1 from __SCHEMA__.job_queues as q
          where q.queue_name = j.queue_name
            and (q.locked_at is null or q.locked_at < v_now - job_expiry)
          for update skip locked))
      and j.run_at <= v_now
      and j.attempts < j.max_attempts
      and (task_identifiers is null or j.task_identifier = any(task_identifiers))
    order by j.priority, j.run_at, j.id
    limit 1
    for update skip locked;

  if v_id is null then
    return null;
  end if;

  if v_queue is not null then
    update __SCHEMA__.job_queues as q
      set locked_by = worker_id, locked_at = v_now
      where q.queue_name = v_queue;
  end if;

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
  if v_job.queue_name is not null then
    update __SCHEMA__.job_queues as q
      set locked_by = null, locked_at = null
      where q.queue_name = v_job.queue_name and q.locked_by = worker_id;
  end if;
  return v_job;
end;
$$;

create or replace function __SCHEMA__.complete_job(worker_id text, job_id bigint)
returns __SCHEMA__.jobs
language plpgsql as $$
declare
  v_job __SCHEMA__.jobs;
begin
  delete from __SCHEMA__.jobs as j where j.id = job_id returning * into v_job;
  if v_job.queue_name is not null then
    update __SCHEMA__.job_queues as q
      set locked_by = null, locked_at = null
      where q.queue_name = v_job.queue_name and q.locked_by = worker_id;
  end if;
  return v_job;
end;
$$;

drop trigger _500_increase_job_queue_count on __SCHEMA__.jobs;
drop trigger _500_decrease_job_queue_count on __SCHEMA__.jobs;
drop trigger _500_increase_job_queue_count_update on __SCHEMA__.jobs;
drop trigger _500_decrease_job_queue_count_update on __SCHEMA__.jobs;

create trigger _500_increase_job_queue_count after insert on __SCHEMA__.jobs
  for each row when (new.queue_name is not null)
  execute procedure __SCHEMA__.jobs__increase_job_queue_count();
create trigger _500_decrease_job_queue_count after delete on __SCHEMA__.jobs
  for each row when (old.queue_name is not null)
  execute procedure __SCHEMA__.jobs__decrease_job_queue_count();
create trigger _500_increase_job_queue_count_update after update of queue_name on __SCHEMA__.jobs
  for each row when (new.queue_name is distinct from old.queue_name and new.queue_name is not null)
  execute procedure __SCHEMA__.jobs__increase_job_queue_count();
create trigger _500_decrease_job_queue_count_update after update of queue_name on __SCHEMA__.jobs
  for each row when (new.queue_name is distinct from old.queue_name and old.queue_name is not null)
  execute procedure __SCHEMA__.jobs__decrease_job_queue_count();
