"""The recovery side task of a worker: register, heartbeat, sweep, deregister.

With a URL, the liveness lock and the heartbeat live in a thread of their own with their
own connection (``liveness.LivenessThread``), so neither busy job slots, a saturated pool
nor a stalled event loop can delay them. Without one (a pool passed in), the heartbeat
runs on this loop from the pool, with no liveness lock: such a worker is judged by its
heartbeat alone. Sweeping uses the pool, on this loop. The stall watchdog starts here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from graphile_worker_cli import db
from graphile_worker_cli.errors import GraphileWorkerError
from graphile_worker_cli.recovery import registry, sweep
from graphile_worker_cli.recovery.config import SweepStaleWorkersOptions, WorkerRecoveryConfig
from graphile_worker_cli.recovery.liveness import LivenessThread
from graphile_worker_cli.stall_watchdog import RunningJobs, StallWatchdog

if TYPE_CHECKING:
    from graphile_worker_cli import hooks as gw_hooks

logger = logging.getLogger("gw.recovery")

# Failures we ride out: the worker's transient errors (the database restarting, a
# terminated backend, a network blip...), and our own errors translated from them.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *db.TRANSIENT_ERRORS,
    GraphileWorkerError,
)
FIRST_RETRY_DELAY = 0.1


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until stop is set; True when stop is set."""
    if stop.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
    return stop.is_set()


