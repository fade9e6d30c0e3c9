"""Hooks in a running worker (real PostgreSQL): every event once and in order for each
outcome, each interceptor outcome, raising hooks, hooks reaching ctx.add_job."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

import asyncpg
import pydantic

from graphile_worker_cli import context, hooks, tasks
from graphile_worker_cli.hooks import HookResult, JobScheduleResult
from graphile_worker_cli.worker import WorkerOptions
from tests.helpers.worker import add_job, make_options

S = "graphile_worker"

JOB_EVENTS: tuple[type[hooks.Event[Any, Any]], ...] = (
    hooks.JobFetch, hooks.BeforeJobRun, hooks.JobStart, hooks.AfterJobRun, hooks.JobComplete,
    hooks.JobFail, hooks.JobPermanentlyFail, hooks.JobInterrupted,
)
WORKER_EVENTS: tuple[type[hooks.Event[Any, Any]], ...] = (
    hooks.WorkerInit, hooks.WorkerStart, hooks.WorkerShutdown,
)


class Recorder:
    """Records (event name, context) for every job and worker event."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def register(self, registry: hooks.HookRegistry) -> None:
        for event in (*WORKER_EVENTS, *JOB_EVENTS):
            registry.on(event, self._recorder(event.__name__))

    def _recorder(self, name: str) -> Any:
        def record(ctx: Any) -> None:
            self.seen.append((name, ctx))

        return record

    def names(self, job_id: int | None = None) -> list[str]:
        return [
            name for name, ctx in self.seen
            if job_id is None or getattr(getattr(ctx, "job", None), "id", None) == job_id
        ]

    def one(self, name: str, job_id: int) -> Any:
        found = [c for n, c in self.seen if n == name and c.job.id == job_id]
        assert len(found) == 1, (name, job_id, self.names(job_id))
        return found[0]


async def ok(payload: Any, ctx: context.WorkerContext) -> None:
    return None


async def bad(payload: Any, ctx: context.WorkerContext) -> None:
    raise RuntimeError("handler broke")


class Item(pydantic.BaseModel):
    n: int


class Items(tasks.BatchTaskHandler):
    IDENTIFIER: ClassVar[str] = "items"
    n: int

    @classmethod
    async def run_batch(cls, items: list[Items], ctx: context.WorkerContext) -> Sequence[object]:
        return [None if item.n % 2 == 0 else f"odd {item.n}" for item in items]


async def test_every_event_once_in_order_for_each_outcome(
    db_url: str, conn: asyncpg.Connection
) -> None:
    success = await add_job(conn, "ok", {"a": 1})
    retry = await add_job(conn, "bad", {}, max_attempts=5)
    final = await add_job(conn, "bad", {}, max_attempts=1)
    skipped = await add_job(conn, "ok", {"skip": True})
    batch = await add_job(conn, "items", [{"n": 1}, {"n": 2}, {"n": 3}])
    recorder = Recorder()
    options = make_options(db_url).define_jobs(Items).define_job(ok, "ok").define_job(bad, "bad")
    options.add_plugin(recorder)
    options.on(hooks.BeforeJobRun,
               lambda c: HookResult.SKIP if c.payload == {"skip": True} else None)
    worker = await options.init()
    assert recorder.names() == ["WorkerInit"]
    await worker.run_once()
    names = recorder.names()
    assert names[:2] == ["WorkerInit", "WorkerStart"] and names[-1] == "WorkerShutdown"
    assert names.count("WorkerStart") == names.count("WorkerShutdown") == 1
    run = ["JobFetch", "BeforeJobRun", "JobStart", "AfterJobRun"]
    assert recorder.names(success) == [*run, "JobComplete"]
    assert recorder.names(retry) == [*run, "JobFail"]
    assert recorder.names(final) == [*run, "JobFail", "JobPermanentlyFail"]
    assert recorder.names(skipped) == ["JobFetch", "BeforeJobRun", "JobComplete"]
    assert recorder.names(batch) == [*run, "JobFail"]

    wid = worker.worker_id
    assert all(getattr(c, "worker_id", wid) == wid for _, c in recorder.seen)
    done = recorder.one("JobComplete", success)
    assert done.job.task_identifier == "ok" and done.duration >= 0 and not done.skipped
    assert recorder.one("JobComplete", skipped).skipped
    failed = recorder.one("JobFail", retry)
    assert failed.will_retry and failed.error == "RuntimeError: handler broke"
    assert failed.job.attempts == 1 and failed.ran
    assert not recorder.one("JobFail", final).will_retry
    assert recorder.one("JobPermanentlyFail", final).error == "RuntimeError: handler broke"
    partial = recorder.one("JobFail", batch)
    assert partial.replacement_payload == [{"n": 1}, {"n": 3}] and partial.will_retry
    after = recorder.one("AfterJobRun", retry)
    assert not after.succeeded and after.error == "RuntimeError: handler broke"
    shutdown = recorder.seen[-1][1]
    assert shutdown.jobs_run == 5 and shutdown.worker_id == wid
    start = recorder.seen[1][1]
    assert start.schema == S and start.pool is worker.pool


