-- Step 15: drop the trigger functions left over from the first schema, and add
-- force_unlock_workers for recovering the locks of crashed workers.

drop function __SCHEMA__.jobs__increase_job_queue_count();
drop function __SCHEMA__.jobs__decrease_job_queue_count();
drop function __SCHEMA__.tg__update_timestamp();

create function __SCHEMA__.force_unlock_workers(worker_ids text[]) returns void
language sql volatile as $$
  update __SCHEMA__.jobs as j
    set locked_at = null, locked_by = null
    where j.locked_by = any(worker_ids);
  update __SCHEMA__.job_queues as q
    set locked_at = null, locked_by = null
    where q.locked_by = any(worker_ids);
$$;
