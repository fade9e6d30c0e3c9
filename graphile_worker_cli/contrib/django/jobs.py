"""Adding jobs from Django code, on the connection of the current transaction.

Inside ``transaction.atomic()`` the job commits or rolls back with the block; outside one,
Django autocommits, and so does the job. ``using=`` names a ``DATABASES`` alias (default:
``GRAPHILE_WORKER["database"]``, else ``"default"``). The connection is Django's own:
no pool of gw's, no thread, one round trip per job. From async views, wrap these in
``sync_to_async`` as any ORM call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections

from graphile_worker_cli import job, job_input, sync
from graphile_worker_cli.contrib.django import conf


def worker_utils() -> sync.SyncWorkerUtils:
    """A pool-less SyncWorkerUtils on the configured schema: pass ``conn=connection(...)``
    for the methods this module does not wrap."""
    return sync.SyncWorkerUtils(schema=conf.schema())


def connection(using: str | None = None) -> Any:
    """Django's connection for ``using`` (default: the configured alias)."""
    return connections[using or conf.database_alias()]


def add_job(
    identifier: job_input.TaskName,
    payload: Any = None,
    spec: job.JobSpec | None = None,
    *,
    using: str | None = None,
) -> job.Job:
    """Queue one job in the current transaction of ``using``'s connection."""
    return worker_utils().add_job(identifier, payload, spec, conn=connection(using))


def add_raw_job(
    identifier: str,
    payload: Any = None,
    spec: job.JobSpec | None = None,
    *,
    using: str | None = None,
) -> job.Job:
    return worker_utils().add_raw_job(identifier, payload, spec, conn=connection(using))


def add_batch_job(
    identifier: job_input.TaskName,
    items: Sequence[Any],
    spec: job.JobSpec | None = None,
    *,
    using: str | None = None,
) -> job.Job:
    return worker_utils().add_batch_job(identifier, items, spec, conn=connection(using))


def add_jobs(
    jobs: Sequence[job_input.JobInput],
    *,
    job_key_preserve_run_at: bool = False,
    using: str | None = None,
) -> list[job.Job]:
    return worker_utils().add_jobs(
        jobs, conn=connection(using), job_key_preserve_run_at=job_key_preserve_run_at
    )


def remove_job(job_key: str, *, using: str | None = None) -> job.Job | None:
    return worker_utils().remove_job(job_key, conn=connection(using))


def complete_jobs(job_ids: Iterable[int], *, using: str | None = None) -> list[job.Job]:
    return worker_utils().complete_jobs(job_ids, conn=connection(using))
