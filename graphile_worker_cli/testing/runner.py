"""Run the queued jobs in-process with a real worker, until the queue is idle."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from graphile_worker_cli import db, hooks, tasks, worker
from graphile_worker_cli.job import Job


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """One attempt at one job."""

    job: Job
    """The job as the worker ran it (``attempts`` counts this attempt)."""
    status: Literal["completed", "failed"]
    error: str | None = None
    """The failure's message (None when completed)."""
    will_retry: bool = False
    """A failed job with attempts left: it was rescheduled (with backoff)."""


def _registry(task_set: tasks.TaskRegistry | Iterable[Any]) -> tasks.TaskRegistry:
    if isinstance(task_set, tasks.TaskRegistry):
        return task_set
    registry = tasks.TaskRegistry()
    for handler in task_set:
        registry.add(tasks.define_task(handler))
    return registry


async def run_jobs_until_idle(
    database_url: str,
    task_set: tasks.TaskRegistry | Iterable[Any],
    *,
    schema: str = db.DEFAULT_SCHEMA,
    concurrency: int = 1,
    forbidden_flags: Iterable[str] = (),
) -> list[JobOutcome]:
    """Run every job runnable now (and the jobs they add) on a worker in this process,
    until none is runnable; return each attempt's outcome in the order they ended.

    ``task_set``: a TaskRegistry, or task handlers (TaskHandler classes, ``@task``
    functions). Jobs of other tasks are left alone, as a worker without them would. A
    failed job with attempts left is rescheduled in the future, so it does not run again
    in this call. The schema must be migrated (``throwaway_database`` does that)."""
    outcomes: list[JobOutcome] = []
    registry = hooks.HookRegistry()
    registry.on(hooks.JobComplete, lambda ctx: outcomes.append(JobOutcome(ctx.job, "completed")))
    registry.on(hooks.JobFail, lambda ctx: outcomes.append(
        JobOutcome(ctx.job, "failed", ctx.error, ctx.will_retry)
    ))
    options = worker.WorkerOptions(
        database_url=database_url, schema=schema, tasks=_registry(task_set), hooks=registry,
        concurrency=concurrency, forbidden_flags=list(forbidden_flags), migrate=False,
        listen_os_shutdown_signals=False, worker_recovery=False, max_pg_conn=2,
    )
    ready = await options.init()
    await ready.run_once()
    return outcomes


def run_jobs_until_idle_sync(
    database_url: str,
    task_set: tasks.TaskRegistry | Iterable[Any],
    *,
    schema: str = db.DEFAULT_SCHEMA,
    concurrency: int = 1,
    forbidden_flags: Iterable[str] = (),
) -> list[JobOutcome]:
    """``run_jobs_until_idle`` for synchronous tests (it runs its own event loop)."""
    return asyncio.run(run_jobs_until_idle(
        database_url, task_set, schema=schema, concurrency=concurrency,
        forbidden_flags=forbidden_flags,
    ))
