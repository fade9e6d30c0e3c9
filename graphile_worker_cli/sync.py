"""Synchronous jobs API for code with no event loop: Django and Flask views, scripts.

Two ways to use ``SyncWorkerUtils``, both thread-safe:

- ``SyncWorkerUtils(schema=...)`` and ``conn=`` on every call: the caller's psycopg 3,
  psycopg2, Django or SQLAlchemy connection (or Session). The statement runs right there,
  synchronously, inside the caller's transaction: the job exists if and when the caller
  commits. No pool, no thread, no event loop; ``add_job`` is one round trip.
- ``SyncWorkerUtils.connect(url)``: calls without ``conn=`` run ``WorkerUtils`` on an event
  loop in a background thread (one per process, started on first use) and each commits on
  its own. ``conn=`` works there too, as above.

Either way each method's logic exists once, in ``operations`` (shared with ``WorkerUtils``):
this module only drives it. Hooks (``BeforeJobSchedule``, ``JobScheduled``) run on the pool
path only: they are async.

Create a pooled ``SyncWorkerUtils`` after a server forks its workers (e.g. in gunicorn's
``post_fork`` or lazily on first request), not before: pools do not survive ``fork``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, Self, TypeVar

from graphile_worker_cli import db, drivers, job, job_input, migrate, operations, recovery
from graphile_worker_cli.errors import BadInputError, GraphileWorkerError
from graphile_worker_cli.recovery import registry, sweep
from graphile_worker_cli.worker_utils import WorkerUtils, quick_add_job

if TYPE_CHECKING:
    from graphile_worker_cli import config

P = ParamSpec("P")
T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="gw-sync-loop", daemon=True
        )
        self._thread.start()

    def call(
        self, fn: Callable[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("SyncWorkerUtils was called from its own event loop thread")
        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop).result()


_shared_lock = threading.Lock()
_shared: _LoopThread | None = None


def _loop_thread() -> _LoopThread:
    """The process's loop thread (a new one in a child process after fork)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.pid != os.getpid():
            _shared = _LoopThread()
        return _shared


