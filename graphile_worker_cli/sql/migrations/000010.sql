-- Step 10: no default queue name (older releases gave every job its own random queue).

alter table __SCHEMA__.jobs alter column queue_name drop default;