async def test_interrupted_job_events(db_url: str, conn: asyncpg.Connection) -> None:
    started = asyncio.Event()

    async def slow(payload: Any, ctx: context.WorkerContext) -> None:
        started.set()
        await asyncio.sleep(60)

    job_id = await add_job(conn, "slow", {})
    recorder = Recorder()
    options = make_options(db_url, shutdown_grace_period=0.0).define_job(slow, "slow")
    worker = await options.add_plugin(recorder).init()
    running = asyncio.get_running_loop().create_task(worker.run())
    await asyncio.wait_for(started.wait(), 20)
    worker.request_shutdown()
    await asyncio.wait_for(running, 30)
    assert recorder.names(job_id) == ["JobFetch", "BeforeJobRun", "JobStart", "JobInterrupted"]
    interrupted = recorder.one("JobInterrupted", job_id)
    assert interrupted.reason and interrupted.duration >= 0
    row = await conn.fetchrow(f"select attempts, locked_by from {S}._private_jobs")
    assert row is not None and row["attempts"] == 0 and row["locked_by"] is None


async def job_row(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"select attempts, last_error from {S}._private_jobs where id = $1", job_id
    )
    return row


async def test_before_job_run_outcomes(db_url: str, conn: asyncpg.Connection) -> None:
    ran: list[Any] = []

    async def task(payload: Any, ctx: context.WorkerContext) -> None:
        ran.append(payload["mode"])

    def decide(ctx: hooks.BeforeJobRunContext) -> HookResult | None:
        mode = ctx.payload["mode"]
        if mode == "raise":
            raise LookupError("no tenant")
        return {"skip": HookResult.SKIP, "fail": HookResult.fail("not today")}.get(mode)

    ids = {mode: await add_job(conn, "task", {"mode": mode})
           for mode in ("go", "skip", "fail", "raise")}
    options = make_options(db_url).define_job(task, "task").on(hooks.BeforeJobRun, decide)
    await (await options.init()).run_once()
    assert ran == ["go"]
    assert await job_row(conn, ids["go"]) is None
    assert await job_row(conn, ids["skip"]) is None
    failed = await job_row(conn, ids["fail"])
    assert failed is not None and failed["attempts"] == 1 and failed["last_error"] == "not today"
    raised = await job_row(conn, ids["raise"])
    assert raised is not None and raised["last_error"] == "LookupError: no tenant"


async def test_after_job_run_turns_results_around(db_url: str, conn: asyncpg.Connection) -> None:
    async def task(payload: Any, ctx: context.WorkerContext) -> None:
        if payload["fails"]:
            raise ValueError("really failed")

    def decide(ctx: hooks.AfterJobRunContext) -> HookResult | None:
        mode = ctx.job.payload["mode"]
        if mode == "raise":
            raise RuntimeError("after hook broke")
        return {"forgive": HookResult.SKIP, "blame": HookResult.fail("result rejected")}.get(mode)

    forgiven = await add_job(conn, "task", {"fails": True, "mode": "forgive"})
    blamed = await add_job(conn, "task", {"fails": False, "mode": "blame"})
    kept = await add_job(conn, "task", {"fails": True, "mode": "keep"})
    raised = await add_job(conn, "task", {"fails": False, "mode": "raise"})
    options = make_options(db_url).define_job(task, "task").on(hooks.AfterJobRun, decide)
    await (await options.init()).run_once()
    assert await job_row(conn, forgiven) is None
    blamed_row = await job_row(conn, blamed)
    assert blamed_row is not None and blamed_row["last_error"] == "result rejected"
    kept_row = await job_row(conn, kept)
    assert kept_row is not None and kept_row["last_error"] == "ValueError: really failed"
    raised_row = await job_row(conn, raised)
    assert raised_row is not None
    assert raised_row["last_error"] == "RuntimeError: after hook broke"


