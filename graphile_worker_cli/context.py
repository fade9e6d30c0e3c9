"""What a task handler receives: ``WorkerContext``, typed ``Extensions`` (seen through
``ReadOnlyExtensions``), ``AbortSignal``.

A context is built by the worker for one job run. It carries the job, a logger scoped to the
job, the worker's pool (for ``add_job`` and ad-hoc SQL), the application state registered
with ``WorkerOptions.add_extension``, and the signal that fires when the job must stop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Mapping, MutableMapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from graphile_worker_cli import job as jobs
from graphile_worker_cli.extensions import Extensions as Extensions  # context.Extensions: public
from graphile_worker_cli.extensions import ReadOnlyExtensions as ReadOnlyExtensions
from graphile_worker_cli.job_transaction import Completions, JobTransaction

if TYPE_CHECKING:
    from graphile_worker_cli import hooks as worker_hooks
    from graphile_worker_cli import job_input
    from graphile_worker_cli.jobs_api import JobsApi

T = TypeVar("T")

JOB_LOGGER_NAME = "gw.job"


class JobAborted(Exception):
    """The job was asked to stop (``AbortSignal.raise_if_set``)."""


class AbortSignal:
    """Fires when the worker needs a running job to stop (shutdown past its grace period).

    Safe to use from any thread: ``set`` may be called from anywhere, ``is_set``/``wait_sync``
    work in a sync handler running in a thread, ``await wait()`` works in async handlers.
    One is made per job, so it is cheap until used: the ``threading.Event`` behind
    ``wait_sync`` is created on first call, and one module-wide lock guards every signal
    (``set`` and the waits are rare; ``is_set`` takes no lock).
    """

    __slots__ = ("_event", "_fired", "_reason", "_waiters")

    def __init__(self) -> None:
        self._fired = False
        self._reason: str | None = None
        self._event: threading.Event | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def reason(self) -> str | None:
        """Why the signal fired, or None while it has not."""
        return self._reason

    def is_set(self) -> bool:
        return self._fired

    def set(self, reason: str = "aborted") -> None:
        """Fire the signal (idempotent: the first reason is kept)."""
        with _SIGNAL_LOCK:
            if self._fired:
                return
            self._reason = reason
            self._fired = True
            event = self._event
            waiters, self._waiters = self._waiters, []
        if event is not None:
            event.set()
        for loop, future in waiters:
            if loop.is_closed():
                continue
            loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> str:
        """Wait until the signal fires; returns the reason."""
        loop = asyncio.get_running_loop()
        with _SIGNAL_LOCK:
            if self._fired:
                return self._reason or "aborted"
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await future
        finally:
            with _SIGNAL_LOCK:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))
        return self._reason or "aborted"

    def wait_sync(self, timeout: float | None = None) -> bool:
        """Block the calling thread until the signal fires or ``timeout`` passes (sync
        handlers only; never call this on the event loop). True if it fired."""
        with _SIGNAL_LOCK:
            if self._fired:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def raise_if_set(self) -> None:
        """Raise ``JobAborted`` if the signal fired: a cheap check for loops in handlers."""
        if self._fired:
            raise JobAborted(self._reason or "aborted")

    def __repr__(self) -> str:
        state = f"set: {self._reason!r}" if self.is_set() else "not set"
        return f"<AbortSignal {state}>"


_SIGNAL_LOCK = threading.Lock()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class JobLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    """Adds the job's fields to every record as ``extra={"gw": {...}}``, merging any
    ``gw`` fields the caller passes instead of replacing them."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        base: Mapping[str, Any] = self.extra or {}
        extra = dict(kwargs.get("extra") or {})
        extra["gw"] = {**base.get("gw", {}), **extra.get("gw", {})}
        kwargs["extra"] = extra
        return msg, kwargs


def job_logger(job: jobs.Job, logger: logging.Logger | None = None) -> JobLoggerAdapter:
    """A logger whose records carry the job's id, task, queue and attempt."""
    fields = {
        "job_id": job.id,
        "task": job.task_identifier,
        "queue": job.queue_name,
        "attempt": job.attempts,
    }
    return JobLoggerAdapter(logger or logging.getLogger(JOB_LOGGER_NAME), {"gw": fields})


