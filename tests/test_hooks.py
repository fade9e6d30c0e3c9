"""HookRegistry semantics, plugin loading, BeforeJobSchedule on every WorkerUtils add path,
JobRecovery / WorkerRecovered around a sweep (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import db, hooks, job, recovery, utils
from graphile_worker_cli.cron import MockClock, parse_crontab
from graphile_worker_cli.cron.scheduler import run_scheduler
from graphile_worker_cli.errors import (
    JobScheduleFailedError,
    JobScheduleSkippedError,
    PluginLoadError,
)
from graphile_worker_cli.hooks import HookResult, JobRecoveryResult, JobScheduleResult
from tests.recovery_helpers import add_locked_job, age_heartbeat

S = "graphile_worker"


def a_job(**fields: Any) -> job.Job:
    now = datetime.now(UTC)
    values: dict[str, Any] = dict(
        id=1, task_identifier="t", queue_name=None, payload={"a": 1}, priority=0, run_at=now,
        attempts=1, max_attempts=25, last_error=None, created_at=now, updated_at=now,
        key=None, locked_at=now, locked_by="w", revision=0, flags=None,
    )
    values.update(fields)
    return job.Job(**values)


# --- registry ------------------------------------------------------------------------------


def test_empty_registry_is_inactive_and_registration_activates_it() -> None:
    registry = hooks.HookRegistry()
    assert not registry.active and registry.is_empty()
    assert hooks.JobStart not in registry
    registry.on(hooks.JobStart, lambda ctx: None)
    assert registry.active and hooks.JobStart in registry.events
    assert hooks.JobComplete not in registry


def test_on_rejects_what_is_not_an_event_or_not_callable() -> None:
    registry = hooks.HookRegistry()
    with pytest.raises(TypeError, match="not a hook event"):
        registry.on(int, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not callable"):
        registry.on(hooks.JobStart, 42)  # type: ignore[arg-type]


async def test_observers_run_in_order_sync_and_async_and_a_raising_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def first(ctx: hooks.JobStartContext) -> None:
        calls.append(f"first {ctx.job.id}")

    def broken(ctx: hooks.JobStartContext) -> None:
        raise RuntimeError("boom")

    async def last(ctx: hooks.JobStartContext) -> None:
        calls.append(f"last {ctx.worker_id}")

    registry = hooks.HookRegistry().on(hooks.JobStart, first).on(hooks.JobStart, broken)
    registry.on(hooks.JobStart, last)
    with caplog.at_level(logging.ERROR, "gw.hooks"):
        await registry.emit(hooks.JobStart, hooks.JobStartContext(a_job(id=7), "w1"))
    assert calls == ["first 7", "last w1"]
    assert "JobStart hook" in caplog.text and "RuntimeError: boom" in caplog.text


async def test_first_terminal_interceptor_decides_and_a_raising_one_fails() -> None:
    seen: list[str] = []

    def carry_on(ctx: hooks.BeforeJobRunContext) -> None:
        seen.append("carry_on")

    def skip(ctx: hooks.BeforeJobRunContext) -> HookResult:
        seen.append("skip")
        return HookResult.SKIP

    def never(ctx: hooks.BeforeJobRunContext) -> HookResult:
        seen.append("never")
        return HookResult.fail("no")

    registry = hooks.HookRegistry()
    for handler in (carry_on, skip, never):
        registry.on(hooks.BeforeJobRun, handler)
    ctx = hooks.BeforeJobRunContext(a_job(), "w")
    assert await registry.before_job_run(ctx) == HookResult.SKIP
    assert seen == ["carry_on", "skip"]

    def raises(ctx: hooks.BeforeJobRunContext) -> HookResult:
        raise ValueError("hook exploded")

    failing = hooks.HookRegistry().on(hooks.BeforeJobRun, raises)
    result = await failing.before_job_run(ctx)
    assert result == HookResult.fail("ValueError: hook exploded")
    wrong = hooks.HookRegistry().on(hooks.AfterJobRun, lambda c: "yes")  # type: ignore[arg-type,return-value]
    after = hooks.AfterJobRunContext(a_job(), "w", outcome=_success(), duration=0.1)
    outcome = await wrong.after_job_run(after)
    assert outcome.action is hooks.results.Action.FAIL
    assert "expected a HookResult" in (outcome.message or "")
    assert await hooks.HookRegistry().after_job_run(after) == HookResult.CONTINUE


def _success() -> Any:
    from graphile_worker_cli import tasks

    return tasks.TaskSuccess()


async def test_before_job_schedule_chains_payloads_then_skip_or_fail_raise() -> None:
    registry = hooks.HookRegistry()
    registry.on(hooks.BeforeJobSchedule,
                lambda c: JobScheduleResult.continue_with({**c.payload, "one": 1}))
    registry.on(hooks.BeforeJobSchedule, lambda c: None)
    registry.on(hooks.BeforeJobSchedule,
                lambda c: JobScheduleResult.continue_with({**c.payload, "two": 2}))
    ctx = hooks.BeforeJobScheduleContext("t", {"x": 0}, job.JobSpec())
    assert await registry.before_job_schedule(ctx) == {"x": 0, "one": 1, "two": 2}

    skipping = hooks.HookRegistry().on(hooks.BeforeJobSchedule, lambda c: JobScheduleResult.SKIP)
    with pytest.raises(JobScheduleSkippedError):
        await skipping.before_job_schedule(ctx)
    refusing = hooks.HookRegistry().on(
        hooks.BeforeJobSchedule, lambda c: JobScheduleResult.fail("quota exceeded")
    )
    with pytest.raises(JobScheduleFailedError, match="quota exceeded"):
        await refusing.before_job_schedule(ctx)

    def raises(c: hooks.BeforeJobScheduleContext) -> None:
        raise KeyError("tenant")

    with pytest.raises(JobScheduleFailedError, match="KeyError"):
        await hooks.HookRegistry().on(hooks.BeforeJobSchedule, raises).before_job_schedule(ctx)


async def test_job_recovery_raising_or_wrong_type_means_default() -> None:
    ctx = hooks.JobRecoveryContext(a_job(), "sweeper", "dead")

    def raises(c: hooks.JobRecoveryContext) -> None:
        raise RuntimeError("x")

    registry = hooks.HookRegistry().on(hooks.JobRecovery, raises)
    assert await registry.job_recovery(ctx) == JobRecoveryResult.DEFAULT
    wrong = hooks.HookRegistry().on(hooks.JobRecovery, lambda c: 3)  # type: ignore[arg-type,return-value]
    assert await wrong.job_recovery(ctx) == JobRecoveryResult.DEFAULT
    chosen = hooks.HookRegistry().on(hooks.JobRecovery, lambda c: None)
    chosen.on(hooks.JobRecovery, lambda c: JobRecoveryResult.SKIP)
    assert await chosen.job_recovery(ctx) == JobRecoveryResult.SKIP


def test_merge_keeps_order_and_plugins() -> None:
    class Plug:
        def register(self, registry: hooks.HookRegistry) -> None:
            registry.on(hooks.JobFail, lambda c: None)

    one = hooks.HookRegistry().on(hooks.JobStart, print)
    two = hooks.HookRegistry().add_plugin(Plug())
    one.merge(two)
    assert one.events == {hooks.JobStart, hooks.JobFail}
    assert len(one.plugins) == 1


# --- plugin loading ------------------------------------------------------------------------


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"gw_test_plugins_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        "from graphile_worker_cli import hooks\n"
        "class Counting:\n"
        "    def register(self, registry):\n"
        "        registry.on(hooks.JobStart, lambda ctx: None)\n"
        "        registry.on(hooks.JobComplete, lambda ctx: None)\n"
        "def as_function(registry):\n"
        "    registry.on(hooks.JobFail, lambda ctx: None)\n"
        "class Broken:\n"
        "    def __init__(self):\n"
        "        raise RuntimeError('needs arguments')\n"
        "not_a_plugin = 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_plugins_load_from_class_and_function_names(plugin_module: str) -> None:
    registry = hooks.load_plugins([f"{plugin_module}:Counting", f"{plugin_module}:as_function"])
    assert registry.events == {hooks.JobStart, hooks.JobComplete, hooks.JobFail}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_colon_here", "expected 'package.module:Name'"),
        ("gw_no_such_module_xyz:Plugin", "importing 'gw_no_such_module_xyz' failed"),
        ("{mod}:Missing", "has no 'Missing'"),
        ("{mod}:Broken", "Broken() failed (RuntimeError: needs arguments)"),
        ("{mod}:not_a_plugin", "expected 'package.module:Name'"),
    ],
)
def test_bad_plugin_paths_are_one_line_errors(plugin_module: str, path: str, message: str) -> None:
    with pytest.raises(PluginLoadError) as raised:
        hooks.load_plugin(path.format(mod=plugin_module))
    assert message in raised.value.message
    assert "\n" not in raised.value.message
    assert raised.value.exit_code == 2


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
    async with await utils.WorkerUtils.connect(db_url, hooks=tagging_registry(seen)) as wu:
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
    async with await utils.WorkerUtils.connect(db_url, hooks=hooks.HookRegistry()) as wu:
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
    wu = await utils.WorkerUtils.connect(db_url, hooks=registry)
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
    assert rows[default]["attempts"] == 2 and rows[default]["locked_by"] is None
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
