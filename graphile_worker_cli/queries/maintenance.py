"""SQL of the jobs-table vacuum that gw's workers run for the fleet (``worker.maintenance``).

One worker at a time claims the ``vacuum_jobs`` row of ``_gw_maintenance`` (a claim, not a
lock, so it holds through a transaction pooler: VACUUM cannot run inside a transaction,
and a session lock would not survive PgBouncer's transaction mode), vacuums, and records
what the vacuum left behind. The claim decides from the table's cumulative statistics
(``pg_stat_get_dead_tuples``: about two dead rows per finished job), which cost no read of
the table itself.
"""

from __future__ import annotations

from graphile_worker_cli.queries import Query

# $1 unescaped schema name; alias t: the jobs table's oid, whether this role may vacuum it
# (its owner, a member of the owner, a superuser; PostgreSQL 17's MAINTAIN privilege).
_JOBS_TABLE = """
  select c.oid,
         case when current_setting('server_version_num')::int >= 170000
              then has_table_privilege(c.oid, 'MAINTAIN')
              else pg_has_role(c.relowner, 'USAGE') end as can_vacuum
    from pg_class as c
    join pg_namespace as n on n.oid = c.relnamespace
   where n.nspname = $2::text and c.relname = '_private_jobs'"""

# $1 worker id, $2 unescaped schema name, $3 threshold (dead rows), $4 claim lease seconds.
# Claims the vacuum when this role may vacuum the jobs table, no vacuum of it is running
# (gw's claim younger than the lease, or any VACUUM, autovacuum's included), and the dead
# rows since what the last gw vacuum left behind reach the threshold (or a fiftieth of the
# live rows, when that is more: a vacuum reads every index of the table whole). Returns
# no row without the jobs table; else can_vacuum, dead_rows, live_rows, analyze (the
# statistics are stale: more rows changed since the last analyze than the threshold plus
# a tenth of the live rows) and claimed.
CLAIM_VACUUM = Query(
    """
with jobs_table as (""" + _JOBS_TABLE + """
), stats as (
  select t.can_vacuum,
         pg_stat_get_dead_tuples(t.oid) as dead_rows,
         pg_stat_get_live_tuples(t.oid) as live_rows,
         pg_stat_get_mod_since_analyze(t.oid) as changed_rows,
         exists (select 1 from pg_stat_progress_vacuum as p where p.relid = t.oid)
           as vacuuming
    from jobs_table as t
), claimed as (
  update {s}._gw_maintenance as m
     set claimed_by = $1::text, claimed_at = now(), finished_at = null
    from stats
   where m.task = 'vacuum_jobs'
     and stats.can_vacuum and not stats.vacuuming
     and stats.dead_rows >= m.dead_rows_left + greatest($3::bigint, stats.live_rows / 50)
     and (m.finished_at is not null or m.claimed_at is null
          or m.claimed_at < now() - $4::float8 * interval '1 second')
  returning m.task
)
select s.can_vacuum, s.dead_rows, s.live_rows,
       s.changed_rows >= $3::bigint + s.live_rows / 10 as analyze,
       exists (select 1 from claimed) as claimed
  from stats as s"""
)

# No parameters. Removes the dead rows of finished jobs and their index entries (the
# fetch reads past those until then). SKIP_LOCKED: skipped at once if another vacuum
# holds the table. INDEX_CLEANUP ON: the index entries are the point, even when the dead
# rows sit on few pages of a large table (where the default may skip the indexes).
VACUUM_JOBS = Query(
    "vacuum (skip_locked, index_cleanup on) {s}._private_jobs, {s}._private_job_queues"
)

# VACUUM_JOBS that also refreshes the planner's statistics of both tables.
VACUUM_ANALYZE_JOBS = Query(
    "vacuum (skip_locked, index_cleanup on, analyze)"
    " {s}._private_jobs, {s}._private_job_queues"
)

# $1 worker id, $2 unescaped schema name. Ends this worker's claim, recording the dead rows
# the vacuum could not remove (still visible to some snapshot): the next vacuum waits for
# the threshold on top of those.
FINISH_VACUUM = Query(
    """
with jobs_table as (""" + _JOBS_TABLE + """
)
update {s}._gw_maintenance as m
   set finished_at = now(), runs = m.runs + 1,
       dead_rows_left = coalesce(
         (select pg_stat_get_dead_tuples(t.oid) from jobs_table as t), 0)
 where m.task = 'vacuum_jobs' and m.claimed_by = $1::text and m.finished_at is null"""
)

# $1 worker id. Gives up this worker's claim without recording a vacuum (it failed or the
# worker is stopping).
RELEASE_VACUUM = Query(
    """
update {s}._gw_maintenance as m set finished_at = now()
 where m.task = 'vacuum_jobs' and m.claimed_by = $1::text and m.finished_at is null"""
)
