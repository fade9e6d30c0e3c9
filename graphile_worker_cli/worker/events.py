"""The worker's hook points, behind one facade with a no-op twin.

The worker calls ``events.job_complete(...)`` and the rest unconditionally. Without
handlers it holds ``NoEvents``, whose methods do nothing and build no context, and
``around_run`` hands back the job runner unchanged, so a worker without hooks pays for
them with one awaited no-op per job at most. With handlers it holds ``HookEvents``, which
builds each context only when its event has a handler. See docs/hooks.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

import asyncpg

from graphile_worker_cli import context, hooks, tasks
from graphile_worker_cli.job import Job

if TYPE_CHECKING:
    from graphile_worker_cli.hooks import events as hook_events

C = TypeVar("C")

RunJob = Callable[[Job, context.AbortSignal], Awaitable[tasks.TaskOutcome]]
"""Runs a job's handler; returns its outcome."""

EMISSIONS_STOP_TIMEOUT = 5.0


class Events(Protocol):
    """What the worker tells its hooks (``HookEvents``), or nobody (``NoEvents``)."""

    registry: hooks.HookRegistry | None
    """The registry handed to task contexts, cron and recovery (None without handlers)."""

    async def worker_start(
        self, pool: asyncpg.Pool, extensions: context.Extensions,
        queue_length: Callable[[], int],
    ) -> None: ...
    async def worker_shutdown(self, reason: str, jobs_run: int) -> None: ...
    async def jobs_fetched(self, jobs: list[Job]) -> None: ...
    def refetch_delay_start(self, delay: float, asked: int) -> None: ...
    def refetch_delay_over(self, aborted: bool) -> None: ...
    def queue_mode_change(self, old: str, new: str) -> None: ...
    def listen_lost(self, error: str) -> None: ...
    def listen_restored(self) -> None: ...
    def fetch_error(self, error: str, attempt: int) -> None: ...
    def fetch_empty(self) -> None: ...
    def stale_locks_reset(self, error: str | None) -> None: ...
    def fatal_error(self, source: str, error: BaseException) -> None: ...
    def queue_returned(self, count: int) -> None: ...
    def around_run(self, run: RunJob) -> RunJob: ...
    async def job_complete(self, job: Job, started: float) -> None: ...
    async def job_failed(self, job: Job, outcome: tasks.TaskFailure, started: float) -> None: ...
    async def job_interrupted(self, job: Job, reason: str, started: float) -> None: ...
    def pending(self) -> int: ...


class NoEvents:
    """The no-op twin: a worker without hook handlers."""

    registry: hooks.HookRegistry | None = None

    async def worker_start(
        self, pool: asyncpg.Pool, extensions: context.Extensions,
        queue_length: Callable[[], int],
    ) -> None:
        pass

    async def worker_shutdown(self, reason: str, jobs_run: int) -> None:
        pass

    async def jobs_fetched(self, jobs: list[Job]) -> None:
        pass

    def refetch_delay_start(self, delay: float, asked: int) -> None:
        pass

    def refetch_delay_over(self, aborted: bool) -> None:
        pass

    def queue_mode_change(self, old: str, new: str) -> None:
        pass

    def listen_lost(self, error: str) -> None:
        pass

    def listen_restored(self) -> None:
        pass

    def fetch_error(self, error: str, attempt: int) -> None:
        pass

    def fetch_empty(self) -> None:
        pass

    def stale_locks_reset(self, error: str | None) -> None:
        pass

    def fatal_error(self, source: str, error: BaseException) -> None:
        pass

    def queue_returned(self, count: int) -> None:
        pass

    def around_run(self, run: RunJob) -> RunJob:
        return run

    async def job_complete(self, job: Job, started: float) -> None:
        pass

    async def job_failed(self, job: Job, outcome: tasks.TaskFailure, started: float) -> None:
        pass

    async def job_interrupted(self, job: Job, reason: str, started: float) -> None:
        pass

    def pending(self) -> int:
        return 0


