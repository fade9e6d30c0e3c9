"""The fetch statement on a big table: due jobs in (priority, run_at) order, and a plan that
does not read the jobs scheduled for later (bench/scale.py measures what that is worth)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli.queries import worker as worker_queries
from graphile_worker_cli.worker import store
from graphile_worker_cli.worker.fetchconn import PLANNER_SETTINGS

S = "graphile_worker"
LATER_JOBS = 20_000


@pytest.fixture
async def fetch_conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A session with the worker's fetch-session planner settings."""
    conn = await asyncpg.connect(db_url, server_settings=PLANNER_SETTINGS)
    try:
        yield conn
    finally:
        await conn.close()


async def add(conn: asyncpg.Connection, name: str, priority: int, run_at: str) -> int:
    job_id: int = await conn.fetchval(
        f"select id from {S}.add_job('t', $1::json, priority := $2,"
        f" run_at := now() + $3::text::interval)",
        json.dumps({"name": name}), priority, run_at,
    )
    return job_id


async def fetch_names(conn: asyncpg.Connection, task_ids: list[int], batch: int) -> list[str]:
    jobs = await store.fetch_jobs(conn, S, "me", task_ids, batch)
    return [job.payload["name"] for job in jobs]


async def test_due_jobs_come_in_priority_then_run_at_order_past_later_ones(
    conn: asyncpg.Connection, fetch_conn: asyncpg.Connection
) -> None:
    await add(conn, "p5", 5, "-1 minute")
    await add(conn, "p0-late", 0, "-1 minute")
    await add(conn, "p0-early", 0, "-2 minutes")
    await add(conn, "p-3", -3, "-1 second")
    await add(conn, "later-p-10", -10, "1 hour")
    await add(conn, "later-p0", 0, "1 hour")
    locked = await add(conn, "locked-p-20", -20, "-1 hour")
    await conn.execute(f"update {S}._private_jobs set locked_at = now(), locked_by = 'x'"
                       " where id = $1", locked)
    task_ids = list((await store.ensure_tasks(conn, S, ["t"])).values())

    assert await fetch_names(fetch_conn, task_ids, 3) == ["p-3", "p0-early", "p0-late"]
    assert await fetch_names(fetch_conn, task_ids, 3) == ["p5"]
    assert await fetch_names(fetch_conn, task_ids, 3) == []


def _blocks(node: dict[str, Any]) -> int:
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


@pytest.mark.parametrize("within_room", [False, True], ids=["plain", "within_room"])
async def test_a_fetch_that_finds_nothing_due_does_not_read_the_jobs_due_later(
    conn: asyncpg.Connection, fetch_conn: asyncpg.Connection, within_room: bool
) -> None:
    await conn.execute(
        f"select {S}.add_jobs(array(select row('t', json_build_object('i', i), null,"
        f" now() + interval '1 day', null, null, (i % 3)::smallint, null)::{S}.job_spec"
        f" from generate_series(1, {LATER_JOBS}) as i))"
    )
    index_pages = await conn.fetchval(
        f"select pg_relation_size('{S}.jobs_main_index') / current_setting('block_size')::int"
    )
    task_ids = list((await store.ensure_tasks(conn, S, ["t"])).values())
    # With per-task limits (max_concurrency) the worker fetches with its own statement.
    query = worker_queries.FETCH_JOBS_WITHIN_ROOM if within_room else worker_queries.FETCH_JOBS
    room: list[Any] = [task_ids, [3]] if within_room else []
    async with fetch_conn.transaction():
        plan = json.loads(await fetch_conn.fetchval(
            "explain (analyze, buffers, format json) " + query.sql(S), "me", task_ids, 500,
            *room,
        ))
    top = plan[0]["Plan"]
    assert top["Actual Rows"] == 0
    # the old plan read every leaf page of the index (~100 for these jobs); this one reads
    # a few pages per priority
    assert index_pages > 60
    assert _blocks(top) < 40, (_blocks(top), index_pages)


