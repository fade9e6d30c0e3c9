"""The per-minute rollup of the job history (gw migration 5) that the dashboard's charts
read: the upkeep rolls closed minutes up once, the charts show the same figures from the
rollup as from the raw history, a backlog is rolled up in steps, and old minutes go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli.admin.service import AdminService
from graphile_worker_cli.worker import history
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.worker import S

DAY = 86400.0


async def _this_minute(conn: asyncpg.Connection) -> datetime:
    moment: datetime = await conn.fetchval("select date_trunc('minute', now())")
    return moment


async def _records(
    conn: asyncpg.Connection, minute: datetime, minutes_ago: int, jobs: int, *,
    wait: float = 2.0, outcome: str = "completed", started: bool = True,
) -> None:
    """One history row of ``jobs`` jobs that finished in the middle of the minute
    ``minutes_ago`` minutes before ``minute``, each ``wait`` seconds in the queue (plus i ms
    for job i); no started_at if not ``started``."""
    await conn.execute(
        f"insert into {S}._gw_job_history (finished_at, worker_id, outcome, job_ids,"
        " task_identifiers, queue_names, keys, attempts, max_attempts, created_at, run_at,"
        " started_at, last_errors)"
        " select t, 'w', $3, array(select k::bigint from generate_series(1, $2) k),"
        " array_fill('t'::text, array[$2]), array_fill(null::text, array[$2]),"
        " array_fill(null::text, array[$2]), array_fill(1, array[$2]),"
        " array_fill(25, array[$2]), array_fill(t - interval '1 hour', array[$2]),"
        " array_fill(t - interval '1 hour', array[$2]),"
        " case when $5 then array(select t - interval '1 hour' + ($4 + k / 1000.0)"
        "   * interval '1 second' from generate_series(1, $2) k)"
        "   else array_fill(null::timestamptz, array[$2]) end,"
        " array_fill(null::text, array[$2])"
        " from (select $6::timestamptz - $1::int * interval '1 minute'"
        "  + interval '30 seconds') as at(t)",
        minutes_ago, jobs, outcome, wait, started, minute,
    )


@pytest.fixture
async def service(db_url: str) -> AsyncIterator[AdminService]:
    async with await WorkerUtils.connect(db_url) as utils:
        yield AdminService(utils)


async def _upkeep(db_url: str, retention: float = DAY) -> history.UpkeepResult:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    try:
        return await history.run_upkeep(pool, S, retention)
    finally:
        await pool.close()


def _series(charts: dict[str, Any]) -> tuple[Any, Any]:
    return charts["outcomes"], charts["wait"]


async def test_the_charts_show_the_same_figures_from_the_rollup_as_from_the_history(
    db_url: str, conn: asyncpg.Connection, service: AdminService
) -> None:
    now = await _this_minute(conn)
    for minutes_ago, jobs, wait in [(50, 5, 1.0), (50, 3, 30.0), (20, 40, 0.2), (3, 7, 5.0),
                                    (0, 4, 9.0)]:
        await _records(conn, now, minutes_ago, jobs, wait=wait)
    await _records(conn, now, 20, 2, outcome="failed")
    await _records(conn, now, 20, 6, started=False)  # settled by hand: counted, no wait
    raw = {w: await service.charts(w) for w in ("hour", "day")}

    result = await _upkeep(db_url)

    # The current minute and the one before it (the grace) are left to the next rounds.
    assert result.minutes_rolled == 3
    rolled = await conn.fetch(
        f"select minute, completed, failed, wait_counts from {S}._gw_job_history_minutes"
        " order by minute")
    assert [(r["completed"], r["failed"]) for r in rolled] == [(8, 0), (46, 2), (7, 0)]
    assert [sum(r["wait_counts"]) for r in rolled] == [8, 42, 7]
    assert await conn.fetchval(
        f"select rolled_until = date_trunc('minute', now() - interval '1 minute')"
        f" from {S}._gw_history_state")
    for window in ("hour", "day"):
        assert _series(await service.charts(window)) == _series(raw[window])
    hour = raw["hour"]
    assert sum(p["completed"] for p in hour["outcomes"]) == 65
    # The minute of 5 jobs waiting ~1 s and 3 waiting ~30 s: exact p50/p95 of the minute.
    first = hour["wait"][0]
    assert (first["p50"], first["p95"]) == (pytest.approx(1.0045, abs=0.001),
                                            pytest.approx(30.00265, abs=0.001))


async def test_the_minutes_not_rolled_up_yet_are_read_from_the_history(
    db_url: str, conn: asyncpg.Connection, service: AdminService
) -> None:
    now = await _this_minute(conn)
    await _records(conn, now, 10, 3)
    await _upkeep(db_url)
    await _records(conn, now, 0, 2)  # after the rolled minutes: read from the history
    again = await _upkeep(db_url)
    assert again.minutes_rolled == 0
    charts = await service.charts("hour")
    assert sum(p["completed"] for p in charts["outcomes"]) == 5


async def test_a_backlog_is_rolled_up_in_steps_within_the_retention(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch,
    service: AdminService,
) -> None:
    now = await _this_minute(conn)
    for hours in (30, 20, 10, 5, 1):
        await _records(conn, now, hours * 60, 2)
    raw = await service.charts("day")
    monkeypatch.setattr(history, "ROLLUP_BUDGET", 0.0)  # one statement a round
    first = await _upkeep(db_url)
    # Older than the retention (a day): never rolled up; then one 10-minute step a round.
    assert first.minutes_rolled == 1
    rounds = 1
    while (await _upkeep(db_url)).minutes_rolled:
        rounds += 1
    assert rounds == 4
    assert await conn.fetchval(f"select count(*) from {S}._gw_job_history_minutes") == 4
    assert _series(await service.charts("day")) == _series(raw)


async def test_rolled_up_minutes_older_than_the_retention_are_pruned(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        f"insert into {S}._gw_job_history_minutes values"
        " (date_trunc('minute', now() - interval '3 days'), 1, 0, 1, 1, '{}'),"
        " (date_trunc('minute', now() - interval '1 hour'), 1, 0, 1, 1, '{}')")
    await _upkeep(db_url, retention=2 * DAY)
    assert await conn.fetchval(f"select count(*) from {S}._gw_job_history_minutes") == 1


async def test_without_the_rollup_the_charts_read_the_history_and_the_upkeep_runs(
    db_url: str, conn: asyncpg.Connection, service: AdminService
) -> None:
    await conn.execute(f"drop table {S}._gw_job_history_minutes")
    await conn.execute(f"drop table {S}._gw_history_state")
    await _records(conn, await _this_minute(conn), 10, 3)
    result = await _upkeep(db_url)
    assert (result.ran, result.minutes_rolled) == (True, 0)
    charts = await service.charts("day")
    assert sum(p["completed"] for p in charts["outcomes"]) == 3


async def test_the_history_arrays_are_compressed_with_lz4_where_the_server_has_it(
    conn: asyncpg.Connection
) -> None:
    """Compressing a settled batch's arrays is part of the completing statement's cost."""
    version = int(await conn.fetchval("show server_version_num"))
    methods = await conn.fetch(
        "select attname, attcompression::text from pg_attribute"
        " where attrelid = $1::regclass and attnum > 0 and attndims > 0",
        f"{S}._gw_job_history",
    ) if version >= 140000 else []
    if not methods:
        pytest.skip("SET COMPRESSION needs PostgreSQL 14")
    assert len(methods) == 10
    assert {row["attcompression"] for row in methods} == {"l"}
