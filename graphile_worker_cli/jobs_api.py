"""``JobsApi``: the jobs methods of ``WorkerUtils`` as a Protocol.

``WorkerContext.utils`` is typed with it, so the task context (a low layer: tasks and hooks
import it) never imports ``worker_utils`` (a higher one: it imports hooks and recovery).
The worker hands each context its ``WorkerUtils``, which satisfies this Protocol
(``tests/unit/test_layers.py`` checks that it keeps doing so).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from graphile_worker_cli.job import Job, JobSpec, JobState, RawJobSpec
from graphile_worker_cli.job_input import (
    CleanupTask,
    JobCancellation,
    JobInput,
    RescheduleJobOptions,
    TaskName,
)


class JobsApi(Protocol):
    """Add, settle, inspect and clean up jobs (see ``WorkerUtils`` for each method)."""

    @property
    def schema(self) -> str: ...

    async def add_job(
        self,
        identifier: TaskName,
        payload: Any = None,
        spec: JobSpec | None = None,
        *,
        conn: object | None = None,
    ) -> Job: ...

    async def add_raw_job(
        self,
        identifier: str,
        payload: Any = None,
        spec: JobSpec | None = None,
        *,
        conn: object | None = None,
    ) -> Job: ...

    async def add_batch_job(
        self,
        identifier: TaskName,
        items: Sequence[Any],
        spec: JobSpec | None = None,
        *,
        conn: object | None = None,
    ) -> Job: ...

    async def add_jobs(
        self,
        jobs: Sequence[JobInput],
        *,
        conn: object | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[Job]: ...

    async def add_raw_jobs(
        self,
        jobs: Sequence[RawJobSpec],
        *,
        conn: object | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[Job]: ...

    async def remove_job(self, job_key: str, *, conn: object | None = None) -> Job | None: ...

    async def complete_jobs(
        self, job_ids: Iterable[int], *, conn: object | None = None
    ) -> list[Job]: ...

    async def permanently_fail_jobs(
        self, job_ids: Iterable[int], reason: str | None = None, *, conn: object | None = None
    ) -> list[Job]: ...

    async def cancel_jobs(
        self, job_ids: Iterable[int], *, conn: object | None = None
    ) -> list[JobCancellation]: ...

    async def reschedule_jobs(
        self,
        job_ids: Iterable[int],
        options: RescheduleJobOptions | None = None,
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        max_attempts: int | None = None,
        conn: object | None = None,
    ) -> list[Job]: ...

    async def force_unlock_workers(
        self, worker_ids: Iterable[str], *, conn: object | None = None
    ) -> None: ...

    async def cleanup(
        self,
        tasks: Iterable[CleanupTask | str] = ...,
        task_identifiers_to_keep: Iterable[str] = (),
        *,
        conn: object | None = None,
    ) -> dict[CleanupTask, int]: ...

    async def get_job(
        self, job_id: int | None = None, *, key: str | None = None, conn: object | None = None
    ) -> Job: ...

    async def list_jobs(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        state: JobState | str | None = None,
        limit: int | None = 100,
        conn: object | None = None,
    ) -> list[Job]: ...
