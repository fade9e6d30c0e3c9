"""WorkerContext on a real database: queries and added jobs use the worker's pool and schema,
a sync handler runs coroutines on the loop, jobs see the extensions read-only."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import db, hooks
from graphile_worker_cli.context import WorkerContext
from graphile_worker_cli.job import JobSpec, RawJobSpec
from tests.helpers.context import make_context
from tests.helpers.worker import add_job, make_options


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


async def test_a_running_task_adds_raw_and_batch_jobs_through_its_context(
    db_url: str, conn: asyncpg.Connection
) -> None:
    scheduled: list[str] = []

    def before_schedule(event: hooks.BeforeJobScheduleContext) -> None:
        scheduled.append(event.identifier)  # the worker's hooks see the context's adds

    async def spawn(payload: Any, ctx: WorkerContext) -> None:
        raw = await ctx.add_raw_job("child", {"raw": "é"}, JobSpec(queue_name="kids"))
        assert raw.task_identifier == "child" and raw.queue_name == "kids"
        many = await ctx.add_raw_jobs(
            [RawJobSpec("child", [1, 2]), RawJobSpec("other", {"n": 3}, JobSpec(priority=5))]
        )
        assert [j.task_identifier for j in many] == ["child", "other"]
        first = await ctx.add_batch_job("collect", [{"i": 1}, {"i": 2}], JobSpec(job_key="b"))
        second = await ctx.add_batch_job("collect", [{"i": 3}], JobSpec(job_key="b"))
        assert second.id == first.id  # the waiting batch of that key grew

    await add_job(conn, "spawn")
    worker = await make_options(db_url).define_job(spawn, "spawn").on(
        hooks.BeforeJobSchedule, before_schedule
    ).init()
    await worker.run_once()

    rows = await conn.fetch(
        "select t.identifier, q.queue_name, j.payload::text, j.priority, j.key, j.last_error "
        "from graphile_worker._private_jobs j "
        "join graphile_worker._private_tasks t on t.id = j.task_id "
        "left join graphile_worker._private_job_queues q on q.id = j.job_queue_id order by j.id"
    )
    assert [(*r[:2], json.loads(r[2]), *r[3:]) for r in rows] == [
        ("child", "kids", {"raw": "é"}, 0, None, None),
        ("child", None, [1, 2], 0, None, None),
        ("other", None, {"n": 3}, 5, None, None),
        ("collect", None, [{"i": 1}, {"i": 2}, {"i": 3}], 0, "b", None),
    ]
    assert scheduled == ["child", "child", "other", "collect", "collect"]


async def test_one_job_cannot_change_the_extensions_another_job_sees(
    db_url: str, conn: asyncpg.Connection
) -> None:
    class Settings:
        def __init__(self, name: str) -> None:
            self.name = name

    seen: list[str] = []

    async def meddle(payload: Any, ctx: WorkerContext) -> None:
        ctx.extensions.insert(Settings("changed by a job"))

    async def read(payload: Any, ctx: WorkerContext) -> None:
        seen.append(ctx.extensions[Settings].name)

    await add_job(conn, "meddle")
    await add_job(conn, "read")
    options = make_options(db_url, concurrency=1).define_job(meddle, "meddle")
    worker = await options.define_job(read, "read").add_extension(Settings("app")).init()
    await worker.run_once()

    assert seen == ["app"]
    last_error = await conn.fetchval(
        "select last_error from graphile_worker.jobs where task_identifier = 'meddle'"
    )
    assert last_error is not None
    assert "TypeError: ReadOnlyExtensions does not support insert" in last_error
