"""``JobRunner``: starts jobs in free slots, runs each one's handler and hands its outcome
to the settler.

A job runs in a task of its own. When it ends, its slot takes the next job from the local
queue at once (no round trip); with the queue empty, the slot is offered to the fetch loop
as demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from graphile_worker_cli import context, payloads, tasks
from graphile_worker_cli.durations import format_duration, parse_duration
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.hooks import HookRegistry
from graphile_worker_cli.job import Job
from graphile_worker_cli.job_input import CANCELLED_ERROR
from graphile_worker_cli.job_transaction import (
    InTransactionCompletion,
    JobCompletion,
    TransactionState,
)
from graphile_worker_cli.jobs_api import JobsApi
from graphile_worker_cli.worker.events import Events
from graphile_worker_cli.worker.local_queue import LocalQueue
from graphile_worker_cli.worker.settle import Settler
from graphile_worker_cli.worker.shutdown import SHUTDOWN_ABORT_REASON
from graphile_worker_cli.worker.slots import Running, Slots
from graphile_worker_cli.worker.store import Failure
from graphile_worker_cli.worker.task_limits import TaskLimits

log = logging.getLogger("gw.worker")

CANCEL_ABORT_REASON = CANCELLED_ERROR
"""The reason a job's abort signal carries when someone cancelled the job."""

TIMEOUT_ABORT_WINDOW = 1.0
"""Seconds a timed-out job has, after its abort signal fired, before it is cancelled."""

_JOB_LOG = logging.getLogger(context.JOB_LOGGER_NAME)  # looked up once, not per job

BATCH_TRANSACTION_REFUSED = (
    "ctx.transaction() is not for batch tasks: their items succeed or fail one by one, and "
    "the transaction would complete the whole job"
)


@dataclass(frozen=True, slots=True)
class JobContextFields:
    """What every job's ``WorkerContext`` shares."""

    pool: asyncpg.Pool
    schema: str
    worker_id: str
    extensions: context.Extensions
    hooks: HookRegistry | None
    utils: JobsApi
    """The jobs API every context of this worker gets (``ctx.utils``)."""
    in_transaction: InTransactionCompletion
    """What ``ctx.transaction()`` needs to complete a job in the task's transaction."""


