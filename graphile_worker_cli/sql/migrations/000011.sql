--! breaking
-- Step 11: the rebuild. Tasks and queues become small lookup tables referenced by integer
-- ids, counters shrink to smallint, availability is a stored generated column covered by two
-- partial indexes, jobs are added in batches through job_spec/add_jobs, and the old
-- get/complete/fail functions go (workers now run that SQL themselves). Waiting jobs are
-- copied across; running ones cannot be, so the step refuses while any job holds a lock
-- younger than four hours.

lock table __SCHEMA__.jobs;
lock table __SCHEMA__.job_queues;

do $$
begin
  if exists (
    select 1 from __SCHEMA__.jobs as j
    where j.locked_at is not null and j.locked_at > now() - interval '4 hours'
  ) then
    raise exception 'jobs are locked by running workers'
      using errcode = 'GWL11',
            hint = 'stop every worker cleanly (or wait until no job is locked) and migrate again';
  end if;
end;
$$;

drop function __SCHEMA__.get_job;
drop function __SCHEMA__.complete_job;
drop function __SCHEMA__.fail_job;
drop function __SCHEMA__.add_job;
drop function __SCHEMA__.complete_jobs;
drop function __SCHEMA__.permanently_fail_jobs;
drop function __SCHEMA__.reschedule_jobs;
drop function __SCHEMA__.remove_job;
drop trigger _900_notify_worker on __SCHEMA__.jobs;
drop function __SCHEMA__.tg_jobs__notify_new_jobs;

alter table __SCHEMA__.jobs rename to jobs_legacy;
alter table __SCHEMA__.job_queues rename to job_queues_legacy;

-- The legacy tables still hold jobs_pkey, jobs_key_key, jobs_id_seq and job_queues_pkey,
-- hence the "1" suffixes (the names every release of the schema has used since).
create table __SCHEMA__.job_queues (
  id int generated always as identity (sequence name __SCHEMA__.job_queues_id_seq)
    constraint job_queues_pkey1 primary key,
  queue_name text not null
    constraint job_queues_queue_name_key unique
    constraint job_queues_queue_name_check check (length(queue_name) <= 128),
  locked_at timestamptz,
  locked_by text,
  is_available boolean not null generated always as (locked_at is null) stored
);
alter table __SCHEMA__.job_queues enable row level security;

create table __SCHEMA__.tasks (
  id int generated always as identity (sequence name __SCHEMA__.tasks_id_seq)
    constraint tasks_pkey primary key,
  identifier text not null
    constraint tasks_identifier_key unique
    constraint tasks_identifier_check check (length(identifier) <= 128)
);
alter table __SCHEMA__.tasks enable row level security;

create table __SCHEMA__.jobs (
  id bigint generated always as identity (sequence name __SCHEMA__.jobs_id_seq1)
    constraint jobs_pkey1 primary key,
  job_queue_id int, -- deliberately no foreign key: it would cost on every insert
  task_id int not null,
  payload json not null default '{}'::json,
  priority smallint not null default 0,
  run_at timestamptz not null default now(),
  attempts smallint not null default 0,
  max_attempts smallint not null default 25
    constraint jobs_max_attempts_check check (max_attempts >= 1),
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  key text
    constraint jobs_key_key1 unique
    constraint jobs_key_check check (length(key) > 0 and length(key) <= 512),
  locked_at timestamptz,
  locked_by text,
  revision integer not null default 0,
  flags jsonb,
  is_available boolean not null
    generated always as (locked_at is null and attempts < max_attempts) stored
);
alter table __SCHEMA__.jobs enable row level security;

create index jobs_main_index on __SCHEMA__.jobs using btree (priority, run_at)
  include (id, task_id, job_queue_id)
  where (is_available = true);

create index jobs_no_queue_index on __SCHEMA__.jobs using btree (priority, run_at)
  include (id, task_id)
  where (is_available = true and job_queue_id is null);

create type __SCHEMA__.job_spec as (
  identifier text,
  payload json,
  queue_name text,
  run_at timestamptz,
  max_attempts integer,
  job_key text,
  priority integer,
  flags text[]
);

create function __SCHEMA__.add_jobs(
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

  -- A keyed job that is running (or out of attempts) is stale: detach it from its key so
  -- the insert below creates a new job, and make sure the stale one never retries.
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
        payload = excluded.payload,
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

create function __SCHEMA__.complete_jobs(job_ids bigint[]) returns setof __SCHEMA__.jobs
language sql as $$
  delete from __SCHEMA__.jobs as j
    where j.id = any(job_ids)
      and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
    returning *;
$$;

create function __SCHEMA__.permanently_fail_jobs(job_ids bigint[], error_message text default null)
returns setof __SCHEMA__.jobs
language sql as $$
  update __SCHEMA__.jobs as j
    set last_error = coalesce(error_message, 'Manually marked as failed'),
        attempts = j.max_attempts,
        updated_at = now()
    where j.id = any(job_ids)
      and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
    returning *;
$$;

create function __SCHEMA__.remove_job(job_key text) returns __SCHEMA__.jobs
language plpgsql strict as $$
declare
  v_job __SCHEMA__.jobs;
begin
  delete from __SCHEMA__.jobs as j
    where j.key = remove_job.job_key
      and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
    returning * into v_job;
  if found then
    return v_job;
  end if;
  update __SCHEMA__.jobs as j
    set key = null, attempts = j.max_attempts, updated_at = now()
    where j.key = remove_job.job_key
    returning * into v_job;
  return v_job;
end;
$$;

create function __SCHEMA__.reschedule_jobs(
  job_ids bigint[],
  run_at timestamptz default null,
  priority integer default null,
  attempts integer default null,
  max_attempts integer default null
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

create function __SCHEMA__.tg_jobs__after_insert() returns trigger
language plpgsql as $$
begin
  perform pg_notify('jobs:insert', '');
  return new;
end;
$$;
create trigger _900_after_insert after insert on __SCHEMA__.jobs
  for each statement execute procedure __SCHEMA__.tg_jobs__after_insert();

create function __SCHEMA__.add_job(
  identifier text,
  payload json default null,
  queue_name text default null,
  run_at timestamptz default null,
  max_attempts integer default null,
  job_key text default null,
  priority integer default null,
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
    -- Keep whatever job already holds this key, running or not; only revision and
    -- updated_at move so that a row comes back. The caller's news may go unacted upon.
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

-- Carry the waiting jobs over, oldest first, with their queues and task identifiers.
insert into __SCHEMA__.job_queues (queue_name)
  select l.queue_name from __SCHEMA__.jobs_legacy as l
  where l.queue_name is not null
  group by l.queue_name
  order by min(l.id);

insert into __SCHEMA__.tasks (identifier)
  select l.task_identifier from __SCHEMA__.jobs_legacy as l
  group by l.task_identifier
  order by min(l.id);

insert into __SCHEMA__.jobs
    (job_queue_id, task_id, payload, priority, run_at, attempts, max_attempts, last_error,
     created_at, updated_at, key, revision, flags)
  select q.id, t.id, l.payload, l.priority, l.run_at, l.attempts, l.max_attempts, l.last_error,
         l.created_at, l.updated_at, l.key, l.revision, l.flags
    from __SCHEMA__.jobs_legacy as l
    join __SCHEMA__.tasks as t on t.identifier = l.task_identifier
    left join __SCHEMA__.job_queues as q on q.queue_name = l.queue_name
    order by l.id;

drop table __SCHEMA__.jobs_legacy;
drop table __SCHEMA__.job_queues_legacy;
