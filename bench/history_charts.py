"""``python -m bench history_charts``: what the dashboard's charts cost on a big history.

Fills a fresh gw database with ``--records`` job records (``--batch`` jobs per history row,
as a worker settling that many at a time writes them) spread evenly over the last day, then
times ``GET /api/charts`` (the admin service behind it) for the day and the hour:

- **unrolled**: every minute read from the history itself, what a schema without the
  per-minute rollup (before gw migration 5) does, and what every chart did before it;
- **rolled up**: after the history upkeep rolled the closed minutes up
  (``_gw_job_history_minutes``), the charts read those plus the minutes not rolled up yet.

It also times the upkeep rounds that roll the whole day up (a backlog: in steady state a
round rolls one minute). The jobs charted differ by the minutes the window moved on
between the two readings. Medians of ``--repeats``; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from bench import databases
from graphile_worker_cli import db
from graphile_worker_cli.admin.service import AdminService
from graphile_worker_cli.worker import history
from graphile_worker_cli.worker_utils import WorkerUtils

SCHEMA = db.DEFAULT_SCHEMA
DAY = 86400.0

# $1 history rows, $2 jobs per row. Rows end evenly over the last day; every 50th failed;
# each job waited 2 s plus up to a second.
_FILL = """
insert into {s}._gw_job_history
  (finished_at, worker_id, outcome, job_ids, task_identifiers, queue_names, keys, attempts,
   max_attempts, created_at, run_at, started_at, last_errors)
select f.at, 'bench', case when g % 50 = 0 then 'failed' else 'completed' end,
       array(select g::bigint * $2 + k from generate_series(1, $2::int) as k),
       array_fill('bench_noop'::text, array[$2::int]), array_fill(null::text, array[$2::int]),
       array_fill(null::text, array[$2::int]), array_fill(1, array[$2::int]),
       array_fill(25, array[$2::int]),
       array_fill(f.at - interval '3 seconds', array[$2::int]),
       array_fill(f.at - interval '3 seconds', array[$2::int]),
       array(select f.at - interval '1 second' + ((g + k) % 997) * interval '1 millisecond'
               from generate_series(1, $2::int) as k),
       array_fill(null::text, array[$2::int])
  from generate_series(0, $1::int - 1) as g,
       lateral (select now() - (g * $3::float8) * interval '1 second' as at) as f"""


async def _fill(url: str, records: int, batch: int) -> None:
    rows = max(1, records // batch)
    conn = await databases.connect(url)
    try:
        await conn.execute(_FILL.replace("{s}", db.escape_identifier(SCHEMA)), rows, batch,
                           DAY / rows)
        await conn.execute(f"vacuum analyze {db.escape_identifier(SCHEMA)}._gw_job_history")
    finally:
        await conn.close()


async def _timed_charts(service: AdminService, window: str, repeats: int) -> tuple[float, int]:
    times, jobs = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        data = await service.charts(window)
        times.append(time.perf_counter() - started)
        jobs = sum(p["completed"] + p["failed"] for p in data["outcomes"])
    return statistics.median(times), jobs


async def _roll_up(pool: asyncpg.Pool) -> tuple[float, int, int]:
    """Upkeep rounds until every closed minute is rolled up: seconds, rounds, minutes."""
    started, rounds, minutes = time.perf_counter(), 0, 0
    while True:
        result = await history.run_upkeep(pool, SCHEMA, 7 * DAY)
        rounds += 1
        minutes += result.minutes_rolled
        if result.minutes_rolled == 0:
            return time.perf_counter() - started, rounds, minutes


async def _run(records: int, batch: int, repeats: int, before_repeats: int) -> None:
    dbs = databases.Databases(databases.admin_url())
    try:
        url = await dbs.create("history_charts")
        await databases.migrate_with_gw(url)
        started = time.perf_counter()
        await _fill(url, records, batch)
        print(f"{records:,} job records in history rows of {batch}: filled in "
              f"{time.perf_counter() - started:.1f} s")
        async with await WorkerUtils.connect(url) as utils:
            service = AdminService(utils)
            before = {w: await _timed_charts(service, w, before_repeats) for w in ("day", "hour")}
            rolled_seconds, rounds, minutes = await _roll_up(utils.pool)
            after = {w: await _timed_charts(service, w, repeats) for w in ("day", "hour")}
        print(f"rolling the day up: {rolled_seconds:.1f} s in {rounds} upkeep round(s), "
              f"{minutes} minute rows")
        print(f"{'window':<6} {'unrolled':>12} {'rolled up':>12} {'ratio':>8}  jobs charted")
        for window in ("day", "hour"):
            (slow, jobs_before), (fast, jobs_after) = before[window], after[window]
            print(f"{window:<6} {slow * 1000:10.1f}ms {fast * 1000:10.1f}ms "
                  f"{slow / fast:7.0f}x  {jobs_before:,} / {jobs_after:,}")
    finally:
        await dbs.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench history_charts",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="job records")
    parser.add_argument("--batch", type=int, default=1, help="jobs per history row")
    parser.add_argument("--repeats", type=int, default=5, help="chart reads, rolled up")
    parser.add_argument("--before-repeats", type=int, default=3, help="chart reads, unrolled")
    args = parser.parse_args(argv)
    for name in ("records", "batch", "repeats", "before_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    asyncio.run(_run(args.records, args.batch, args.repeats, args.before_repeats))
    return 0
