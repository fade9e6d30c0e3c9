"""Hooks on a real PostgreSQL: BeforeJobSchedule on every WorkerUtils add path, JobScheduled
in the caller's transaction, JobRecovery / WorkerRecovered around a sweep, cron's hooks."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import db, hooks, job, recovery
from graphile_worker_cli.cron import MockClock, parse_crontab
from graphile_worker_cli.cron.scheduler import run_scheduler
from graphile_worker_cli.errors import (
    JobScheduleFailedError,
    JobScheduleSkippedError,
)
from graphile_worker_cli.hooks import JobRecoveryResult, JobScheduleResult
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.recovery import add_locked_job, age_heartbeat

S = "graphile_worker"


# --- BeforeJobSchedule on every add path ---------------------------------------------------


def tagging_registry(seen: list[tuple[str, Any]]) -> hooks.HookRegistry:
    def tag(ctx: hooks.BeforeJobScheduleContext) -> JobScheduleResult | None:
        seen.append((ctx.identifier, ctx.payload))
        if isinstance(ctx.payload, dict) and ctx.payload.get("skip"):
            return JobScheduleResult.SKIP
        if isinstance(ctx.payload, dict) and ctx.payload.get("refuse"):
            return JobScheduleResult.fail("refused by policy")
        if isinstance(ctx.payload, list):
            return JobScheduleResult.continue_with([*ctx.payload, "tagged"])
        return JobScheduleResult.continue_with({**(ctx.payload or {}), "tagged": True})

    return hooks.HookRegistry().on(hooks.BeforeJobSchedule, tag)


async def stored_payloads(conn: asyncpg.Connection) -> list[Any]:
    rows = await conn.fetch(f"select payload from {S}._private_jobs order by id")
    return [json.loads(row["payload"]) for row in rows]


async def test_every_add_path_runs_before_job_schedule(
    db_url: str, conn: asyncpg.Connection
) -> None:
    seen: list[tuple[str, Any]] = []
    async with await WorkerUtils.connect(db_url, hooks=tagging_registry(seen)) as wu:
        first = await wu.add_job("a", {"n": 1})
        assert first.payload == {"n": 1, "tagged": True}
        await wu.add_raw_job("b", {"n": 2})
        await wu.add_batch_job("c", [1, 2])
        many = await wu.add_jobs([("d", {"n": 3}), ("d", {"skip": True}), ("d", {"n": 4})])
        assert [j.payload for j in many] == [{"n": 3, "tagged": True}, {"n": 4, "tagged": True}]
        await wu.add_raw_jobs([job.RawJobSpec("e", {"n": 5})])
        with pytest.raises(JobScheduleSkippedError):
            await wu.add_job("a", {"skip": True})
        with pytest.raises(JobScheduleFailedError, match="refused by policy"):
            await wu.add_job("a", {"refuse": True})
        with pytest.raises(JobScheduleFailedError):
            await wu.add_jobs([("d", {"n": 6}), ("d", {"refuse": True})])
    assert [name for name, _ in seen] == ["a", "b", "c", "d", "d", "d", "e", "a", "a", "d", "d"]
    assert await stored_payloads(conn) == [
        {"n": 1, "tagged": True}, {"n": 2, "tagged": True}, [1, 2, "tagged"],
        {"n": 3, "tagged": True}, {"n": 4, "tagged": True}, {"n": 5, "tagged": True},
    ]


async def test_add_job_without_hooks_is_unchanged(db_url: str, conn: asyncpg.Connection) -> None:
    async with await WorkerUtils.connect(db_url, hooks=hooks.HookRegistry()) as wu:
        await wu.add_job("a", {"n": 1})
    assert await stored_payloads(conn) == [{"n": 1}]


async def test_job_scheduled_runs_on_the_callers_transaction(
    db_url: str, conn: asyncpg.Connection
) -> None:
    visible: list[int] = []

    async def scheduled(ctx: hooks.JobScheduledContext) -> None:
        count = await ctx.conn.fetchval(
            f"select count(*) from {S}._private_jobs where id = $1", ctx.job.id
        )
        visible.append(count)

    registry = hooks.HookRegistry().on(hooks.JobScheduled, scheduled)
    wu = await WorkerUtils.connect(db_url, hooks=registry)
    async with wu, wu.pool.acquire() as own, own.transaction():
        await wu.add_job("a", {"n": 1}, conn=own)
        await wu.add_jobs([("b", {}), ("c", {})], conn=own)
    assert visible == [1, 1, 1]


# --- JobRecovery / WorkerRecovered ---------------------------------------------------------


async def register_dead(conn: asyncpg.Connection, worker_id: str) -> None:
    await recovery.register_worker(conn, S, worker_id, heartbeat_interval=1.0)
    await age_heartbeat(conn, worker_id, "1 hour")


async def test_job_recovery_outcomes_and_worker_recovered(conn: asyncpg.Connection) -> None:
    await register_dead(conn, "gw-dead")
    default = await add_locked_job(conn, "gw-dead", attempts=3)
    moved = await add_locked_job(conn, "gw-dead", attempts=3)
    backoff = await add_locked_job(conn, "gw-dead", attempts=3)
    skipped = await add_locked_job(conn, "gw-dead", attempts=3, queue="serial")
    later = datetime.now(UTC) + timedelta(hours=2)
    contexts: list[hooks.JobRecoveryContext] = []

    def decide(ctx: hooks.JobRecoveryContext) -> JobRecoveryResult | None:
        contexts.append(ctx)
        if ctx.job.id == moved:
            return JobRecoveryResult.reschedule(later, attempts=0)
        if ctx.job.id == backoff:
            return JobRecoveryResult.FAIL_WITH_BACKOFF
        if ctx.job.id == skipped:
            return JobRecoveryResult.SKIP
        return None

    recovered: list[hooks.WorkerRecoveredContext] = []
    registry = hooks.HookRegistry().on(hooks.JobRecovery, decide)
    registry.on(hooks.WorkerRecovered, recovered.append)
    result = await recovery.sweep_stale_workers(conn, S, sweeper_id="gw-me", hooks=registry)
    assert result.worker_ids == ["gw-dead"]
    assert sorted(c.job.id for c in contexts) == sorted([default, moved, backoff, skipped])
    assert {(c.previous_worker_id, c.worker_id, c.job.attempts) for c in contexts} == {
        ("gw-dead", "gw-me", 3)
    }
    rows = {
        r["id"]: r for r in await conn.fetch(
            f"select id, attempts, run_at, locked_by, run_at - now() as wait "
            f"from {S}._private_jobs"
        )
    }
    assert rows[default]["attempts"] == 3 and rows[default]["locked_by"] is None
    assert rows[moved]["attempts"] == 0 and rows[moved]["run_at"] == later
    assert rows[backoff]["attempts"] == 3 and rows[backoff]["locked_by"] is None
    assert timedelta(seconds=15) < rows[backoff]["wait"] < timedelta(seconds=25)  # e**3 = 20 s
    assert rows[skipped]["locked_by"] == "gw-dead" and rows[skipped]["attempts"] == 3
    queue_lock = await conn.fetchval(
        f"select locked_by from {S}._private_job_queues where queue_name = 'serial'"
    )
    assert queue_lock == "gw-dead"
    assert len(recovered) == 1
    assert recovered[0].dead_worker_ids == ("gw-dead",)
    assert set(recovered[0].job_ids) == {default, moved, backoff, skipped}
    assert recovered[0].worker_id == "gw-me" and recovered[0].jobs_recovered == 4


async def test_dry_run_sweep_emits_no_worker_recovered(conn: asyncpg.Connection) -> None:
    await register_dead(conn, "gw-dead")
    await add_locked_job(conn, "gw-dead")
    recovered: list[Any] = []
    registry = hooks.HookRegistry().on(hooks.WorkerRecovered, recovered.append)
    options = recovery.SweepStaleWorkersOptions(dry_run=True)
    result = await recovery.sweep_stale_workers(conn, S, options, hooks=registry)
    assert result.worker_ids == ["gw-dead"] and recovered == []


# --- cron ----------------------------------------------------------------------------------


async def test_cron_runs_tick_schedule_hooks_and_reports_scheduled_jobs(
    db_url: str, conn: asyncpg.Connection
) -> None:
    items = parse_crontab(
        "* * * * * tagged ?id=tagged {n: 1}\n"
        "* * * * * skipped ?id=skipped\n"
        "* * * * * refused ?id=refused\n"
    )
    ticks: list[hooks.CronTickContext] = []
    scheduled: list[hooks.CronJobScheduledContext] = []

    def schedule(ctx: hooks.BeforeJobScheduleContext) -> JobScheduleResult:
        if ctx.identifier == "skipped":
            return JobScheduleResult.SKIP
        if ctx.identifier == "refused":
            return JobScheduleResult.fail("not on sundays")
        return JobScheduleResult.continue_with({**ctx.payload, "tagged": True})

    registry = hooks.HookRegistry().on(hooks.BeforeJobSchedule, schedule)
    registry.on(hooks.CronTick, ticks.append).on(hooks.CronJobScheduled, scheduled.append)
    clock = MockClock(datetime(2030, 1, 6, 12, 0, 30, tzinfo=UTC))
    stop = asyncio.Event()
    pool = await db.create_pool(db_url, min_size=1, max_size=2)
    try:
        task = asyncio.create_task(
            run_scheduler(pool, S, items, stop=stop, clock=clock, hooks=registry)
        )
        await clock.wait_for_sleepers(1)
        clock.set(datetime(2030, 1, 6, 12, 1, tzinfo=UTC))
        await clock.wait_for_sleepers(1)
        stop.set()
        await task
    finally:
        await pool.close()
    minute = datetime(2030, 1, 6, 12, 1, tzinfo=UTC)
    assert [(t.timestamp, [c.identifier for c in t.crontabs]) for t in ticks] == [
        (minute, ["tagged", "skipped", "refused"])
    ]
    assert [(s.crontab.identifier, s.scheduled_at, s.backfilled) for s in scheduled] == [
        ("tagged", minute, False)
    ]
    rows = await conn.fetch(f"select id, payload from {S}._private_jobs")
    assert [r["id"] for r in rows] == [scheduled[0].job_id]
    payload = json.loads(rows[0]["payload"])
    assert payload["n"] == 1 and payload["tagged"] is True and "_cron" in payload
