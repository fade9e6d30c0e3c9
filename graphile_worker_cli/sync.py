"""Synchronous jobs API for code with no event loop: Django and Flask views, scripts.

``SyncWorkerUtils`` wraps ``WorkerUtils``: each method hands the async method to one event
loop that runs in a background thread (shared by the whole process, started on first use)
and waits for its result, so the logic exists once. Calls are thread-safe.

Not supported: joining a transaction the caller holds (an asyncpg connection belongs to the
loop that opened it). Each call commits on its own; use ``WorkerUtils`` with ``conn=`` from
async code when the job must commit together with other writes.

Create a ``SyncWorkerUtils`` after a server forks its workers (e.g. in gunicorn's
``post_fork`` or lazily on first request), not before: pools do not survive ``fork``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from graphile_worker_cli import db, job, recovery, utils
from graphile_worker_cli.errors import GraphileWorkerError

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
    """Blocking twins of the ``WorkerUtils`` methods (same arguments, minus ``conn=``)."""

    def __init__(self, async_utils: utils.WorkerUtils, *, _runner: _LoopThread) -> None:
        self._utils = async_utils
        self._runner = _runner

    @classmethod
    def connect(
        cls, url: str | None = None, *, schema: str = db.DEFAULT_SCHEMA, max_size: int = 4
    ) -> SyncWorkerUtils:
        """Open a pool on the background loop; close it with ``close()`` or ``with``.
        Without ``url``, the PG* environment variables name the server."""
        runner = _loop_thread()
        async_utils = runner.call(utils.WorkerUtils.connect, url, schema=schema, max_size=max_size)
        return cls(async_utils, _runner=runner)

    @property
    def async_utils(self) -> utils.WorkerUtils:
        """The wrapped WorkerUtils (its pool lives on the background loop)."""
        return self._utils

    def _call(
        self, fn: Callable[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if self._runner.pid != os.getpid():
            raise GraphileWorkerError(
                "this SyncWorkerUtils was created before the process forked; "
                "create it in the child process"
            )
        return self._runner.call(fn, *args, **kwargs)

    def close(self) -> None:
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

    def add_job(
        self, identifier: utils.TaskName, payload: Any = None, spec: job.JobSpec | None = None
    ) -> job.Job:
        return self._call(self._utils.add_job, identifier, payload, spec)

    def add_raw_job(
        self, identifier: str, payload: Any = None, spec: job.JobSpec | None = None
    ) -> job.Job:
        return self._call(self._utils.add_raw_job, identifier, payload, spec)

    def add_batch_job(
        self, identifier: utils.TaskName, items: Sequence[Any], spec: job.JobSpec | None = None
    ) -> job.Job:
        return self._call(self._utils.add_batch_job, identifier, items, spec)

    def add_jobs(
        self, jobs: Sequence[utils.JobInput], *, job_key_preserve_run_at: bool = False
    ) -> list[job.Job]:
        return self._call(
            self._utils.add_jobs, jobs, job_key_preserve_run_at=job_key_preserve_run_at
        )

    def add_raw_jobs(
        self, jobs: Sequence[job.RawJobSpec], *, job_key_preserve_run_at: bool = False
    ) -> list[job.Job]:
        return self._call(
            self._utils.add_raw_jobs, jobs, job_key_preserve_run_at=job_key_preserve_run_at
        )

    def remove_job(self, job_key: str) -> job.Job | None:
        return self._call(self._utils.remove_job, job_key)

    def complete_jobs(self, job_ids: Iterable[int]) -> list[job.Job]:
        return self._call(self._utils.complete_jobs, job_ids)

    def permanently_fail_jobs(
        self, job_ids: Iterable[int], reason: str | None = None
    ) -> list[job.Job]:
        return self._call(self._utils.permanently_fail_jobs, job_ids, reason)

    def reschedule_jobs(
        self,
        job_ids: Iterable[int],
        options: utils.RescheduleJobOptions | None = None,
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        max_attempts: int | None = None,
    ) -> list[job.Job]:
        return self._call(
            self._utils.reschedule_jobs, job_ids, options,
            run_at=run_at, priority=priority, attempts=attempts, max_attempts=max_attempts,
        )

    def force_unlock_workers(self, worker_ids: Iterable[str]) -> None:
        self._call(self._utils.force_unlock_workers, worker_ids)

    def list_active_workers(
        self, *, threshold: float | None = None
    ) -> list[recovery.ActiveWorkerRow]:
        return self._call(self._utils.list_active_workers, threshold=threshold)

    def sweep_stale_workers(
        self, options: recovery.SweepStaleWorkersOptions | None = None
    ) -> recovery.SweepStaleWorkersResult:
        return self._call(self._utils.sweep_stale_workers, options)

    def cleanup(
        self,
        tasks: Iterable[utils.CleanupTask | str] = utils.DEFAULT_CLEANUP_TASKS,
        task_identifiers_to_keep: Iterable[str] = (),
    ) -> dict[utils.CleanupTask, int]:
        return self._call(self._utils.cleanup, tasks, task_identifiers_to_keep)

    def migrate(self) -> None:
        self._call(self._utils.migrate)

    def get_job(self, job_id: int) -> job.Job:
        return self._call(self._utils.get_job, job_id)

    def list_jobs(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        state: utils.JobState | str | None = None,
        limit: int | None = 100,
    ) -> list[job.Job]:
        return self._call(self._utils.list_jobs, task=task, queue=queue, state=state, limit=limit)