class SyncWorkerUtils:
    """Blocking twins of the ``WorkerUtils`` methods (same arguments). Without a pool
    (``SyncWorkerUtils(schema=...)``) every jobs method needs ``conn=``."""

    key_race_retries: ClassVar[int] = WorkerUtils.key_race_retries
    """How many times add_job tries again on ``conn=`` when a keyed job was locked mid-call."""

    def __init__(self, *, schema: str = db.DEFAULT_SCHEMA) -> None:
        db.escape_identifier(schema)  # rejects an empty or NUL-containing name now
        self._schema = schema
        self._utils: WorkerUtils | None = None
        self._runner: _LoopThread | None = None

    @classmethod
    def connect(
        cls, url: str | None = None, *, schema: str = db.DEFAULT_SCHEMA, max_size: int = 4
    ) -> SyncWorkerUtils:
        """Open a pool on the background loop; close it with ``close()`` or ``with``.
        Without ``url``, the PG* environment variables name the server."""
        runner = _loop_thread()
        async_utils = runner.call(WorkerUtils.connect, url, schema=schema, max_size=max_size)
        made = cls(schema=schema)
        made._utils, made._runner = async_utils, runner
        return made

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def async_utils(self) -> WorkerUtils:
        """The wrapped WorkerUtils (its pool lives on the background loop)."""
        return self._pooled()[0]

    def _pooled(self) -> tuple[WorkerUtils, _LoopThread]:
        if self._utils is None or self._runner is None:
            raise BadInputError(
                "this SyncWorkerUtils has no pool (it was made with SyncWorkerUtils(schema=...)):"
                " pass conn= your connection, or make it with SyncWorkerUtils.connect(url)"
            )
        if self._runner.pid != os.getpid():
            raise GraphileWorkerError(
                "this SyncWorkerUtils was created before the process forked; "
                "create it in the child process"
            )
        return self._utils, self._runner

    def _call(
        self, fn: Callable[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return self._pooled()[1].call(fn, *args, **kwargs)

    def _on(self, conn: object, operation: operations.Operation[T]) -> T:
        return drivers.run_sync(operation, drivers.sync_executor(conn, self._schema))

    def _callers_transaction(self, conn: object, method: str) -> drivers.SyncExecutor:
        executor = drivers.sync_executor(conn, self._schema)
        if not executor.in_transaction():
            raise drivers.no_transaction_error(conn, method)
        return executor

    def close(self) -> None:
        """Close the pool, if this object has one."""
        if self._utils is not None:
            self._call(self._utils.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- adding jobs

    def add_job(
        self,
        identifier: job_input.TaskName,
        payload: Any = None,
        spec: job.JobSpec | None = None,
        *,
        conn: object | None = None,
    ) -> job.Job:
        if conn is None:
            return self._call(self.async_utils.add_job, identifier, payload, spec)
        return self._add_job(conn, operations.prepare_job(identifier, payload, spec))

    def add_raw_job(
        self,
        identifier: str,
        payload: Any = None,
        spec: job.JobSpec | None = None,
        *,
        conn: object | None = None,
    ) -> job.Job:
        if conn is None:
            return self._call(self.async_utils.add_raw_job, identifier, payload, spec)
        return self._add_job(conn, operations.prepare_raw_job(identifier, payload, spec))

    def add_batch_job(
        self,
        identifier: job_input.TaskName,
        items: Sequence[Any],
        spec: job.JobSpec | None = None,
        *,
        conn: object | None = None,
    ) -> job.Job:
        if conn is None:
            return self._call(self.async_utils.add_batch_job, identifier, items, spec)
        return self._add_job(conn, operations.prepare_batch_job(identifier, items, spec))

    def _add_job(self, conn: object, prepared: operations.Prepared) -> job.Job:
        return self._on(conn, operations.add_job(
            self._schema, prepared, key_race_retries=self.key_race_retries
        ))

    def add_jobs(
        self,
        jobs: Sequence[job_input.JobInput],
        *,
        conn: object | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[job.Job]:
        if conn is None:
            return self._call(
                self.async_utils.add_jobs, jobs, job_key_preserve_run_at=job_key_preserve_run_at
            )
        return self._add_jobs(conn, operations.prepare_jobs(jobs, raw=False),
                              job_key_preserve_run_at)

    def add_raw_jobs(
        self,
        jobs: Sequence[job.RawJobSpec],
        *,
        conn: object | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[job.Job]:
        if conn is None:
            return self._call(
                self.async_utils.add_raw_jobs, jobs,
                job_key_preserve_run_at=job_key_preserve_run_at,
            )
        return self._add_jobs(conn, operations.prepare_jobs(jobs, raw=True),
                              job_key_preserve_run_at)

    def _add_jobs(
        self, conn: object, specs: list[operations.Prepared], job_key_preserve_run_at: bool
    ) -> list[job.Job]:
        return self._on(conn, operations.add_jobs(
            self._schema, specs, job_key_preserve_run_at=job_key_preserve_run_at,
            key_race_retries=self.key_race_retries, names=operations.Names(),
        ))

    # -- settling jobs

    def remove_job(self, job_key: str, *, conn: object | None = None) -> job.Job | None:
        if conn is None:
            return self._call(self.async_utils.remove_job, job_key)
        return self._on(conn, operations.remove_job(self._schema, job_key))

    def complete_jobs(
        self, job_ids: Iterable[int], *, conn: object | None = None
    ) -> list[job.Job]:
        if conn is None:
            return self._call(self.async_utils.complete_jobs, job_ids)
        return self._on(conn, operations.complete_jobs(self._schema, job_ids))

    def permanently_fail_jobs(
        self, job_ids: Iterable[int], reason: str | None = None, *, conn: object | None = None
    ) -> list[job.Job]:
        if conn is None:
            return self._call(self.async_utils.permanently_fail_jobs, job_ids, reason)
        return self._on(conn, operations.permanently_fail_jobs(self._schema, job_ids, reason))

    def cancel_jobs(
        self, job_ids: Iterable[int], *, conn: object | None = None
    ) -> list[job_input.JobCancellation]:
        if conn is None:
            return self._call(self.async_utils.cancel_jobs, job_ids)
        return self._on(conn, operations.cancel_jobs(self._schema, job_ids))

    def reschedule_jobs(
        self,
        job_ids: Iterable[int],
        options: job_input.RescheduleJobOptions | None = None,
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        max_attempts: int | None = None,
        conn: object | None = None,
    ) -> list[job.Job]:
        if conn is None:
            return self._call(
                self.async_utils.reschedule_jobs, job_ids, options,
                run_at=run_at, priority=priority, attempts=attempts, max_attempts=max_attempts,
            )
        return self._on(conn, operations.reschedule_jobs(
            self._schema, job_ids, options,
            run_at=run_at, priority=priority, attempts=attempts, max_attempts=max_attempts,
        ))

    def force_unlock_workers(
        self, worker_ids: Iterable[str], *, conn: object | None = None
    ) -> None:
        if conn is None:
            self._call(self.async_utils.force_unlock_workers, worker_ids)
            return
        self._on(conn, operations.force_unlock_workers(self._schema, worker_ids))

    def list_active_workers(
        self, *, threshold: float | None = None, conn: object | None = None
    ) -> list[recovery.ActiveWorkerRow]:
        if conn is None:
            return self._call(self.async_utils.list_active_workers, threshold=threshold)
        return self._on(conn, registry.list_active_workers_operation(
            self._schema, threshold=threshold
        ))

    def sweep_stale_workers(
        self,
        options: recovery.SweepStaleWorkersOptions | None = None,
        *,
        conn: object | None = None,
    ) -> recovery.SweepStaleWorkersResult:
        """With ``conn=``: inside the caller's open transaction (see WorkerUtils)."""
        if conn is None:
            return self._call(self.async_utils.sweep_stale_workers, options)
        executor = self._callers_transaction(conn, "sweep_stale_workers")

        async def run(operation: operations.Operation[T]) -> T:
            return drivers.run_sync(operation, executor)

        # No hooks here, so the coroutine never waits for anything: it runs to its end
        # on this thread, with no event loop.
        return _run_to_end(sweep.sweep_in_transaction(run, self._schema, options))

    # -- maintenance and reading

    def cleanup(
        self,
        tasks: Iterable[job_input.CleanupTask | str] = job_input.DEFAULT_CLEANUP_TASKS,
        task_identifiers_to_keep: Iterable[str] = (),
        *,
        conn: object | None = None,
    ) -> dict[job_input.CleanupTask, int]:
        if conn is None:
            return self._call(self.async_utils.cleanup, tasks, task_identifiers_to_keep)
        return self._on(conn, operations.cleanup(self._schema, tasks, task_identifiers_to_keep))

    def migrate(self, *, conn: object | None = None) -> None:
        """With ``conn=``: inside the caller's open transaction, under the migration lock;
        the schema exists only if the caller commits."""
        if conn is None:
            self._call(self.async_utils.migrate)
            return
        executor = self._callers_transaction(conn, "migrate")
        drivers.run_sync(migrate.migrate_in_transaction(self._schema), executor)

    def get_job(
        self, job_id: int | None = None, *, key: str | None = None, conn: object | None = None
    ) -> job.Job:
        if conn is None:
            return self._call(self.async_utils.get_job, job_id, key=key)
        return self._on(conn, operations.get_job(self._schema, job_id, key))

    def list_jobs(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        state: job.JobState | str | None = None,
        limit: int | None = 100,
        conn: object | None = None,
    ) -> list[job.Job]:
        if conn is None:
            return self._call(
                self.async_utils.list_jobs, task=task, queue=queue, state=state, limit=limit
            )
        return self._on(conn, operations.list_jobs(
            self._schema, task=task, queue=queue, state=state, limit=limit
        ))

    def list_history(
        self,
        *,
        task: str | None = None,
        since: datetime | timedelta | None = None,
        failed: bool = False,
        limit: int | None = 100,
        conn: object | None = None,
    ) -> list[job.JobHistoryEntry]:
        if conn is None:
            return self._call(
                self.async_utils.list_history, task=task, since=since, failed=failed,
                limit=limit,
            )
        return self._on(conn, operations.list_history(
            self._schema, task=task, since=since, failed=failed, limit=limit
        ))


def _run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (it awaits only coroutines that
    finish without waiting), run on the calling thread without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise GraphileWorkerError("a blocking call waited for an event loop it does not have")


def quick_add_job_sync(
    identifier: job_input.TaskName,
    payload: Any = None,
    spec: job.JobSpec | None = None,
    *,
    settings: config.Settings | None = None,
    config_file: Path | str | None = None,
    **overrides: Any,
) -> job.Job:
    """``quick_add_job`` for code with no event loop (same arguments): connect, add one job,
    disconnect, on the background loop ``SyncWorkerUtils.connect`` uses."""
    return _loop_thread().call(
        quick_add_job, identifier, payload, spec, settings=settings, config_file=config_file,
        **overrides,
    )