class JobRunner:
    """Runs jobs in ``slots``, refilling them from ``queue``."""

    def __init__(
        self,
        *,
        slots: Slots,
        queue: LocalQueue,
        settler: Settler,
        events: Events,
        registry: tasks.TaskRegistry,
        context_of: JobContextFields,
        stopping: asyncio.Event,
        interrupted_retry_delay: float,
        stop_reason: Callable[[], str],
        task_timeout: float | None = None,
        abort_window: float = TIMEOUT_ABORT_WINDOW,
        limits: TaskLimits | None = None,
    ) -> None:
        self._limits = limits
        """Per-task limits: a queued job of a task at its limit waits, others go first."""
        self._task_timeout = task_timeout
        self._abort_window = abort_window
        self._slots = slots
        self._queue = queue
        self._settler = settler
        self._events = events
        self._tasks = registry
        self._context_of = context_of
        self._stopping = stopping
        self._interrupted_retry_delay = interrupted_retry_delay
        self._stop_reason = stop_reason
        self._run_handler = events.around_run(self._execute)
        self._cancelling: set[int] = set()
        self._settling_cancels: set[asyncio.Task[None]] = set()
        """Running jobs someone cancelled: they end failed for good as cancelled."""
        self.jobs_run = 0

    def fill_slots(self) -> None:
        """Start queued jobs in every free slot (none once the worker is stopping)."""
        queue = self._queue
        free = self._slots.free()
        limits = self._limits
        if limits is not None:
            while free > 0 and queue and not self._stopping.is_set():
                job = queue.next_job_where(limits.can_start)
                if job is None:
                    return
                self._start(job)
                free -= 1
            return
        while free > 0 and queue and not self._stopping.is_set():
            self._start(queue.pop())
            free -= 1

    def _start(self, job: Job) -> None:
        if self._limits is not None:
            self._limits.started(job)
        abort = context.AbortSignal()
        task = asyncio.get_running_loop().create_task(self._run_job(job, abort))
        self._slots.occupy(Running(job, task, abort))
        task.add_done_callback(lambda t: self._job_done(job.id, t))

    def _job_done(self, job_id: int, task: asyncio.Task[None]) -> None:
        slots, queue, limits = self._slots, self._queue, self._limits
        if limits is not None:
            running = slots.running.get(job_id)
            if running is not None:
                limits.ended(running.job)
        slots.vacate(job_id)
        if self._cancelling:
            self._cancelling.discard(job_id)  # a cancel that came after its outcome
        self.jobs_run += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("bug: job %d's runner raised", job_id, exc_info=task.exception())
        if self._stopping.is_set():
            if not queue:
                slots.more_jobs()
            return
        job = queue.next_job() if limits is None else queue.next_job_where(limits.can_start)
        if job is None:
            slots.more_jobs()
            return
        self._start(job)  # no round trip: the next queued job takes the slot
        if queue.wants_refill(slots.demand):
            slots.wakeup.set()

    async def _run_job(self, job: Job, abort: context.AbortSignal) -> None:
        debug = log.isEnabledFor(logging.DEBUG)
        started = time.monotonic()
        if debug:
            log.debug("→ job %d %s started (attempt %d/%d)", job.id, job.task_identifier,
                      job.attempts, job.max_attempts,
                      extra={"gw": {"action": "start", **_fields(job)}})
        definition = self._tasks.get(job.task_identifier)
        timeout = self._task_timeout
        if definition is not None and definition.timeout is not None:
            timeout = definition.timeout
        try:
            if timeout is None:
                outcome = await self._run_handler(job, abort)
            else:
                outcome = await self._run_within(timeout, job, abort)
        except asyncio.CancelledError:
            if await self._run_over(job) is TransactionState.COMMITTED:
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                await self._completed_in_transaction(job, None, started)
                return
            if job.id in self._cancelling:
                await self._cancelled(job, started)
            else:
                await self._interrupted(job, started)
            return
        in_transaction = await self._run_over(job)
        if in_transaction is TransactionState.COMMITTED:
            await self._completed_in_transaction(job, outcome, started)
            return
        if job.id in self._cancelling:
            # Whatever it returned, it was cancelled.
            await self._cancelled(job, started)
            return
        if in_transaction is TransactionState.UNKNOWN and isinstance(outcome, tasks.TaskSuccess):
            # The task let the lost commit go: the job may not be complete, and completing
            # it now could lose its writes. Failing it is safe both ways (a no-op when the
            # commit landed, as the job is gone).
            outcome = tasks.TaskFailure(
                "the commit of ctx.transaction() got no answer; the job is retried unless "
                "it landed"
            )
        if abort.reason == SHUTDOWN_ABORT_REASON:
            # It returned within the abort window: whatever it says, it stopped because
            # the worker asked, so it is handed back like a cancelled job.
            await self._interrupted(job, started)
            return
        if job.job_queue_id is not None:
            self._slots.holds_queue(job.id)
        if isinstance(outcome, tasks.TaskFailure):
            self._settler.fail(_failure(job, outcome, definition))
            _log_failure(job, outcome, started)
            await self._events.job_failed(job, outcome, started)
            return
        self._settler.complete(job.id)
        if debug:
            duration = round((time.monotonic() - started) * 1000, 1)
            log.debug("✓ job %d %s completed in %.1fms", job.id, job.task_identifier,
                      duration, extra={"gw": {"action": "complete", **_fields(job),
                                              "duration_ms": duration}})
        await self._events.job_complete(job, started)

    def completion_for(self, job: Job) -> JobCompletion:
        """The completion of ``job``'s run in its task's transaction (``ctx.transaction()``),
        made on first use: most runs never open one, and pay nothing for it."""
        running = self._slots.running.get(job.id)
        if running is None or running.job is not job:
            raise RuntimeError(
                f"ctx.transaction(): the run of job {job.id} ({job.task_identifier}) is over"
            )
        if running.completion is None:
            definition = self._tasks.get(job.task_identifier)
            batch = definition is not None and definition.batch
            running.completion = JobCompletion(
                job, self._context_of.in_transaction,
                refused=BATCH_TRANSACTION_REFUSED if batch else None,
            )
        return running.completion

    async def _run_over(self, job: Job) -> TransactionState:
        """The run ended: no transaction may complete the job any more (a sync task's
        thread may run on); whether one did."""
        running = self._slots.running.get(job.id)
        completion = running.completion if running is not None else None
        if completion is None:
            return TransactionState.NONE
        return await completion.give_up()

    async def _timed_out(self, job: Job, why: str) -> None:
        """From its timeout on, the job fails as timed out: its task's transaction may no
        longer complete it, even one opened before (a sync task's thread runs on)."""
        running = self._slots.running.get(job.id)
        if running is None or running.job is not job:
            return
        if running.completion is None:
            running.completion = JobCompletion(job, self._context_of.in_transaction)
        await running.completion.give_up(why)

    async def _completed_in_transaction(
        self, job: Job, outcome: tasks.TaskOutcome | None, started: float
    ) -> None:
        """The task's transaction completed the job: nothing is left for the settler."""
        if job.job_queue_id is not None:
            self._slots.announced(1)  # the commit unlocked its queue
        if isinstance(outcome, tasks.TaskFailure):
            log.warning(
                "job %d %s failed after its transaction completed it; it stays complete and "
                "is not retried: %s", job.id, job.task_identifier, outcome.message,
                extra={"gw": {"action": "complete", **_fields(job), "error": outcome.message}},
            )
        elif log.isEnabledFor(logging.DEBUG):
            duration = round((time.monotonic() - started) * 1000, 1)
            log.debug("✓ job %d %s completed in its transaction in %.1fms", job.id,
                      job.task_identifier, duration,
                      extra={"gw": {"action": "complete", **_fields(job),
                                    "duration_ms": duration}})
        await self._events.job_complete(job, started)

    async def _run_within(
        self, timeout: float, job: Job, abort: context.AbortSignal
    ) -> tasks.TaskOutcome:
        """Run the handler for at most ``timeout`` seconds; past it, fire the abort signal,
        give the abort window, then cancel it. A job past its timeout fails as timed out,
        whatever the handler returns once aborted."""
        handler = asyncio.ensure_future(self._run_handler(job, abort))
        try:
            done, _ = await asyncio.wait({handler}, timeout=timeout)
            if done:
                return handler.result()
            abort.set("timeout")
            await self._timed_out(job, f"timed out after {format_duration(timeout)}")
            done, _ = await asyncio.wait({handler}, timeout=self._abort_window)
            if not done:
                # A sync handler's thread cannot be stopped: cancelling only stops the wait
                # for it, and the thread runs on unobserved.
                handler.cancel()
                await asyncio.wait({handler}, timeout=self._abort_window)
        except asyncio.CancelledError:  # the worker is cancelling the job (shutdown)
            handler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({handler}, timeout=self._abort_window)
            raise
        if handler.done() and not handler.cancelled():
            handler.exception()  # retrieved: its failure is the timeout's
        return tasks.TaskFailure(f"timed out after {format_duration(timeout)}")

    # -- cancelling -------------------------------------------------------------------------
    def cancel(self, job_id: int) -> None:
        """Someone cancelled job ``job_id``, which this worker holds. Running: fire its
        abort signal (reason ``cancelled``) and cancel its task if it has not returned by
        the end of the abort window; either way it ends failed for good. Queued, or held
        but unknown here: failed for good now."""
        if job_id in self._cancelling:
            return
        running = self._slots.running.get(job_id)
        if running is not None and running.task.done():
            return  # its run is over and its outcome on its way
        if running is not None:
            self._cancelling.add(job_id)
            log.warning(
                "job %d %s cancelled: abort signal fired, %gs to stop", job_id,
                running.job.task_identifier, self._abort_window,
                extra={"gw": {"action": "cancel", **_fields(running.job)}},
            )
            running.abort.set(CANCEL_ABORT_REASON)
            task = running.task
            asyncio.get_running_loop().call_later(
                self._abort_window, lambda: task.done() or task.cancel()
            )
            return
        queued = self._queue.take(job_id)
        if queued is not None:
            self._cancelling.add(job_id)
            task = asyncio.get_running_loop().create_task(
                self._cancelled(queued, time.monotonic())
            )
            self._settling_cancels.add(task)
            task.add_done_callback(self._settling_cancels.discard)
        elif job_id not in self._settler.unsettled_ids():
            # Locked by this worker, yet neither running, queued nor being settled: the
            # write of its outcome did not apply (a failure guarded by the attempt number,
            # after the job was marked out of attempts) and nothing else would unlock it
            # before the 4-hour reset.
            log.warning("job %d is locked by this worker but not running here; failing it "
                        "for good as cancelled", job_id,
                        extra={"gw": {"action": "cancelled", "job_id": job_id}})
            self._settler.cancelled([job_id], CANCELLED_ERROR)

    async def _cancelled(self, job: Job, started: float) -> None:
        """Fail a cancelled job for good (the attempt is used: it ran, or was about to)."""
        self._cancelling.discard(job.id)
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        if job.job_queue_id is not None:
            self._slots.holds_queue(job.id)
        settle = self._settler.cancelled([job.id], CANCELLED_ERROR)
        log.warning(
            "✗ job %d %s cancelled; failed for good", job.id, job.task_identifier,
            extra={"gw": {"action": "cancelled", **_fields(job)}},
        )
        outcome = tasks.TaskFailure(CANCELLED_ERROR, permanent=True)
        await self._events.job_failed(job, outcome, started)
        await shielded(settle)

    async def _interrupted(self, job: Job, started: float) -> None:
        """The worker aborted the job (shutdown): hand it back without using an attempt."""
        settle = self._settler.give_back([job.id], self._interrupted_retry_delay)
        log.warning(
            "↻ job %d %s interrupted by shutdown; rescheduled without using an attempt",
            job.id, job.task_identifier,
            extra={"gw": {"action": "interrupted", **_fields(job)}},
        )
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        await self._events.job_interrupted(job, self._stop_reason(), started)
        await shielded(settle)

    async def _execute(self, job: Job, abort: context.AbortSignal) -> tasks.TaskOutcome:
        try:
            definition = self._tasks[job.task_identifier]
        except KeyError:
            return tasks.TaskFailure(f"unknown task {job.task_identifier!r}")
        fields = self._context_of
        ctx = context.WorkerContext(
            job=job, pool=fields.pool, schema=fields.schema, worker_id=fields.worker_id,
            extensions=fields.extensions, abort_signal=abort, logger=_JOB_LOG,
            hooks=fields.hooks, utils=fields.utils, completions=self,
        )
        try:
            return await definition(ctx)
        except Exception as error:  # TaskDefinition should not raise; be safe anyway
            return tasks.TaskFailure(f"{type(error).__name__}: {error}")


