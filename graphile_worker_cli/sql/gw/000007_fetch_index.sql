-- The index gw's fetch reads: the available jobs in (priority, run_at) order, as the
-- reference's jobs_main_index, without its included columns. A fetch reads past the entries
-- that taken jobs leave at the head of the order until a VACUUM removes them; here each
-- entry is about half the size, and jobs added together (one add_jobs call: the same
-- run_at) share one entry per key (B-tree deduplication, which an index with included
-- columns cannot use), so that head spans a fraction of the pages. The fetch visits each
-- candidate's row anyway (to lock it), so the included columns saved it nothing.
-- Built without CONCURRENTLY (a migration runs in a transaction): adding jobs waits while
-- it builds, about 3 s per million jobs waiting.
create index _gw_jobs_fetch_index on __SCHEMA__._private_jobs (priority, run_at)
  where is_available;
