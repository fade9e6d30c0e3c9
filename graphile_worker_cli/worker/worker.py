"""``Worker``: the loop that fetches jobs, runs them within the concurrency bound, settles
their outcomes, and shuts down without losing or double-running anything.

One loop decides when to fetch. It wakes on a ``jobs:insert`` notification, a finished
job, the poll timer, or a shutdown request, and fetches as many jobs as there are free
slots — or, with a local queue (``local_queue_size`` > 0), up to that many at once, kept in
``self._queue`` and handed to slots as they free up without another round trip. Jobs left
in the local queue past ``local_queue_ttl``, and all of them at shutdown, are handed back
with their attempt restored. ``self._active`` (job id -> running job) is the one source of
truth for how many slots are taken; outcomes go to the ``Settler``, which batches them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from graphile_worker_cli import context, db, hooks, migrate, payloads, tasks
from graphile_worker_cli.errors import (
    BadInputError,
    DatabaseError,
    GraphileWorkerError,
    SchemaTooNewError,
)
from graphile_worker_cli.job import Job
from graphile_worker_cli.queries import worker as queries
from graphile_worker_cli.worker import backoff
from graphile_worker_cli.worker.fetchconn import FetchConnection
from graphile_worker_cli.worker.listen import Listener
from graphile_worker_cli.worker.settle import Settler
from graphile_worker_cli.worker.shutdown import ShutdownSignal, os_signal_handlers
from graphile_worker_cli.worker_utils import WorkerUtils

if TYPE_CHECKING:
    from graphile_worker_cli.worker.options import WorkerOptions

C = TypeVar("C")

log = logging.getLogger("gw.worker")

STALE_LOCK_FIRST_WITHIN = 60.0
STALE_LOCK_EVERY = (480.0, 600.0)
SETTLE_DRAIN_TIMEOUT = 15.0
SIDE_TASK_STOP_TIMEOUT = 5.0
LISTENER = "listener"
LOW_WATER_FRACTION = 0.5
_RETRYABLE = backoff.TRANSIENT_ERRORS
_JOB_LOG = logging.getLogger(context.JOB_LOGGER_NAME)  # looked up once, not per job
# Errors no retry can fix: undefined table/function (schema not migrated), permissions...
_FATAL = (asyncpg.exceptions.SyntaxOrAccessError,)


@dataclass(slots=True)
class _Running:
    job: Job
    task: asyncio.Task[None]
    abort: context.AbortSignal


class Worker:
    """A worker ready to run; made by ``await WorkerOptions(...).init()``."""

    def __init__(
        self,
        options: WorkerOptions,
        pool: asyncpg.Pool,
        *,
        task_ids: dict[str, int],
        worker_id: str,
        owns_pool: bool = False,
    ) -> None:
        self.options = options
        self.pool = pool
        self.schema = options.schema
        self.worker_id = worker_id
        self.stopping = asyncio.Event()
        """Set when the worker stops fetching (cron stops scheduling on it)."""
        self.settled = asyncio.Event()
        """Set once every running job finished or was handed back and its outcome written
        (heartbeat/recovery side tasks stop on it: after it, this worker holds no locks)."""
        self._owns_pool = owns_pool
        self._fetch_conn = FetchConnection(
            pool, options.database_url, dedicated=options.prepared_statements
        )
        self._task_ids = list(task_ids.values())
        self._task_names = {task_id: name for name, task_id in task_ids.items()}
        self._active: dict[int, _Running] = {}
        self._settler = Settler(
            pool, self.schema, worker_id,
            complete_delay=options.complete_job_batch_delay,
            fail_delay=options.fail_job_batch_delay,
            on_landed=self._on_outcomes_landed,
        )
        self._queue: deque[tuple[Job, float]] = deque()
        """The local queue: jobs locked by this worker, not started yet, with fetch time."""
        self._queue_size = max(0, options.local_queue_size)
        self._low_water = self._queue_size * LOW_WATER_FRACTION
        """Refill the local queue (in the background) once it holds this few jobs."""
        self._fetch_not_before = 0.0
        self._refill = True
        self._serial_unsettled: set[int] = set()
        """Jobs of named queues whose outcome is not written yet (their queue is locked)."""
        self._shutdown = options.shutdown_signal or ShutdownSignal()
        self._hurry = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._demand = options.concurrency
        self._orphans_possible = False
        self._exit_error: GraphileWorkerError | None = None
        self._cancelled = False
        self._started = False
        self.jobs_run = 0
        self._hooks = options.hooks if options.hooks.active else None
        self._utils = WorkerUtils(pool, schema=self.schema, hooks=self._hooks)
        """The jobs API every WorkerContext of this worker gets (``ctx.utils``)."""
        """None without hooks: the hot path tests only this (see docs/hooks.md)."""
        self._emitting: set[asyncio.Task[None]] = set()

    # -- public API -----------------------------------------------------------------------
    @property
    def concurrency(self) -> int:
        return self.options.concurrency

    @property
    def task_count(self) -> int:
        return len(self._task_ids)

    def request_shutdown(self, reason: str = "shutdown requested") -> None:
        """Stop gracefully; a second call cuts the grace period short. Thread-safe."""
        self._shutdown.set(reason)

    async def run(self) -> None:
        """Run until a shutdown is requested (or a signal arrives); then wind down.

        Raises ``SchemaTooNewError`` after a graceful stop caused by a breaking migration,
        and ``GraphileWorkerError`` when a supervised side task crashed.
        """
        await self._run(once=False)

    async def run_once(self) -> None:
        """Run every job that is runnable now (including ones those jobs add), then return."""
        await self._run(once=True)

    # -- lifecycle --------------------------------------------------------------------------
    async def _run(self, *, once: bool) -> None:
        if self._started:
            raise RuntimeError("a Worker runs only once; build a new one with options.init()")
        self._started = True
        handlers = (
            os_signal_handlers(self._on_os_signal)
            if self.options.listen_os_shutdown_signals
            else contextlib.nullcontext()
        )
        watcher = asyncio.get_running_loop().create_task(self._watch_shutdown())
        try:
            with handlers:
                await self._supervise(once)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self._close()
        if self._exit_error is not None:
            raise self._exit_error

    async def _supervise(self, once: bool) -> None:
        log.info(
            "worker %s started: %d task(s), concurrency %d, schema %s%s",
            self.worker_id, self.task_count, self.concurrency, self.schema,
            " (run once)" if once else "",
            extra={"gw": {"action": "worker_start", "worker_id": self.worker_id,
                          "tasks": self.task_count, "concurrency": self.concurrency,
                          "schema": self.schema}},
        )
        loop = asyncio.get_running_loop()
        side: dict[asyncio.Task[None], str] = {}
        if self._hooks is not None:
            await self._emit_start(self._hooks)
        if once:
            await self._reset_stale_locks()
        else:
            for name, coroutine in self._side_tasks():
                side[loop.create_task(coroutine, name=name)] = name
        if self.options.worker_recovery:  # --once too: its jobs must not look abandoned
            side[loop.create_task(self._recovery(), name="recovery")] = "recovery"
        fetch_loop = loop.create_task(self._fetch_loop(once), name="fetch-loop")
        try:
            while True:
                done, _ = await asyncio.wait(
                    {fetch_loop, *side}, return_when=asyncio.FIRST_COMPLETED
                )
                if fetch_loop in done:
                    break
                for task in done:
                    self._side_task_ended(side.pop(task), task)
            fetch_loop.result()
            await self._wind_down()
        except BaseException:
            # Cancelled (or crashed): stop this worker now, running jobs handed back. The
            # shutdown signal may be shared with other workers; it is theirs to act on
            # only when someone sets it, so it is left alone here.
            fetch_loop.cancel()
            self._cancelled = True
            self.stopping.set()
            self._hurry.set()
            self._wakeup.set()
            await self._wind_down()
            raise
        finally:
            self.stopping.set()
            self.settled.set()
            await self._stop_side_tasks(side)
            if self._hooks is not None:
                await self._emit_shutdown(self._hooks, once)
        log.info(
            "worker %s stopped after %d job(s)", self.worker_id, self.jobs_run,
            extra={"gw": {"action": "worker_stop", "worker_id": self.worker_id}},
        )

    def _side_tasks(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        listener = Listener(
            connect=self._listen_connect,
            release=self._listen_release,
            on_insert=self._on_jobs_inserted,
            on_migrate=self._on_migration,
            on_connected=self._on_listen_connected,
        )
        items: list[tuple[str, Coroutine[Any, Any, None]]] = [
            (LISTENER, listener.run()),
            ("stale-lock-reset", self._stale_lock_loop()),
        ]
        if self.options.crontabs:
            from graphile_worker_cli.cron import scheduler

            items.append((
                "cron",
                scheduler.run_scheduler(
                    self.pool, self.schema, self.options.crontabs, stop=self.stopping,
                    use_prepared=self.options.prepared_statements, hooks=self._hooks,
                ),
            ))
        # Metrics and plugins hook in here through options.side_tasks.
        for index, side_task in enumerate(self.options.side_tasks):
            name = getattr(side_task, "__name__", f"side-task-{index}")
            items.append((name, side_task(self)))
        return items

    def _recovery(self) -> Coroutine[Any, Any, None]:
        from graphile_worker_cli import recovery

        # Stops on `settled`: until then this worker may still hold locks.
        return recovery.run_worker_recovery(
            self.pool, self.schema, self.worker_id,
            recovery.WorkerRecoveryConfig.from_settings(self.options),
            stop=self.settled, tasks=list(self._task_names.values()),
            url=self.options.direct_database_url or self.options.database_url,
            prepared_statements=self.options.prepared_statements, hooks=self._hooks,
            running_jobs=lambda: [(r.job.id, r.job.task_identifier) for r in self._active.values()],
        )

    def _side_task_ended(self, name: str, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = task.exception()
        if error is None:
            return
        log.error(
            "%s failed: %s; shutting down", name, error, exc_info=error,
            extra={"gw": {"action": "side_task_failed", "side_task": name}},
        )
        if self._exit_error is None:
            self._exit_error = GraphileWorkerError(f"the worker's {name} failed: {error}")
        self.request_shutdown(f"{name} failed")

    async def _stop_side_tasks(self, side: dict[asyncio.Task[None], str]) -> None:
        if not side:
            return
        # The listener only ends when cancelled; the others return once they see
        # stopping/settled (recovery deregisters first), so give them a moment.
        for task, name in side.items():
            if name == LISTENER:
                task.cancel()
        _done, pending = await asyncio.wait(side, timeout=SIDE_TASK_STOP_TIMEOUT)
        for task in pending:
            task.cancel()
        for task in side:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _close(self) -> None:
        await self._fetch_conn.close()
        if self._owns_pool:
            try:
                await asyncio.wait_for(self.pool.close(), timeout=10.0)
            except _RETRYABLE:
                self.pool.terminate()

    # -- shutdown ---------------------------------------------------------------------------
    def _stop_reason(self, default: str) -> str:
        if self._shutdown.reason is not None:
            return self._shutdown.reason
        return "worker cancelled" if self._cancelled else default

    async def _watch_shutdown(self) -> None:
        await self._shutdown.wait()
        log.info(
            "stopping (%s): no new jobs will be fetched", self._shutdown.reason,
            extra={"gw": {"action": "shutdown", "reason": self._shutdown.reason}},
        )
        self.stopping.set()
        self._wakeup.set()
        await self._shutdown.wait(times=2)
        self._hurry.set()

    def _on_os_signal(self, sig: signal.Signals) -> None:
        if self._shutdown.is_set():
            log.warning("received %s again: aborting running jobs now", sig.name)
        else:
            log.warning(
                "received %s: finishing running jobs (up to %gs); send it again to stop now",
                sig.name, self.options.shutdown_grace_period,
            )
        self._shutdown.set(f"received {sig.name}")

    async def _wind_down(self) -> None:
        """Let running jobs finish within the grace period, then abort and hand back the
        rest without using up an attempt; finally wait for every write to land."""
        if self._queue:
            self._hand_back_queue()  # at once: other workers may take them meanwhile
        running = [r.task for r in self._active.values()]
        if running:
            log.info(
                "waiting up to %gs for %d running job(s)",
                self.options.shutdown_grace_period, len(running),
            )
            hurry = asyncio.get_running_loop().create_task(self._hurry.wait())
            everything: asyncio.Future[Any] = asyncio.gather(*running, return_exceptions=True)
            await asyncio.wait(
                [hurry, everything], timeout=self.options.shutdown_grace_period,
                return_when=asyncio.FIRST_COMPLETED,
            )
            hurry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hurry
        left = list(self._active.values())
        for running_job in left:
            running_job.abort.set("worker shutdown")
            running_job.task.cancel()
        if left:
            log.warning(
                "aborted %d job(s) still running; they will be retried in %gs",
                len(left), self.options.shutdown_interrupted_job_retry_delay,
            )
            await asyncio.wait([r.task for r in left], timeout=SETTLE_DRAIN_TIMEOUT)
        unsettled = await self._settler.drain(SETTLE_DRAIN_TIMEOUT)
        if unsettled:
            log.error(
                "%d job outcome(s) could not be written before exit; those jobs stay "
                "locked by %s until recovery or the 4-hour stale-lock reset "
                "(or `gw workers unlock`)",
                unsettled, self.worker_id,
            )

    # -- notifications ----------------------------------------------------------------------
    async def _listen_connect(self) -> asyncpg.Connection:
        if self.options.database_url:
            return await db.connect(self.options.database_url)
        conn: asyncpg.Connection = await self.pool.acquire()
        return conn

    async def _listen_release(self, conn: asyncpg.Connection) -> None:
        if self.options.database_url:
            with contextlib.suppress(*_RETRYABLE):
                await asyncio.wait_for(conn.close(), timeout=5.0)
            if not conn.is_closed():
                conn.terminate()
        else:
            with contextlib.suppress(*_RETRYABLE):
                await self.pool.release(conn)

    def _on_jobs_inserted(self, count: int) -> None:
        if count > 0:
            self._demand = min(self.concurrency, self._demand + count)
            self._wakeup.set()

    def _on_listen_connected(self) -> None:
        self._demand = self.concurrency
        self._wakeup.set()

    def _on_migration(self, number: int | None, breaking: bool) -> None:
        if not breaking:
            return
        message = (
            f"another process applied breaking migration {number} "
            f"(this gw knows up to {migrate.LATEST_MIGRATION}); upgrade gw"
        )
        log.error("%s; shutting down", message)
        if self._exit_error is None:
            self._exit_error = SchemaTooNewError(message)
        self.request_shutdown("breaking migration")

    # -- fetching ---------------------------------------------------------------------------
    async def _fetch_loop(self, once: bool) -> None:
        loop = asyncio.get_running_loop()
        poll = self.options.poll_interval
        next_poll = loop.time() + poll
        while not self.stopping.is_set():
            self._wakeup.clear()
            now = loop.time()
            if not once and now >= next_poll:
                self._demand = self.concurrency
                next_poll = now + poll
            if self._queue:
                self._expire_queue(now)
            if self._queue:
                # All slots are busy; top the queue up before it runs dry.
                want = 0
                if self._demand and self._refill and len(self._queue) <= self._low_water:
                    want = self._queue_size - len(self._queue)
            else:
                want = min(self.concurrency - len(self._active), self._demand)
            if want > 0 and now < self._fetch_not_before:
                stopped = await self._sleep_unless_stopping(self._fetch_not_before - now)
                if self._hooks is not None:
                    self._refetch_delay_over(self._hooks, stopped)
                continue
            if want > 0:
                # Consume the demand first: nudges that arrive while the fetch is in flight
                # (a job finishing, a notification) must survive it.
                self._demand = 0
                ask = want if self._queue else max(want, self._queue_size)
                jobs = await self._fetch(ask)
                if jobs and self.stopping.is_set():
                    # Fetched, never started: hand them back with their attempt restored.
                    await _shielded(self._settler.give_back([job.id for job in jobs]))
                    return
                if len(jobs) == ask:
                    self._demand = self.concurrency  # there may be more
                elif self._queue_size and self.options.local_queue_refetch_delay > 0:
                    delay = self.options.local_queue_refetch_delay * random.uniform(0.5, 1.5)
                    self._fetch_not_before = loop.time() + delay
                    if self._hooks is not None:
                        self._emit_soon(self._hooks, hooks.LocalQueueRefetchDelayStart,
                                        hooks.LocalQueueRefetchDelayStartContext(
                                            self.worker_id, delay, ask))
                if not self._queue:
                    self._refill = True
                if self._hooks is not None and jobs:
                    await self._emit_fetched(self._hooks, jobs)
                fetched_at = loop.time()
                self._queue.extend((job, fetched_at) for job in jobs)
                self._fill_slots()
                continue
            if once and not self._active and not self._queue and not self._settler.busy():
                return
            wake_at = None if once else next_poll
            if self._queue:
                expiry = self._queue[0][1] + self.options.local_queue_ttl
                wake_at = expiry if wake_at is None else min(wake_at, expiry)
            timeout = None if wake_at is None else max(0.0, wake_at - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def _expire_queue(self, now: float) -> None:
        """Hand back jobs that waited in the local queue longer than the TTL."""
        ttl = self.options.local_queue_ttl
        expired: list[int] = []
        while self._queue and self._queue[0][1] + ttl <= now:
            expired.append(self._queue.popleft()[0].id)
        if expired:
            # Jobs are not flowing: no background refills until the queue has run dry,
            # or the same jobs would be fetched and handed back again and again.
            self._refill = False
            log.info(
                "handing back %d job(s) that waited longer than %gs in the local queue",
                len(expired), ttl, extra={"gw": {"action": "local_queue_ttl"}},
            )
            self._settler.give_back(expired)
            if self._hooks is not None:
                self._emit_soon(self._hooks, hooks.LocalQueueReturnJobs,
                                hooks.LocalQueueReturnJobsContext(self.worker_id, len(expired)))

    def _hand_back_queue(self) -> None:
        ids = [job.id for job, _ in self._queue]
        self._queue.clear()
        log.info("handing back %d job(s) not started", len(ids),
                 extra={"gw": {"action": "local_queue_return", "count": len(ids)}})
        self._settler.give_back(ids)
        if self._hooks is not None:
            self._emit_soon(self._hooks, hooks.LocalQueueReturnJobs,
                            hooks.LocalQueueReturnJobsContext(self.worker_id, len(ids)))

    async def _fetch(self, want: int) -> list[Job]:
        failures = 0
        while not self.stopping.is_set():
            try:
                async with self._fetch_conn.lease() as conn:
                    if self._orphans_possible:
                        keep = [*self._active, *(job.id for job, _ in self._queue),
                                *self._settler.unsettled_ids()]
                        await queries.return_orphans(conn, self.schema, self.worker_id, keep)
                        self._orphans_possible = False
                    return await queries.fetch_jobs(
                        conn, self.schema, self.worker_id, self._task_ids, want,
                        self.options.forbidden_flags, self._task_names,
                    )
            except _FATAL as error:
                raise DatabaseError(f"fetching jobs failed: {error}") from error
            except _RETRYABLE as error:
                # The statement may have committed with its reply lost: the jobs it locked
                # are ours, and get handed back before the next fetch.
                self._orphans_possible = True
                failures += 1
                wait = backoff.delay(failures)
                log.warning(
                    "fetching jobs failed (%s); retrying in %.1fs", error, wait,
                    extra={"gw": {"action": "fetch_retry", "attempt": failures}},
                )
                await backoff.pause(self._wakeup, wait)  # the listener back: retry now
        return []

    async def _sleep_unless_stopping(self, seconds: float) -> bool:
        """Sleep; return True early if the worker starts stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # -- running one job --------------------------------------------------------------------
    def _fill_slots(self) -> None:
        queue = self._queue
        free = self.concurrency - len(self._active)
        while free > 0 and queue and not self.stopping.is_set():
            self._start(queue.popleft()[0])
            free -= 1

    def _start(self, job: Job) -> None:
        abort = context.AbortSignal()
        task = asyncio.get_running_loop().create_task(self._run_job(job, abort))
        self._active[job.id] = _Running(job, task, abort)
        task.add_done_callback(lambda t: self._job_done(job.id, t))

    def _on_outcomes_landed(self, job_ids: list[int]) -> None:
        if self._serial_unsettled:
            # Named queues unlocked by these outcomes: jobs behind them may be runnable.
            unlocked = self._serial_unsettled.intersection(job_ids)
            if unlocked:
                self._serial_unsettled.difference_update(unlocked)
                self._demand = min(self.concurrency, self._demand + len(unlocked))
        self._wakeup.set()  # --once also waits for the last outcomes to land

    def _job_done(self, job_id: int, task: asyncio.Task[None]) -> None:
        self._active.pop(job_id, None)
        self.jobs_run += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("bug: job %d's runner raised", job_id, exc_info=task.exception())
        queue = self._queue
        if queue:
            if not self.stopping.is_set():
                self._start(queue.popleft()[0])
                if self._demand and self._refill and len(queue) <= self._low_water:
                    self._wakeup.set()
            return
        self._demand = min(self.concurrency, self._demand + 1)
        self._wakeup.set()

    async def _run_job(self, job: Job, abort: context.AbortSignal) -> None:
        debug = log.isEnabledFor(logging.DEBUG)
        started = time.monotonic()
        registry = self._hooks
        ran = True
        if debug:
            log.debug("→ job %d %s started (attempt %d/%d)", job.id, job.task_identifier,
                      job.attempts, job.max_attempts,
                      extra={"gw": {"action": "start", **_fields(job)}})
        try:
            if registry is None:
                outcome = await self._execute(job, abort)
            else:
                outcome, ran = await self._execute_hooked(registry, job, abort, started)
        except asyncio.CancelledError:
            settle = self._settler.give_back(
                [job.id], self.options.shutdown_interrupted_job_retry_delay
            )
            log.warning(
                "↻ job %d %s interrupted by shutdown; rescheduled without using an attempt",
                job.id, job.task_identifier,
                extra={"gw": {"action": "interrupted", **_fields(job)}},
            )
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            if registry is not None:
                await registry.emit(hooks.JobInterrupted, hooks.JobInterruptedContext(
                    job, self.worker_id, self._stop_reason("worker shutdown"),
                    time.monotonic() - started,
                ))
            await _shielded(settle)
            return
        if job.job_queue_id is not None:
            self._serial_unsettled.add(job.id)
        if not isinstance(outcome, tasks.TaskFailure):
            self._settler.complete(job.id)
            if debug:
                duration = round((time.monotonic() - started) * 1000, 1)
                log.debug("✓ job %d %s completed in %.1fms", job.id, job.task_identifier,
                          duration, extra={"gw": {"action": "complete", **_fields(job),
                                                  "duration_ms": duration}})
            if registry is not None:
                await registry.emit(hooks.JobComplete, hooks.JobCompleteContext(
                    job, self.worker_id, time.monotonic() - started if ran else 0.0,
                    skipped=not ran,
                ))
        else:
            self._settler.fail(_failure(job, outcome))
            fields = _fields(job)
            fields["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            self._log_failure(job, outcome, fields)
            if registry is not None:
                await self._emit_failure(registry, job, outcome, started, ran)

    async def _execute_hooked(
        self, registry: hooks.HookRegistry, job: Job, abort: context.AbortSignal,
        started: float,
    ) -> tuple[tasks.TaskOutcome, bool]:
        """BeforeJobRun, JobStart, the handler, AfterJobRun: the outcome, and whether the
        handler ran."""
        if hooks.BeforeJobRun in registry.events:
            before = await registry.before_job_run(hooks.BeforeJobRunContext(job, self.worker_id))
            if before.action is hooks.results.Action.SKIP:
                return tasks.TaskSuccess(), False
            if before.action is hooks.results.Action.FAIL:
                return tasks.TaskFailure(before.message or "failed by a BeforeJobRun hook"), False
        await registry.emit(hooks.JobStart, hooks.JobStartContext(job, self.worker_id))
        outcome = await self._execute(job, abort)
        if hooks.AfterJobRun in registry.events:
            after = await registry.after_job_run(hooks.AfterJobRunContext(
                job, self.worker_id, outcome, time.monotonic() - started
            ))
            if after.action is hooks.results.Action.SKIP:
                outcome = tasks.TaskSuccess()
            elif after.action is hooks.results.Action.FAIL:
                outcome = tasks.TaskFailure(after.message or "failed by an AfterJobRun hook")
        return outcome, True

    async def _emit_failure(
        self, registry: hooks.HookRegistry, job: Job, outcome: tasks.TaskFailure,
        started: float, ran: bool,
    ) -> None:
        duration = time.monotonic() - started if ran else 0.0
        final = job.attempts >= job.max_attempts
        replacement = outcome.replacement_payload if outcome.has_replacement else None
        await registry.emit(hooks.JobFail, hooks.JobFailContext(
            job, self.worker_id, outcome.message, not final, duration, replacement, ran,
        ))
        if final:
            await registry.emit(hooks.JobPermanentlyFail, hooks.JobPermanentlyFailContext(
                job, self.worker_id, outcome.message, duration
            ))

    # -- hook helpers -----------------------------------------------------------------------
    async def _emit_start(self, registry: hooks.HookRegistry) -> None:
        queue = self._queue
        await registry.emit(hooks.WorkerStart, hooks.WorkerStartContext(
            self.worker_id, self.schema, self.pool, self.options.extensions,
            lambda: len(queue),
        ))
        if self._queue_size:
            await registry.emit(hooks.LocalQueueInit, hooks.LocalQueueInitContext(
                self.worker_id, self._queue_size
            ))

    async def _emit_shutdown(self, registry: hooks.HookRegistry, once: bool) -> None:
        if self._emitting:
            await asyncio.wait(self._emitting, timeout=SIDE_TASK_STOP_TIMEOUT)
        reason = self._stop_reason("run once finished" if once else "stopped")
        await registry.emit(hooks.WorkerShutdown, hooks.WorkerShutdownContext(
            self.worker_id, reason, self.jobs_run
        ))

    async def _emit_fetched(self, registry: hooks.HookRegistry, jobs: list[Job]) -> None:
        if hooks.JobFetch in registry.events:
            for job in jobs:
                await registry.emit(hooks.JobFetch, hooks.JobFetchContext(job, self.worker_id))
        if self._queue_size:
            await registry.emit(hooks.LocalQueueGetJobsComplete,
                                hooks.LocalQueueGetJobsCompleteContext(self.worker_id, len(jobs)))

    def _refetch_delay_over(self, registry: hooks.HookRegistry, stopped: bool) -> None:
        if stopped:
            self._emit_soon(registry, hooks.LocalQueueRefetchDelayAbort,
                            hooks.LocalQueueRefetchDelayAbortContext(self.worker_id))
        else:
            self._emit_soon(registry, hooks.LocalQueueRefetchDelayExpired,
                            hooks.LocalQueueRefetchDelayExpiredContext(self.worker_id))

    def _emit_soon(
        self, registry: hooks.HookRegistry, event: type[hooks.Observer[C]], ctx: C
    ) -> None:
        """Emit from synchronous code: in a task, awaited before WorkerShutdown."""
        if event not in registry.events:
            return
        task = asyncio.get_running_loop().create_task(registry.emit(event, ctx))
        self._emitting.add(task)
        task.add_done_callback(self._emitting.discard)

    async def _execute(self, job: Job, abort: context.AbortSignal) -> tasks.TaskOutcome:
        try:
            definition = self.options.tasks[job.task_identifier]
        except KeyError:
            return tasks.TaskFailure(f"unknown task {job.task_identifier!r}")
        ctx = context.WorkerContext(
            job=job, pool=self.pool, schema=self.schema, worker_id=self.worker_id,
            extensions=self.options.extensions, abort_signal=abort, logger=_JOB_LOG,
            hooks=self._hooks, utils=self._utils,
        )
        try:
            return await definition(ctx)
        except Exception as error:  # TaskDefinition should not raise; be safe anyway
            return tasks.TaskFailure(f"{type(error).__name__}: {error}")

    @staticmethod
    def _log_failure(job: Job, outcome: tasks.TaskFailure, fields: dict[str, Any]) -> None:
        final = job.attempts >= job.max_attempts
        fields = {**fields, "error": outcome.message, "final": final}
        if final:
            log.error("✗ job %d %s failed permanently after %d attempt(s): %s", job.id,
                      job.task_identifier, job.attempts, outcome.message,
                      extra={"gw": {"action": "fail", **fields}})
        else:
            log.warning("! job %d %s failed (attempt %d/%d), will retry: %s", job.id,
                        job.task_identifier, job.attempts, job.max_attempts, outcome.message,
                        extra={"gw": {"action": "fail", **fields}})

    # -- stale locks ------------------------------------------------------------------------
    async def _stale_lock_loop(self) -> None:
        delay = random.uniform(0.0, STALE_LOCK_FIRST_WITHIN)
        while not await self._sleep_unless_stopping(delay):
            await self._reset_stale_locks()
            delay = random.uniform(*STALE_LOCK_EVERY)

    async def _reset_stale_locks(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                await queries.reset_stale_locks(conn, self.schema)
        except _FATAL as error:
            raise DatabaseError(f"resetting stale locks failed: {error}") from error
        except _RETRYABLE as error:
            log.warning("resetting stale locks failed (%s); will try again later", error)


def _fields(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id, "task": job.task_identifier, "queue": job.queue_name,
        "attempt": job.attempts, "max_attempts": job.max_attempts,
    }


def _failure(job: Job, outcome: tasks.TaskFailure) -> queries.Failure:
    message, payload_json = outcome.message, None
    if outcome.has_replacement:
        try:
            payload_json = payloads.replacement_to_json(outcome.replacement_payload)
        except BadInputError as error:
            # The failure must still be written: keep the payload, and say why.
            log.error("job %d %s: %s; its payload is kept", job.id, job.task_identifier,
                      error.message)
            message = f"{message}\n(new payload not written: {error.message})"
    return queries.Failure(
        job_id=job.id, message=message, payload_json=payload_json, attempts=job.attempts
    )


async def _shielded(settle: asyncio.Task[None]) -> None:
    """Wait for a write; if we are cancelled meanwhile, the write still completes (the
    settler tracks it and shutdown waits for it)."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(settle)