def _fields(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id, "task": job.task_identifier, "queue": job.queue_name,
        "attempt": job.attempts, "max_attempts": job.max_attempts,
    }


def _log_failure(job: Job, outcome: tasks.TaskFailure, started: float) -> None:
    final = outcome.permanent or job.attempts >= job.max_attempts
    fields = {**_fields(job), "duration_ms": round((time.monotonic() - started) * 1000, 1),
              "error": outcome.message, "final": final}
    if final:
        log.error("✗ job %d %s failed permanently after %d attempt(s): %s", job.id,
                  job.task_identifier, job.attempts, outcome.message,
                  extra={"gw": {"action": "fail", **fields}})
    else:
        log.warning("! job %d %s failed (attempt %d/%d), will retry: %s", job.id,
                    job.task_identifier, job.attempts, job.max_attempts, outcome.message,
                    extra={"gw": {"action": "fail", **fields}})


def _failure(
    job: Job, outcome: tasks.TaskFailure, definition: tasks.TaskDefinition | None
) -> Failure:
    message, payload_json = outcome.message, None
    if outcome.has_replacement:
        try:
            payload_json = payloads.replacement_to_json(outcome.replacement_payload)
        except BadInputError as error:
            # The failure must still be written: keep the payload, and say why.
            log.error("job %d %s: %s; its payload is kept", job.id, job.task_identifier,
                      error.message)
            message = f"{message}\n(new payload not written: {error.message})"
    run_at, delay = None, None
    try:
        run_at, delay = _next_run(job, outcome, definition)
    except Exception as error:  # a bad retry_in or backoff must not lose the failure
        log.error("job %d %s: %s; the default backoff applies", job.id, job.task_identifier,
                  error)
        message = f"{message}\n(retry time not used: {error})"
    return Failure(job_id=job.id, message=message, payload_json=payload_json,
                   attempts=job.attempts, run_at=run_at, delay=delay,
                   permanent=outcome.permanent)


def _next_run(
    job: Job, outcome: tasks.TaskFailure, definition: tasks.TaskDefinition | None
) -> tuple[datetime | None, float | None]:
    """(run_at, delay in seconds) the task chose for the next attempt; (None, None) for
    the reference's backoff."""
    if outcome.retry_at is not None:
        at = outcome.retry_at
        if not isinstance(at, datetime):
            raise BadInputError(f"retry_at must be a datetime, not {type(at).__name__}")
        return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)), None
    if outcome.retry_in is not None:
        return None, parse_duration(outcome.retry_in)
    if definition is not None and definition.backoff is not None:
        wait = definition.backoff(job.attempts)
        if isinstance(wait, timedelta):
            wait = wait.total_seconds()
        if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
            raise BadInputError(
                f"backoff({job.attempts}) returned {wait!r}; expected seconds (>= 0) or "
                "a timedelta"
            )
        return None, float(wait)
    return None, None


async def shielded(settle: asyncio.Task[None]) -> None:
    """Wait for a write; if we are cancelled meanwhile, the write still completes (the
    settler tracks it and shutdown waits for it)."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(settle)
