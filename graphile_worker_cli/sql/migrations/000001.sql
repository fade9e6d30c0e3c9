--! breaking
-- Step 1: the first schema. Jobs, per-queue locks kept in job_queues by triggers, and the
-- first set of worker functions (all replaced by later steps).

create table __SCHEMA__.job_queues (
  queue_name text not null constraint job_queues_pkey primary key,
  job_count int not null,
  locked_at timestamptz,
  locked_by text
);
alter table __SCHEMA__.job_queues enable row level security;

create table __SCHEMA__.jobs (
  id bigserial constraint jobs_pkey primary key,
  queue_name text not null,
  task_identifier text not null,
  payload json not null default '{}'::json,
  priority int not null default 0,
  run_at timestamptz not null default now(),
  attempts int not null default 0,
  max_attempts int not null default 25,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table __SCHEMA__.jobs enable row level security;

create index jobs_priority_run_at_id_idx on __SCHEMA__.jobs (priority, run_at, id);

create function __SCHEMA__.tg__update_timestamp() returns trigger
language plpgsql as $$
begin
  -- strictly increasing, even when two updates land in the same millisecond
  new.updated_at := greatest(now(), old.updated_at + interval '1 millisecond');
  return new;
end;
$$;
create trigger _100_timestamps before update on __SCHEMA__.jobs
  for each row execute procedure __SCHEMA__.tg__update_timestamp();

create function __SCHEMA__.jobs__decrease_job_queue_count() returns trigger
language plpgsql as $$
declare
  v_remaining int;
begin
  update __SCHEMA__.job_queues as q
    set job_count = q.job_count - 1
    where q.queue_name = old.queue_name
    returning q.job_count into v_remaining;
  if v_remaining <= 0 then
    delete from __SCHEMA__.job_queues as q
      where q.queue_name = old.queue_name and q.job_count <= 0;
  end if;
  return old;
end;
$$;

create function __SCHEMA__.jobs__increase_job_queue_count() returns trigger
language plpgsql as $$
begin
  insert into __SCHEMA__.job_queues as q (queue_name, job_count)
    values (new.queue_name, 1)
    on conflict (queue_name) do update set job_count = q.job_count + 1;
  return new;
end;
$$;

create trigger _500_increase_job_queue_count after insert on __SCHEMA__.jobs
  for each row execute procedure __SCHEMA__.jobs__increase_job_queue_count();
create trigger _500_decrease_job_queue_count after delete on __SCHEMA__.jobs
  for each row execute procedure __SCHEMA__.jobs__decrease_job_queue_count();
create trigger _500_increase_job_queue_count_update after update of queue_name on __SCHEMA__.jobs
  for each row execute procedure __SCHEMA__.jobs__increase_job_queue_count();
create trigger _500_decrease_job_queue_count_update after update of queue_name on __SCHEMA__.jobs
  for each row execute procedure __SCHEMA__.jobs__decrease_job_queue_count();

create function __SCHEMA__.tg_jobs__notify_new_jobs() returns trigger
language plpgsql as $$
begin
  perform pg_notify('jobs:insert', '');
  return new;
end;
$$;
create trigger _900_notify_worker after insert on __SCHEMA__.jobs
  for each statement execute procedure __SCHEMA__.tg_jobs__notify_new_jobs();

create function __SCHEMA__.add_job(
  identifier text,
  payload json = '{}',
  queue_name text = null,
  run_at timestamptz = now(),
  max_attempts int = 25
) returns __SCHEMA__.jobs
language sql as $$
  insert into __SCHEMA__.jobs (task_identifier, payload, queue_name, run_at, max_attempts)
    values (add_job.identifier, add_job.payload, add_job.queue_name, add_job.run_at, add_job.max_attempts)
    returning *;
$$;

create function __SCHEMA__.get_job(
  worker_id text,
  task_identifiers text[] = null,
  job_expiry interval = interval '4 hours'
) returns __SCHEMA__.jobs
language plpgsql as $$
declare
  v_id bigint;
  v_queue text;
  v_job __SCHEMA__.jobs;
begin
  if worker_id is null or length(worker_id) < 10 then
    raise exception 'invalid worker id';
  end if;

  select q.queue_name, j.id into v_queue, v_id
    from __SCHEMA__.jobs as j
    join __SCHEMA__.job_queues as q on q.queue_name = j.queue_name
    where (q.locked_at is null or q.locked_at < now() - job_expiry)
      and j.run_at <= now()
      and j.attempts < j.max_attempts
      and (task_identifiers is null or j.task_identifier = any(task_identifiers))
    order by j.priority, j.run_at, j.id
    limit 1
    for update of q skip locked;

  if v_queue is null then
    return null;
  end if;

  update __SCHEMA__.job_queues as q
    set locked_by = worker_id, locked_at = now()
    where q.queue_name = v_queue;

  update __SCHEMA__.jobs as j
    set attempts = j.attempts + 1
    where j.id = v_id
    returning * into v_job;
  return v_job;
end;
$$;

create function __SCHEMA__.complete_job(worker_id text, job_id bigint) returns __SCHEMA__.jobs
language plpgsql as $$
declare
  v_job __SCHEMA__.jobs;
begin
  delete from __SCHEMA__.jobs as j where j.id = job_id returning * into v_job;
  update __SCHEMA__.job_queues as q
    set locked_by = null, locked_at = null
    where q.queue_name = v_job.queue_name and q.locked_by = worker_id;
  return v_job;
end;
$$;

create function __SCHEMA__.fail_job(worker_id text, job_id bigint, error_message text)
returns __SCHEMA__.jobs
language plpgsql as $$
declare
  v_job __SCHEMA__.jobs;
begin
  -- exponential backoff: e^attempts seconds, capped at e^10
  update __SCHEMA__.jobs as j
    set last_error = error_message,
        run_at = greatest(now(), j.run_at) + exp(least(j.attempts, 10)) * interval '1 second'
    where j.id = job_id
    returning * into v_job;
  update __SCHEMA__.job_queues as q
    set locked_by = null, locked_at = null
    where q.queue_name = v_job.queue_name and q.locked_by = worker_id;
  return v_job;
end;
$$;
