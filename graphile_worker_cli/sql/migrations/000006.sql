-- Step 6: an ordering index that only covers jobs with attempts left.

create index jobs_priority_run_at_id_locked_at_without_failures_idx
  on __SCHEMA__.jobs (priority, run_at, id, locked_at)
  where attempts < max_attempts;

drop index __SCHEMA__.jobs_priority_run_at_id_idx;
