"""The worker's events facade: the no-op twin without handlers, and what ``HookEvents``
reports for a job an interceptor settled without running it (no database)."""

from __future__ import annotations

import time
from typing import Any

from graphile_worker_cli import hooks, tasks
from graphile_worker_cli.context import AbortSignal
from graphile_worker_cli.job import Job
from graphile_worker_cli.worker.events import HookEvents, NoEvents, worker_events
from tests.helpers.context import make_job


async def succeed(job: Job, abort: AbortSignal) -> tasks.TaskOutcome:
    return tasks.TaskSuccess()


def test_without_handlers_the_worker_gets_the_no_op_twin() -> None:
    events = worker_events(hooks.HookRegistry(), worker_id="w", schema="s", queue_size=0)
    assert isinstance(events, NoEvents) and events.registry is None
    assert events.around_run(succeed) is succeed  # the job path is left as it is
    assert events.pending() == 0


def test_with_a_handler_the_worker_gets_hook_events() -> None:
    registry = hooks.HookRegistry().on(hooks.JobStart, lambda ctx: None)
    events = worker_events(registry, worker_id="w", schema="s", queue_size=0)
    assert isinstance(events, HookEvents) and events.registry is registry


async def test_a_job_skipped_by_before_job_run_completes_as_skipped_without_running() -> None:
    seen: list[Any] = []
    registry = (
        hooks.HookRegistry()
        .on(hooks.BeforeJobRun, lambda ctx: hooks.HookResult.SKIP)
        .on(hooks.JobStart, seen.append)
        .on(hooks.JobComplete, seen.append)
    )
    events = HookEvents(registry, worker_id="w", schema="s", queue_size=0)
    ran: list[int] = []

    async def handler(job: Job, abort: AbortSignal) -> tasks.TaskOutcome:
        ran.append(job.id)
        return tasks.TaskSuccess()

    job = make_job()
    started = time.monotonic()
    outcome = await events.around_run(handler)(job, AbortSignal())
    await events.job_complete(job, started)
    assert isinstance(outcome, tasks.TaskSuccess) and ran == []
    [complete] = seen
    assert isinstance(complete, hooks.JobCompleteContext)
    assert complete.skipped and complete.duration == 0.0
    # The next attempt of the same job runs its handler and is not reported as skipped.
    registry2 = hooks.HookRegistry().on(hooks.JobComplete, seen.append)
    events2 = HookEvents(registry2, worker_id="w", schema="s", queue_size=0)
    await events2.around_run(handler)(job, AbortSignal())
    await events2.job_complete(job, time.monotonic())
    assert ran == [job.id] and not seen[-1].skipped


async def test_after_job_run_can_turn_a_success_into_a_failure() -> None:
    failed: list[Any] = []
    registry = (
        hooks.HookRegistry()
        .on(hooks.AfterJobRun, lambda ctx: hooks.HookResult.fail("nope"))
        .on(hooks.JobFail, failed.append)
    )
    events = HookEvents(registry, worker_id="w", schema="s", queue_size=0)
    job = make_job(attempts=1, max_attempts=3)
    outcome = await events.around_run(succeed)(job, AbortSignal())
    assert isinstance(outcome, tasks.TaskFailure) and outcome.message == "nope"
    await events.job_failed(job, outcome, time.monotonic())
    [fail] = failed
    assert fail.error == "nope" and fail.will_retry and fail.ran
