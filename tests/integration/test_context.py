"""WorkerContext on a real database: queries and added jobs use the worker's pool and schema,
and a sync handler runs coroutines on the loop."""

from __future__ import annotations

import asyncio

import pytest

from graphile_worker_cli import db
from graphile_worker_cli.job import JobSpec
from tests.helpers.context import make_context


async def test_query_and_add_job_use_the_workers_pool_and_schema(db_url: str) -> None:
    pool = await db.create_pool(db_url, min_size=1, max_size=2)
    try:
        ctx = make_context(pool=pool)
        rows = await ctx.query("select $1::int + 1 as answer", 41)
        assert rows[0]["answer"] == 42

        added = await ctx.add_job("follow_up", {"n": 1}, JobSpec(queue_name="q1"))
        assert added.task_identifier == "follow_up" and added.queue_name == "q1"
        more = await ctx.add_jobs([("follow_up", {"n": 2}), ("other", {"n": 3})])
        assert len(more) == 2

        jobs = await ctx.query(
            "select t.identifier, j.payload::text as payload from graphile_worker._private_jobs j "
            "join graphile_worker._private_tasks t on t.id = j.task_id order by j.id"
        )
        assert [(r["identifier"], r["payload"]) for r in jobs] == [
            ("follow_up", '{"n":1}'),
            ("follow_up", '{"n":2}'),
            ("other", '{"n":3}'),
        ]
    finally:
        await pool.close()


async def test_add_job_honours_an_odd_schema_name(pg_admin_url: str) -> None:
    from graphile_worker_cli import migrate
    from tests.helpers.database import create_database, drop_database, unique_name

    name = unique_name("gw_ctx")
    url = await create_database(pg_admin_url, name)
    schema = 'odd "schema"'
    try:
        async with db.connection(url) as conn:
            await migrate.migrate(conn, schema)
        pool = await db.create_pool(url, min_size=1, max_size=1)
        try:
            ctx = make_context(pool=pool, schema=schema)
            await ctx.add_job("in_odd_schema")
            rows = await ctx.query(
                f"select task_identifier from {db.escape_identifier(schema)}.jobs"
            )
            assert [r["task_identifier"] for r in rows] == ["in_odd_schema"]
        finally:
            await pool.close()
    finally:
        await drop_database(pg_admin_url, name)


async def test_sync_handler_can_run_coroutines_on_the_loop(db_url: str) -> None:
    pool = await db.create_pool(db_url, min_size=1, max_size=1)
    try:
        ctx = make_context(pool=pool)
        ctx.bind_loop(asyncio.get_running_loop())

        def sync_handler() -> int:
            ctx.run_coroutine(ctx.add_job("from_a_thread"))
            rows = ctx.run_coroutine(ctx.query("select count(*) as n from graphile_worker.jobs"))
            return int(rows[0]["n"])

        assert await asyncio.to_thread(sync_handler) == 1
        with pytest.raises(RuntimeError, match="block the event loop"):
            ctx.run_coroutine(asyncio.sleep(0))
    finally:
        await pool.close()
