-- Step 9: get_job takes the time to use as "now" (lets tests and clocks control it).

drop function __SCHEMA__.get_job(text, text[], interval, text[]);

create function __SCHEMA__.get_job(
  worker_id text,
  task_identifiers text[] = null,
  job_expiry interval = interval '4 hours',
  forbidden_flags text[] = null,
  now timestamptz = now()
) returns __SCHEMA__.jobs
language plpgsql volatile as $$
declare
  v_id bigint;
  v_queue text;
  v_job __SCHEMA__.jobs;
begin
  if worker_id is null or length(worker_id) < 10 then
    raise exception 'invalid worker id';
  end if;

  select j.queue_name, j.id into v_queue, v_id
    from __SCHEMA__.jobs as j
    where (j.locked_at is null or j.locked_at < get_job.now - job_expiry)
      and (j.queue_name is null or exists (
        select 1 from __SCHEMA__.job_queues as q
          where q.queue_name = j.queue_name
            and (q.locked_at is null or q.locked_at < get_job.now - job_expiry)
          for update skip locked))
      and j.run_at <= get_job.now
      and j.attempts < j.max_attempts
      and (task_identifiers is null or j.task_identifier = any(task_identifiers))
      and (forbidden_flags is null or (j.flags ?| forbidden_flags) is not true)
    order by j.priority, j.run_at, j.id
    limit 1
    for update skip locked;

  if v_id is null then
    return null;
  end if;

  if v_queue is not null then
    update __SCHEMA__.job_queues as q
      set locked_by = worker_id, locked_at = get_job.now
      where q.queue_name = v_queue;
  end if;

  update __SCHEMA__.jobs as j
    set attempts = j.attempts + 1, locked_by = worker_id, locked_at = get_job.now
    where j.id = v_id
    returning * into v_job;
  return v_job;
end;
$$;