class HookEvents:
    """Emits the worker's events to ``registry``; ``started`` arguments are
    ``time.monotonic()`` readings taken when the job's run began."""

    def __init__(
        self, registry: hooks.HookRegistry, *, worker_id: str, schema: str, queue_size: int
    ) -> None:
        self.registry: hooks.HookRegistry | None = registry
        self._registry = registry
        self._worker_id = worker_id
        self._schema = schema
        self._queue_size = queue_size
        self._not_run: set[int] = set()
        """Jobs a BeforeJobRun interceptor settled without running their handler."""
        self._emitting: set[asyncio.Task[None]] = set()

    # -- the worker -----------------------------------------------------------------------
    async def worker_start(
        self, pool: asyncpg.Pool, extensions: context.Extensions,
        queue_length: Callable[[], int],
    ) -> None:
        await self._registry.emit(hooks.WorkerStart, hooks.WorkerStartContext(
            self._worker_id, self._schema, pool, extensions, queue_length,
        ))
        if self._queue_size:
            await self._registry.emit(hooks.LocalQueueInit, hooks.LocalQueueInitContext(
                self._worker_id, self._queue_size
            ))

    async def worker_shutdown(self, reason: str, jobs_run: int) -> None:
        if self._emitting:
            await asyncio.wait(self._emitting, timeout=EMISSIONS_STOP_TIMEOUT)
        await self._registry.emit(hooks.WorkerShutdown, hooks.WorkerShutdownContext(
            self._worker_id, reason, jobs_run
        ))

    # -- the local queue --------------------------------------------------------------------
    async def jobs_fetched(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        registry = self._registry
        if hooks.JobFetch in registry.events:
            for job in jobs:
                await registry.emit(hooks.JobFetch, hooks.JobFetchContext(job, self._worker_id))
        if self._queue_size:
            await registry.emit(hooks.LocalQueueGetJobsComplete,
                                hooks.LocalQueueGetJobsCompleteContext(self._worker_id, len(jobs)))

    def refetch_delay_start(self, delay: float, asked: int) -> None:
        self._emit_soon(hooks.LocalQueueRefetchDelayStart,
                        hooks.LocalQueueRefetchDelayStartContext(self._worker_id, delay, asked))

    def refetch_delay_over(self, aborted: bool) -> None:
        if aborted:
            self._emit_soon(hooks.LocalQueueRefetchDelayAbort,
                            hooks.LocalQueueRefetchDelayAbortContext(self._worker_id))
        else:
            self._emit_soon(hooks.LocalQueueRefetchDelayExpired,
                            hooks.LocalQueueRefetchDelayExpiredContext(self._worker_id))

    def queue_mode_change(self, old: str, new: str) -> None:
        self._emit_soon(hooks.LocalQueueModeChange,
                        hooks.LocalQueueModeChangeContext(self._worker_id, old, new))

    # -- connections, fetches, stale locks, failures ---------------------------------------
    def listen_lost(self, error: str) -> None:
        self._emit_soon(hooks.ListenConnectionLost,
                        hooks.ListenConnectionLostContext(self._worker_id, error))

    def listen_restored(self) -> None:
        self._emit_soon(hooks.ListenConnectionRestored,
                        hooks.ListenConnectionRestoredContext(self._worker_id))

    def fetch_error(self, error: str, attempt: int) -> None:
        self._emit_soon(hooks.FetchError,
                        hooks.FetchErrorContext(self._worker_id, error, attempt))

    def fetch_empty(self) -> None:
        self._emit_soon(hooks.FetchEmpty, hooks.FetchEmptyContext(self._worker_id))

    def stale_locks_reset(self, error: str | None) -> None:
        self._emit_soon(hooks.StaleLocksReset,
                        hooks.StaleLocksResetContext(self._worker_id, self._schema, error))

    def fatal_error(self, source: str, error: BaseException) -> None:
        self._emit_soon(hooks.WorkerFatalError,
                        hooks.WorkerFatalErrorContext(self._worker_id, source, error))

    def queue_returned(self, count: int) -> None:
        self._emit_soon(hooks.LocalQueueReturnJobs,
                        hooks.LocalQueueReturnJobsContext(self._worker_id, count))

    # -- one job ----------------------------------------------------------------------------
    def around_run(self, run: RunJob) -> RunJob:
        """``run`` between BeforeJobRun/JobStart and AfterJobRun; an interceptor may
        settle the job without running it, or change its outcome."""
        registry = self._registry

        async def run_hooked(job: Job, abort: context.AbortSignal) -> tasks.TaskOutcome:
            started = time.monotonic()
            if hooks.BeforeJobRun in registry.events:
                before = await registry.before_job_run(
                    hooks.BeforeJobRunContext(job, self._worker_id)
                )
                decided = _decided(before, "failed by a BeforeJobRun hook")
                if decided is not None:
                    self._not_run.add(job.id)
                    return decided
            await registry.emit(hooks.JobStart, hooks.JobStartContext(job, self._worker_id))
            outcome = await run(job, abort)
            if hooks.AfterJobRun in registry.events:
                after = await registry.after_job_run(hooks.AfterJobRunContext(
                    job, self._worker_id, outcome, time.monotonic() - started
                ))
                decided = _decided(after, "failed by an AfterJobRun hook")
                if decided is not None:
                    outcome = decided
            return outcome

        return run_hooked

    def _ran(self, job: Job, started: float) -> tuple[bool, float]:
        """Whether the handler ran, and for how long (0 when it did not)."""
        if job.id in self._not_run:
            self._not_run.discard(job.id)
            return False, 0.0
        return True, time.monotonic() - started

    async def job_complete(self, job: Job, started: float) -> None:
        ran, duration = self._ran(job, started)
        await self._registry.emit(hooks.JobComplete, hooks.JobCompleteContext(
            job, self._worker_id, duration, skipped=not ran,
        ))

    async def job_failed(self, job: Job, outcome: tasks.TaskFailure, started: float) -> None:
        ran, duration = self._ran(job, started)
        final = outcome.permanent or job.attempts >= job.max_attempts
        replacement = outcome.replacement_payload if outcome.has_replacement else None
        await self._registry.emit(hooks.JobFail, hooks.JobFailContext(
            job, self._worker_id, outcome.message, not final, duration, replacement, ran,
        ))
        if final:
            await self._registry.emit(hooks.JobPermanentlyFail, hooks.JobPermanentlyFailContext(
                job, self._worker_id, outcome.message, duration
            ))

    async def job_interrupted(self, job: Job, reason: str, started: float) -> None:
        self._not_run.discard(job.id)
        await self._registry.emit(hooks.JobInterrupted, hooks.JobInterruptedContext(
            job, self._worker_id, reason, time.monotonic() - started,
        ))

    # -- emitting from synchronous code -----------------------------------------------------
    def _emit_soon(self, event: type[hook_events.Observer[C]], ctx: C) -> None:
        """Emit in a task, awaited before WorkerShutdown."""
        if event not in self._registry.events:
            return
        task = asyncio.get_running_loop().create_task(self._registry.emit(event, ctx))
        self._emitting.add(task)
        task.add_done_callback(self._emitting.discard)

    def pending(self) -> int:
        """Emissions started from synchronous code and not finished yet."""
        return len(self._emitting)


def _decided(result: hooks.HookResult, default_message: str) -> tasks.TaskOutcome | None:
    """The outcome an interceptor's result imposes, or None to carry on."""
    if result.action is hooks.results.Action.SKIP:
        return tasks.TaskSuccess()
    if result.action is hooks.results.Action.FAIL:
        return tasks.TaskFailure(result.message or default_message)
    return None


def worker_events(
    registry: hooks.HookRegistry, *, worker_id: str, schema: str, queue_size: int
) -> Events:
    """``HookEvents`` when ``registry`` has handlers, else ``NoEvents``."""
    if registry.active:
        return HookEvents(registry, worker_id=worker_id, schema=schema, queue_size=queue_size)
    return NoEvents()