FETCH_INDEX = "_gw_jobs_fetch_index"
TAKEN_JOBS = 10_000


def _index_scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if node.get("Node Type") == "Index Scan" else []
    for child in node.get("Plans", []):
        found += _index_scans(child)
    return found


async def test_gw_migrations_add_the_fetch_index(conn: asyncpg.Connection) -> None:
    definition = await conn.fetchval(
        "select pg_get_indexdef(to_regclass($1))", f"{S}.{FETCH_INDEX}"
    )
    assert definition == (
        f"CREATE INDEX {FETCH_INDEX} ON {S}._private_jobs USING btree (priority, run_at)"
        " WHERE is_available"
    )


async def add_jobs_together(conn: asyncpg.Connection, count: int) -> list[int]:
    """``count`` jobs j1, j2, ... of task t in one ``add_jobs`` call (one run_at for all);
    the task ids to fetch with."""
    await conn.execute(
        f"select {S}.add_jobs(array(select row('t', json_build_object('name', 'j' || i), null,"
        f" null, null, null, null, null)::{S}.job_spec from generate_series(1, $1::int) as i))",
        count,
    )
    return list((await store.ensure_tasks(conn, S, ["t"])).values())


async def test_jobs_added_together_come_in_the_order_they_were_added(
    conn: asyncpg.Connection, fetch_conn: asyncpg.Connection
) -> None:
    task_ids = await add_jobs_together(conn, 6)
    assert await fetch_names(fetch_conn, task_ids, 4) == ["j1", "j2", "j3", "j4"]
    assert await fetch_names(fetch_conn, task_ids, 4) == ["j5", "j6"]


async def _candidate_scan(fetch_conn: asyncpg.Connection, task_ids: list[int],
                          *, without_gw_index: bool = False) -> dict[str, Any]:
    """The fetch's scan for candidates, from an ``EXPLAIN ANALYZE`` of a fetch of 24 that
    is rolled back (optionally with gw's index dropped for the while)."""
    transaction = fetch_conn.transaction()
    await transaction.start()
    try:
        if without_gw_index:
            await fetch_conn.execute(f"drop index {S}.{FETCH_INDEX}")
        plan = json.loads(await fetch_conn.fetchval(
            "explain (analyze, buffers, format json) " + worker_queries.FETCH_JOBS.sql(S),
            "me", task_ids, 24,
        ))
    finally:
        await transaction.rollback()
    scans = [scan for scan in _index_scans(plan[0]["Plan"])
             if scan.get("Index Name") in (FETCH_INDEX, "jobs_main_index")]
    assert len(scans) == 1, scans
    assert scans[0]["Actual Rows"] == 24
    return scans[0]


async def test_the_fetch_reads_fewer_pages_past_the_jobs_already_done(
    conn: asyncpg.Connection, fetch_conn: asyncpg.Connection
) -> None:
    # One add_jobs call: every job has the same run_at, as after a burst of jobs added
    # together. Then the first TAKEN_JOBS go the way a worker takes them, with no vacuum.
    task_ids = await add_jobs_together(conn, 2 * TAKEN_JOBS)
    for _ in range(TAKEN_JOBS // 500):
        jobs = await store.fetch_jobs(fetch_conn, S, "me", task_ids, 500)
        await store.complete_jobs(conn, S, "me", [job.id for job in jobs])
    await _candidate_scan(fetch_conn, task_ids)  # the first pass marks the dead entries
    ours = await _candidate_scan(fetch_conn, task_ids)
    reference = await _candidate_scan(fetch_conn, task_ids, without_gw_index=True)
    assert ours["Index Name"] == FETCH_INDEX
    assert reference["Index Name"] == "jobs_main_index"
    # the dead entries of the 10,000 jobs done span ~70 leaf pages of jobs_main_index
    assert _blocks(ours) * 3 < _blocks(reference) * 2, (_blocks(ours), _blocks(reference))