async def test_raising_observers_do_not_stop_the_worker(
    db_url: str, conn: asyncpg.Connection
) -> None:
    def broken(ctx: Any) -> None:
        raise RuntimeError("observer broke")

    for i in range(5):
        await add_job(conn, "ok", {"i": i})
    options = make_options(db_url).define_job(ok, "ok")
    events: tuple[type[hooks.Event[Any, Any]], ...] = (
        hooks.WorkerStart, hooks.JobFetch, hooks.JobStart, hooks.JobComplete,
        hooks.WorkerShutdown,
    )
    for event in events:
        options.on(event, broken)
    worker = await options.init()
    await worker.run_once()
    assert worker.jobs_run == 5
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0


async def test_ctx_add_job_runs_the_workers_before_job_schedule(
    db_url: str, conn: asyncpg.Connection
) -> None:
    async def parent(payload: Any, ctx: context.WorkerContext) -> None:
        await ctx.add_job("child", {"from": ctx.job_id})

    seen: list[Any] = []

    async def child(payload: Any, ctx: context.WorkerContext) -> None:
        seen.append(payload)

    def stamp(ctx: hooks.BeforeJobScheduleContext) -> JobScheduleResult:
        return JobScheduleResult.continue_with({**ctx.payload, "stamped": True})

    parent_id = await add_job(conn, "parent", {})
    options = make_options(db_url).define_job(parent, "parent").define_job(child, "child")
    await (await options.on(hooks.BeforeJobSchedule, stamp).init()).run_once()
    assert seen == [{"from": parent_id, "stamped": True}]


async def test_local_queue_events(db_url: str, conn: asyncpg.Connection) -> None:
    for i in range(12):
        await add_job(conn, "ok", {"i": i})
    seen: list[tuple[str, Any]] = []
    options = make_options(db_url, local_queue_size=5, concurrency=2).define_job(ok, "ok")
    options.on(hooks.LocalQueueInit, lambda c: seen.append(("LocalQueueInit", c)))
    options.on(hooks.LocalQueueGetJobsComplete,
               lambda c: seen.append(("LocalQueueGetJobsComplete", c)))
    worker = await options.init()
    await worker.run_once()
    names = [name for name, _ in seen]
    assert names[0] == "LocalQueueInit" and seen[0][1].size == 5
    fetched = sum(c.jobs_count for name, c in seen if name == "LocalQueueGetJobsComplete")
    assert fetched == 12


async def test_worker_hooks_run_with_a_settings_built_worker(db_url: str) -> None:
    options = WorkerOptions(database_url=db_url, listen_os_shutdown_signals=False)
    calls: list[str] = []
    options.define_job(ok, "ok").on(hooks.WorkerInit, lambda c: calls.append(c.schema))
    worker = await options.init()
    await worker.run_once()
    assert calls == [S]


async def test_a_running_worker_reports_recovered_workers(
    db_url: str, conn: asyncpg.Connection
) -> None:
    from graphile_worker_cli import recovery
    from tests.helpers.recovery import add_locked_job, age_heartbeat

    await recovery.register_worker(conn, S, "gw-dead", heartbeat_interval=1.0)
    await age_heartbeat(conn, "gw-dead", "1 hour")
    job_id = await add_locked_job(conn, "gw-dead")
    recovered = asyncio.Event()
    seen: list[hooks.WorkerRecoveredContext] = []
    decisions: list[hooks.JobRecoveryContext] = []

    def on_recovered(ctx: hooks.WorkerRecoveredContext) -> None:
        seen.append(ctx)
        recovered.set()

    def decide(ctx: hooks.JobRecoveryContext) -> hooks.JobRecoveryResult:
        decisions.append(ctx)
        return hooks.JobRecoveryResult.SKIP

    options = make_options(db_url, sweep_interval=0.5, heartbeat_interval=0.2,
                           sweep_threshold=5.0).define_job(ok, "ok")
    options.on(hooks.WorkerRecovered, on_recovered).on(hooks.JobRecovery, decide)
    worker = await options.init()
    running = asyncio.get_running_loop().create_task(worker.run())
    try:
        await asyncio.wait_for(recovered.wait(), 20)
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(running, 30)
    assert seen[0].dead_worker_ids == ("gw-dead",) and seen[0].job_ids == (job_id,)
    assert seen[0].worker_id == worker.worker_id
    assert [(d.job.id, d.previous_worker_id) for d in decisions] == [(job_id, "gw-dead")]
    assert await conn.fetchval(
        f"select locked_by from {S}._private_jobs where id = $1", job_id
    ) == "gw-dead"