class WorkerContext:
    """Everything a handler may use while it runs one job."""

    def __init__(
        self,
        *,
        job: jobs.Job,
        pool: asyncpg.Pool,
        schema: str,
        worker_id: str,
        extensions: Extensions | ReadOnlyExtensions,
        abort_signal: AbortSignal,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        hooks: worker_hooks.HookRegistry | None = None,
        utils: JobsApi | None = None,
        completions: Completions | None = None,
    ) -> None:
        self.job = job
        self.hooks = hooks
        """The worker's hooks; ``utils``/``add_job`` run its BeforeJobSchedule hooks."""
        self.pool = pool
        self.schema = schema
        self.worker_id = worker_id
        self._extensions = extensions.read_only()
        self.abort_signal = abort_signal
        self._base_logger: logging.Logger | None = None
        self._logger: logging.LoggerAdapter[Any] | None = None  # built on first use
        if logger is None or isinstance(logger, logging.Logger):
            self._base_logger = logger
        else:
            self._logger = logger
        self._loop: asyncio.AbstractEventLoop | None = None
        self._utils = utils
        self._completions = completions

    @property
    def logger(self) -> logging.LoggerAdapter[Any]:
        """A logger whose records carry the job's id, task, queue and attempt."""
        if self._logger is None:
            self._logger = job_logger(self.job, self._base_logger)
        return self._logger

    @logger.setter
    def logger(self, value: logging.LoggerAdapter[Any]) -> None:
        self._logger = value

    @property
    def extensions(self) -> ReadOnlyExtensions:
        """The application state of ``WorkerOptions.add_extension``, read-only."""
        return self._extensions

    # Job fields -------------------------------------------------------------------------

    @property
    def payload(self) -> Any:
        """The job's payload as decoded JSON (handlers usually get it validated instead)."""
        return self.job.payload

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def task_identifier(self) -> str:
        return self.job.task_identifier

    @property
    def queue_name(self) -> str | None:
        return self.job.queue_name

    @property
    def attempts(self) -> int:
        """Attempts so far, this one included (1 on the first run)."""
        return self.job.attempts

    @property
    def max_attempts(self) -> int:
        return self.job.max_attempts

    @property
    def run_at(self) -> datetime:
        return self.job.run_at

    @property
    def key(self) -> str | None:
        return self.job.key

    @property
    def flags(self) -> tuple[str, ...]:
        """The job's flags (names), empty when it has none."""
        return tuple(sorted(name for name, on in (self.job.flags or {}).items() if on))

    # Database -----------------------------------------------------------------------------

    @property
    def utils(self) -> JobsApi:
        """The worker's ``WorkerUtils`` (its pool, schema and hooks): every scheduling and
        maintenance operation (add_raw_job, add_batch_job, remove_job, ...)."""
        if self._utils is None:
            raise RuntimeError(
                "this WorkerContext has no jobs API: make it with utils=WorkerUtils(pool, "
                "schema=..., hooks=...) (the worker passes its own)"
            )
        return self._utils

    async def add_job(
        self,
        identifier: str,
        payload: Any = None,
        spec: jobs.JobSpec | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> jobs.Job:
        """Queue another job (same database and schema as this worker)."""
        return await self.utils.add_job(identifier, payload, spec, conn=conn)

    async def add_raw_job(
        self,
        identifier: str,
        payload: Any = None,
        spec: jobs.JobSpec | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> jobs.Job:
        """Queue a job whose payload is already plain JSON values (``WorkerUtils.add_raw_job``)."""
        return await self.utils.add_raw_job(identifier, payload, spec, conn=conn)

    async def add_batch_job(
        self,
        identifier: job_input.TaskName,
        items: Sequence[Any],
        spec: jobs.JobSpec | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> jobs.Job:
        """Queue a batch job whose payload is the JSON array of ``items``; with a job key,
        items join the waiting job of that key (``WorkerUtils.add_batch_job``)."""
        return await self.utils.add_batch_job(identifier, items, spec, conn=conn)

    async def add_jobs(
        self,
        specs: Sequence[job_input.JobInput],
        *,
        conn: asyncpg.Connection | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[jobs.Job]:
        """Queue several jobs in one statement (see ``WorkerUtils.add_jobs``)."""
        return await self.utils.add_jobs(
            specs, conn=conn, job_key_preserve_run_at=job_key_preserve_run_at
        )

    async def add_raw_jobs(
        self,
        specs: Sequence[jobs.RawJobSpec],
        *,
        conn: asyncpg.Connection | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[jobs.Job]:
        """Queue several jobs whose payloads are plain JSON values, in one statement
        (``WorkerUtils.add_raw_jobs``)."""
        return await self.utils.add_raw_jobs(
            specs, conn=conn, job_key_preserve_run_at=job_key_preserve_run_at
        )

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one SQL statement on the worker's pool and return its rows."""
        rows: list[asyncpg.Record] = await self.pool.fetch(sql, *args)
        return rows

    def transaction(self) -> JobTransaction:
        """A transaction on the worker's pool in which this job completes: on a clean exit
        from the block the job is deleted (if this worker still holds it, else
        ``JobLockLostError`` and a rollback) and the transaction commits, so the task's
        writes and the job's completion happen together or not at all.

        ``async with ctx.transaction() as conn:`` in an async task (an asyncpg connection);
        ``with ctx.transaction() as tx:`` in a sync task (a ``SyncConnection``). An
        exception in the block rolls it back and the job is not complete. Once one has
        committed, the job is done whatever the task does next. Not for batch tasks."""
        if self._completions is None:
            raise RuntimeError(
                "ctx.transaction() completes the job, so it needs the context the worker "
                "gives a task"
            )
        return JobTransaction(self._completions, self.job, self.run_coroutine)

    # Sync handlers ------------------------------------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the worker's event loop (done by the task runner before a sync handler
        starts in a thread) so ``run_coroutine`` can reach it."""
        self._loop = loop

    def run_coroutine(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """From a sync handler running in a thread, run ``awaitable`` (e.g.
        ``ctx.add_job(...)``) on the worker's loop and wait for its result."""
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        problem = None
        if loop is None:
            problem = "run_coroutine is for sync handlers run by the worker"
        elif running is loop:
            problem = "run_coroutine would block the event loop; use await instead"
        if problem is not None or loop is None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never to be awaited: no "never awaited" warning
            raise RuntimeError(problem)

        async def call() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout)

    def __repr__(self) -> str:
        return (
            f"<WorkerContext job {self.job.id} ({self.job.task_identifier}) "
            f"attempt {self.job.attempts}/{self.job.max_attempts}>"
        )
