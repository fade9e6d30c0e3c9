"""``Worker``: runs the fetch loop and its side tasks, and shuts down without losing or
double-running anything.

The parts, each in its own module: ``Slots`` (running jobs and fetch demand),
``LocalQueue`` (jobs locked but not started), ``FetchLoop`` (when to fetch, how many),
``JobRunner`` (one job from start to outcome), ``Settler`` (outcomes written in batches),
the listener (``listen``), hook emission (``events``), the stale-lock reset
(``stale_locks``), the jobs-table vacuum (``maintenance``) and the job history upkeep
(``history``). This module builds them, supervises the side tasks (listener, stale-lock
reset, vacuum, history upkeep, cron, recovery, plugins) and winds everything down at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any

import asyncpg

from graphile_worker_cli import migrate
from graphile_worker_cli.errors import GraphileWorkerError, SchemaTooNewError
from graphile_worker_cli.job_input import CANCELLED_ERROR
from graphile_worker_cli.job_transaction import InTransactionCompletion
from graphile_worker_cli.worker import backoff, listen_probe, maintenance, stale_locks, store
from graphile_worker_cli.worker.cancel import CHECK_EVERY_POLLS, CancelWatcher
from graphile_worker_cli.worker.config import WorkerConfig
from graphile_worker_cli.worker.events import worker_events
from graphile_worker_cli.worker.fetch_loop import FetchLoop
from graphile_worker_cli.worker.fetchconn import FetchConnection
from graphile_worker_cli.worker.listen import worker_listener
from graphile_worker_cli.worker.local_queue import LocalQueue
from graphile_worker_cli.worker.running import JobContextFields, JobRunner
from graphile_worker_cli.worker.settle import Settler
from graphile_worker_cli.worker.shutdown import (
    SHUTDOWN_ABORT_REASON,
    ShutdownSignal,
    os_signal_handlers,
)
from graphile_worker_cli.worker.slots import Slots
from graphile_worker_cli.worker.task_limits import TaskLimits
from graphile_worker_cli.worker_utils import WorkerUtils

log = logging.getLogger("gw.worker")

SETTLE_DRAIN_TIMEOUT = 15.0
SIDE_TASK_STOP_TIMEOUT = 5.0
POOL_CLOSE_TIMEOUT = 10.0
LISTENER = "listener"
CANCEL_WATCH = "cancel-watch"
VACUUM = "jobs-vacuum"


class Worker:
    """A worker ready to run; made by ``await WorkerOptions(...).init()``."""

    def __init__(
        self,
        options: WorkerConfig,
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
        self._task_names = {task_id: name for name, task_id in task_ids.items()}
        self._shutdown = options.shutdown_signal or ShutdownSignal()
        self._hurry = asyncio.Event()
        self._exit_error: GraphileWorkerError | None = None
        self._cancelled = False
        self._started = False
        # A session of its own for the fetch settings: on the direct URL when there is one
        # (a transaction pooler keeps no session state), else on the database URL.
        direct = options.direct_database_url
        self._fetch_conn = FetchConnection(
            pool, direct or options.database_url,
            dedicated=direct is not None or options.prepared_statements,
        )
        self.slots = Slots(options.concurrency)
        self.events = worker_events(
            options.hooks, worker_id=worker_id, schema=self.schema,
            queue_size=max(0, options.local_queue_size),
        )
        self.settler = Settler(
            pool, self.schema, worker_id,
            complete_delay=options.complete_job_batch_delay,
            fail_delay=options.fail_job_batch_delay,
            on_landed=self.slots.outcomes_landed,
            history=bool(options.history_retention),
        )
        self.queue = LocalQueue(
            options.local_queue_size, ttl=options.local_queue_ttl,
            refetch_delay=options.local_queue_refetch_delay,
            refetch_delay_threshold=options.local_queue_refetch_delay_threshold,
            refetch_delay_max_abort_threshold=(
                options.local_queue_refetch_delay_max_abort_threshold
            ),
            give_back=self.settler.give_back, events=self.events,
        )
        self._task_limits = options.task_limits()
        limits = TaskLimits.of(
            {task_ids[name]: limit for name, limit in self._task_limits.items()
             if name in task_ids},
            self._task_names, options.concurrency, options.local_queue_size, self._task_names,
        )
        self._runner = JobRunner(
            slots=self.slots, queue=self.queue, settler=self.settler, events=self.events,
            registry=options.tasks, stopping=self.stopping,
            context_of=JobContextFields(
                pool, self.schema, worker_id, options.extensions, self.events.registry,
                WorkerUtils(pool, schema=self.schema, hooks=self.events.registry),
                InTransactionCompletion(pool, lambda conn, job: store.complete_job_in_transaction(
                    conn, self.schema, worker_id, job.id, job.attempts,
                    history=bool(options.history_retention),
                )),
            ),
            interrupted_retry_delay=options.shutdown_interrupted_job_retry_delay,
            task_timeout=options.task_timeout,
            abort_window=options.shutdown_abort_timeout,
            stop_reason=lambda: self._stop_reason("worker shutdown"),
            limits=limits,
        )
        self._cancels: CancelWatcher | None = None
        """Set at start when the schema has gw's cancel requests (gw migration 3)."""
        self._fetch_loop = FetchLoop(
            slots=self.slots, queue=self.queue, runner=self._runner, settler=self.settler,
            events=self.events, connection=self._fetch_conn, stopping=self.stopping,
            schema=self.schema, worker_id=worker_id, task_names=self._task_names,
            forbidden_flags=options.forbidden_flags, poll_interval=options.poll_interval,
            limits=limits,
            spare=FetchConnection(pool, None, dedicated=False),
        )

    # -- public API -----------------------------------------------------------------------
    @property
    def concurrency(self) -> int:
        return self.options.concurrency

    @property
    def task_count(self) -> int:
        return len(self._task_names)

    @property
    def jobs_run(self) -> int:
        """Jobs that ended in this worker (completed, failed or handed back)."""
        return self._runner.jobs_run

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
        self._log_start(once)
        side: dict[asyncio.Task[None], str] = {}
        queue = self.queue
        await self.events.worker_start(self.pool, self.options.extensions, lambda: len(queue))
        try:
            side.update(await self._start_side_tasks(once))
            await self._run_fetch_loop(once, side)
        finally:
            self.stopping.set()
            self.settled.set()
            await self._stop_side_tasks(side)
            await self.events.worker_shutdown(
                self._stop_reason("run once finished" if once else "stopped"), self.jobs_run
            )
        log.info(
            "worker %s stopped after %d job(s)", self.worker_id, self.jobs_run,
            extra={"gw": {"action": "worker_stop", "worker_id": self.worker_id}},
        )

    def _log_start(self, once: bool) -> None:
        log.info(
            "worker %s started: %d task(s), concurrency %d, schema %s%s",
            self.worker_id, self.task_count, self.concurrency, self.schema,
            " (run once)" if once else "",
            extra={"gw": {"action": "worker_start", "worker_id": self.worker_id,
                          "tasks": self.task_count, "concurrency": self.concurrency,
                          "schema": self.schema}},
        )
        binding = {name: limit for name, limit in self._task_limits.items()
                   if limit < self.concurrency}
        if binding:
            log.info(
                "per-task limits: %s",
                ", ".join(f"{name} {limit}" for name, limit in sorted(binding.items())),
                extra={"gw": {"action": "task_limits", "limits": binding}},
            )

    async def _start_side_tasks(self, once: bool) -> dict[asyncio.Task[None], str]:
        loop = asyncio.get_running_loop()
        side: dict[asyncio.Task[None], str] = {}
        if once:
            await stale_locks.reset_stale_locks(
                self.pool, self.schema, self.events.stale_locks_reset, self.worker_id
            )
        else:
            await self._enable_cancels()
            for name, coroutine in self._side_tasks():
                side[loop.create_task(coroutine, name=name)] = name
        if self.options.worker_recovery:  # --once too: its jobs must not look abandoned
            side[loop.create_task(self._recovery(), name="recovery")] = "recovery"
        if self.options.jobs_vacuum_threshold > 0:  # --once too: it may drain a backlog
            vacuum = maintenance.JobsVacuum(
                self.pool, self.schema, self.worker_id, self.options.jobs_vacuum_threshold,
                lambda: self.jobs_run,
            )
            side[loop.create_task(vacuum.run(self.stopping), name=VACUUM)] = VACUUM
        return side

    async def _run_fetch_loop(self, once: bool, side: dict[asyncio.Task[None], str]) -> None:
        """Run the fetch loop, watching the side tasks, then wind down."""
        fetch_loop = asyncio.get_running_loop().create_task(
            self._fetch_loop.run(once=once), name="fetch-loop"
        )
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
        except BaseException as error:
            # Cancelled (or crashed): stop this worker now, running jobs handed back. The
            # shutdown signal may be shared with other workers; it is theirs to act on
            # only when someone sets it, so it is left alone here.
            if not isinstance(error, asyncio.CancelledError):
                self.events.fatal_error("fetch loop", error)
            fetch_loop.cancel()
            self._cancelled = True
            self.stopping.set()
            self._hurry.set()
            self.slots.wakeup.set()
            await self._wind_down()
            raise

    async def _enable_cancels(self) -> None:
        """Watch for cancelled jobs when the schema can hold cancel requests."""
        try:
            async with self.pool.acquire() as conn:
                enabled = await store.has_cancel_requests(conn, self.schema)
        except backoff.TRANSIENT_ERRORS:
            enabled = True  # most likely; if not, each look logs why it failed
        if not enabled:
            log.warning(
                "schema %s has no _gw_cancel_requests table (run `gw migrate`): jobs "
                "cancelled while this worker runs them will not be interrupted", self.schema,
            )
            return
        self._cancels = CancelWatcher(
            self.pool, self.schema, self.worker_id, self._runner,
            interval=self.options.poll_interval * CHECK_EVERY_POLLS,
            history=bool(self.options.history_retention),
        )
        self._fetch_loop.cancels = self._cancels
        self.settler.cancelled_message = CANCELLED_ERROR

    def _side_tasks(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        listener = worker_listener(
            self.pool, self.options.direct_database_url or self.options.database_url,
            self.slots, self._on_migration, probe=self._listen_delivers,
            pulse=self.queue.pulse, events=self.events, cancels=self._cancels,
        )
        items: list[tuple[str, Coroutine[Any, Any, None]]] = [
            (LISTENER, listener.run()),
            ("stale-lock-reset",
             stale_locks.reset_stale_locks_until(
                 self.stopping, self.pool, self.schema, self.events.stale_locks_reset,
                 self.worker_id,
             )),
        ]
        if self.options.crontabs:
            from graphile_worker_cli.cron import scheduler

            items.append((
                "cron",
                scheduler.run_scheduler(
                    self.pool, self.schema, self.options.crontabs, stop=self.stopping,
                    use_prepared=self.options.prepared_statements,
                    hooks=self.events.registry,
                ),
            ))
        if self._cancels is not None:
            items.append((CANCEL_WATCH, self._cancels.run(self.settled)))
        if self.options.history_retention:
            from graphile_worker_cli.worker import history

            items.append((
                "history-upkeep",
                history.upkeep_until(
                    self.stopping, self.pool, self.schema, self.options.history_retention
                ),
            ))
        # Metrics and plugins hook in here through options.side_tasks.
        for index, side_task in enumerate(self.options.side_tasks):
            name = getattr(side_task, "__name__", f"side-task-{index}")
            items.append((name, side_task(self)))
        return items

    async def _listen_delivers(self, conn: asyncpg.Connection) -> bool:
        delivers = await listen_probe.delivers(conn, self.pool, self.schema)
        if not delivers:
            log.warning(
                "LISTEN delivers no notifications on this connection (a transaction pooler "
                "such as PgBouncer?): new jobs are found by polling every %ss only; set "
                "direct_database_url to a direct PostgreSQL connection to listen",
                f"{self.options.poll_interval:g}",
                extra={"gw": {"action": "listen_undelivered"}},
            )
        return delivers

    def _recovery(self) -> Coroutine[Any, Any, None]:
        from graphile_worker_cli import recovery

        # Stops on `settled`: until then this worker may still hold locks.
        return recovery.run_worker_recovery(
            self.pool, self.schema, self.worker_id,
            recovery.WorkerRecoveryConfig.from_settings(self.options),
            stop=self.settled, tasks=list(self._task_names.values()),
            url=self.options.direct_database_url or self.options.database_url,
            prepared_statements=self.options.prepared_statements,
            hooks=self.events.registry, running_jobs=self._running_jobs,
            metadata={"connections": self.options.connection_budget(self.pool.get_max_size())},
            holds_no_jobs=self._holds_no_jobs,
        )

    def _holds_no_jobs(self) -> bool:
        """After wind-down: nothing running or queued, every outcome written, every fetch
        answered — so this worker holds no job lock, and need not count them at exit."""
        return (
            not self.slots.running and not self.queue
            and self.settler.all_written() and not self._fetch_loop.orphans_possible
        )

    def _running_jobs(self) -> list[tuple[int, str]]:
        """(id, task) of each running job, for the stall watchdog."""
        return [(r.job.id, r.job.task_identifier) for r in self.slots.running.values()]

    def _side_task_ended(self, name: str, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = task.exception()
        if error is None:
            return
        self.events.fatal_error(name, error)
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
        # The listener and the cancel watch only end when cancelled (both work through the
        # grace period); the others return once they see stopping/settled (recovery
        # deregisters first), so give them a moment.
        for task, name in side.items():
            if name in (LISTENER, CANCEL_WATCH):
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
                await asyncio.wait_for(self.pool.close(), timeout=POOL_CLOSE_TIMEOUT)
            except backoff.TRANSIENT_ERRORS:
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
        self.slots.wakeup.set()
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

    async def _wind_down(self) -> None:
        """Let running jobs finish within the grace period, then abort and hand back the
        rest without using up an attempt; finally wait for every write to land."""
        self.queue.hand_back_all()
        await self._wait_for_running_jobs()
        await self._abort_running_jobs()
        unsettled = await self.settler.drain(SETTLE_DRAIN_TIMEOUT)
        if unsettled:
            log.error(
                "%d job outcome(s) could not be written before exit; those jobs stay "
                "locked by %s until recovery or the 4-hour stale-lock reset "
                "(or `gw workers unlock`)",
                unsettled, self.worker_id,
            )

    async def _abort_running_jobs(self) -> None:
        """Fire the abort signal of every job still running, give them the abort window to
        return on their own, then cancel the rest. Each is handed back either way."""
        if self.slots.running and self._cancels is not None:
            await self._cancels.final_check()
        left = list(self.slots.running.values())
        if not left:
            return
        window = self.options.shutdown_abort_timeout
        log.warning(
            "aborting %d job(s) still running; they have %gs to stop, then are cancelled; "
            "they will be retried in %gs",
            len(left), window, self.options.shutdown_interrupted_job_retry_delay,
        )
        for running_job in left:
            running_job.abort.set(SHUTDOWN_ABORT_REASON)
        if window > 0:
            await asyncio.wait([r.task for r in left], timeout=window)
        stubborn = [r for r in left if not r.task.done()]
        for running_job in stubborn:
            running_job.task.cancel()
        if stubborn:
            log.warning("cancelled %d job(s) that did not stop within %gs",
                        len(stubborn), window)
            await asyncio.wait([r.task for r in stubborn], timeout=SETTLE_DRAIN_TIMEOUT)

    async def _wait_for_running_jobs(self) -> None:
        """Up to the grace period, or until a second shutdown request (hurry)."""
        running = [r.task for r in self.slots.running.values()]
        if not running:
            return
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