class _Heart:
    """Keeps one worker's registry row fresh."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        worker_id: str,
        config: WorkerRecoveryConfig,
        tasks: Sequence[str],
        url: str | None,
        metadata: dict[str, Any] | None,
        prepared_statements: bool,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.worker_id = worker_id
        self.config = config
        self.tasks = list(tasks)
        self.url = url
        self.metadata = metadata
        self.prepared_statements = prepared_statements
        self.conn: asyncpg.Connection | None = None
        self.registered = False

    async def _executor(self) -> registry.Executor:
        if self.url is None:
            return self.pool
        if self.conn is None or self.conn.is_closed():
            app_name = f"gw-recovery {self.worker_id}"[:63]
            extra: dict[str, Any] = {} if self.prepared_statements else {"statement_cache_size": 0}
            self.conn = await db.connect(
                self.url, server_settings={"application_name": app_name}, **extra
            )
        return self.conn

    async def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=registry.DEREGISTER_TIMEOUT)
            if not conn.is_closed():
                conn.terminate()

    async def beat(self) -> None:
        """Register if needed, else heartbeat; one database round trip either way."""
        executor = await self._executor()
        timeout = max(self.config.heartbeat_interval, 1.0)
        if self.registered:
            alive = await asyncio.wait_for(
                registry.heartbeat(executor, self.schema, self.worker_id), timeout
            )
            if alive:
                return
            logger.error(
                "worker %s was declared dead by a sweep (its heartbeat was late beyond the "
                "sweep threshold); its jobs were recovered and may run again elsewhere; "
                "registering again",
                self.worker_id,
                extra={"gw": {"action": "reregister", "worker_id": self.worker_id}},
            )
        await asyncio.wait_for(
            registry.register_worker(
                executor,
                self.schema,
                self.worker_id,
                heartbeat_interval=self.config.heartbeat_interval,
                tasks=self.tasks,
                metadata=self.metadata,
            ),
            timeout,
        )
        self.registered = True

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await self.beat()
            except TRANSIENT_ERRORS as error:
                failures += 1
                await self.close()
                # Retry sooner than the next beat would be due: a long backoff here is what
                # would get a live worker swept.
                delay = min(FIRST_RETRY_DELAY * 2 ** (failures - 1), self.config.heartbeat_interval)
                logger.warning(
                    "heartbeat of worker %s failed (%s); retrying in %.1fs",
                    self.worker_id,
                    str(error).strip() or type(error).__name__,
                    delay,
                )
                if await _sleep_or_stop(stop, delay * random.uniform(0.8, 1.0)):
                    return
                continue
            if failures:
                logger.info("heartbeat of worker %s restored", self.worker_id)
            failures = 0
            if await _sleep_or_stop(stop, self.config.heartbeat_interval):
                return

    async def deregister(self, holds_no_jobs: bool = False) -> None:
        if self.registered:
            await registry.deregister_at_exit(
                self._executor, self.schema, self.worker_id, TRANSIENT_ERRORS,
                holds_no_jobs=holds_no_jobs,
            )


def _asked(holds_no_jobs: Callable[[], bool] | None) -> bool:
    return holds_no_jobs is not None and holds_no_jobs()


async def _sweep_loop(
    pool: asyncpg.Pool,
    schema: str,
    worker_id: str,
    config: WorkerRecoveryConfig,
    stop: asyncio.Event,
    hooks: gw_hooks.HookRegistry | None = None,
) -> None:
    # Never longer than sweep_interval between sweeps, jittered so a fleet started at once
    # does not contend for the sweep lock in step.
    delay = config.sweep_interval * random.uniform(0.1, 0.5)
    while not await _sleep_or_stop(stop, delay):
        delay = config.sweep_interval * random.uniform(0.75, 1.0)
        try:
            options = SweepStaleWorkersOptions()
            await asyncio.wait_for(
                sweep.sweep_stale_workers(
                    pool, schema, options, defaults=config, sweeper_id=worker_id,
                    hooks=hooks,
                ),
                timeout=max(config.sweep_interval, 10.0),
            )
        except TRANSIENT_ERRORS as error:
            logger.warning("recovery sweep failed: %s", str(error).strip() or type(error).__name__)


async def run_worker_recovery(
    pool: asyncpg.Pool,
    schema: str,
    worker_id: str,
    config: WorkerRecoveryConfig,
    *,
    stop: asyncio.Event,
    tasks: Sequence[str] = (),
    url: str | None = None,
    metadata: dict[str, Any] | None = None,
    prepared_statements: bool = True,
    hooks: gw_hooks.HookRegistry | None = None,
    running_jobs: RunningJobs | None = None,
    holds_no_jobs: Callable[[], bool] | None = None,
) -> None:
    """Register ``worker_id``, hold its liveness lock, heartbeat and sweep until ``stop``
    is set, then deregister.

    With ``url`` the liveness lock and heartbeat use a dedicated connection to it, in a
    thread; without, the pool. ``running_jobs`` (the worker's running job ids and tasks)
    turns on the stall watchdog. ``holds_no_jobs``, asked once ``stop`` is set: whether the
    worker knows it holds no job lock (then deregistering does not count them). Set
    ``stop`` only after the worker settled or returned its jobs: a deregistered worker's
    remaining locks fall back to the 4-hour rule. Database errors never end this coroutine;
    it returns only when ``stop`` is set.
    """
    watchdog = StallWatchdog(running_jobs, worker_id=worker_id) if running_jobs else None
    if watchdog is not None:
        watchdog.start()
    try:
        if not config.enabled:
            await stop.wait()
        elif url is None:
            await _recover_on_loop(pool, schema, worker_id, config, stop, tasks, metadata,
                                   prepared_statements, hooks, holds_no_jobs)
        else:
            liveness = LivenessThread(
                url, schema, worker_id, config, tasks=tasks, metadata=metadata,
                prepared_statements=prepared_statements,
                longest_stall=watchdog.longest_recent if watchdog is not None else None,
            )
            liveness.start()
            try:
                await _sweep_loop(pool, schema, worker_id, config, stop, hooks)
            except BaseException:
                # Cancelled: the session ends, the row stays; a sweep recovers what is held.
                liveness.request_stop(deregister=False)
                raise
            await liveness.stop(holds_no_jobs=_asked(holds_no_jobs))
    finally:
        if watchdog is not None:
            watchdog.stop()


async def _recover_on_loop(
    pool: asyncpg.Pool,
    schema: str,
    worker_id: str,
    config: WorkerRecoveryConfig,
    stop: asyncio.Event,
    tasks: Sequence[str],
    metadata: dict[str, Any] | None,
    prepared_statements: bool,
    hooks: gw_hooks.HookRegistry | None,
    holds_no_jobs: Callable[[], bool] | None,
) -> None:
    heart = _Heart(pool, schema, worker_id, config, tasks, None, metadata, prepared_statements)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(heart.run(stop), name=f"gw-heartbeat-{worker_id}")
            group.create_task(
                _sweep_loop(pool, schema, worker_id, config, stop, hooks), name="gw-sweep"
            )
        await heart.deregister(_asked(holds_no_jobs))
    finally:
        await heart.close()
