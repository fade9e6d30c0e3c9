"""Adding jobs from Django code, on the connection of the current transaction.

Inside ``transaction.atomic()`` the job commits or rolls back with the block; outside one,
Django autocommits, and so does the job. ``using=`` names a ``DATABASES`` alias (default:
``GRAPHILE_WORKER["database"]``, else ``"default"``). The connection is Django's own:
no pool of gw's, no thread, one round trip per job. From async views, wrap these in
``sync_to_async`` as any ORM call.

``run_at`` follows Django's time zone settings. With ``USE_TZ = False`` a project's
datetimes are naive wall-clock times in ``TIME_ZONE`` (what ``timezone.now()`` returns):
a naive ``run_at`` is read in the current time zone (``TIME_ZONE`` unless activated
otherwise), as Django reads the values it stores. With ``USE_TZ = True`` a naive
``run_at`` is a mistake (``timezone.now()`` is aware) and is refused with
``BadInputError``, as gw refuses it everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from graphile_worker_cli import job, job_input, sync
from graphile_worker_cli.contrib.django import conf
from graphile_worker_cli.errors import BadInputError


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
    return worker_utils().add_job(identifier, payload, aware(spec), conn=connection(using))


def add_raw_job(
    identifier: str,
    payload: Any = None,
    spec: job.JobSpec | None = None,
    *,
    using: str | None = None,
) -> job.Job:
    return worker_utils().add_raw_job(identifier, payload, aware(spec), conn=connection(using))


def add_batch_job(
    identifier: job_input.TaskName,
    items: Sequence[Any],
    spec: job.JobSpec | None = None,
    *,
    using: str | None = None,
) -> job.Job:
    return worker_utils().add_batch_job(identifier, items, aware(spec), conn=connection(using))


def add_jobs(
    jobs: Sequence[job_input.JobInput],
    *,
    job_key_preserve_run_at: bool = False,
    using: str | None = None,
) -> list[job.Job]:
    return worker_utils().add_jobs(
        [_aware_item(item) for item in jobs], conn=connection(using),
        job_key_preserve_run_at=job_key_preserve_run_at,
    )


def remove_job(job_key: str, *, using: str | None = None) -> job.Job | None:
    return worker_utils().remove_job(job_key, conn=connection(using))


def complete_jobs(job_ids: Iterable[int], *, using: str | None = None) -> list[job.Job]:
    return worker_utils().complete_jobs(job_ids, conn=connection(using))


def aware(spec: job.JobSpec | None) -> job.JobSpec | None:
    """``spec`` with a naive ``run_at`` read in Django's current time zone when
    ``USE_TZ = False``; with ``USE_TZ = True`` a naive one is refused."""
    if spec is None or not isinstance(spec.run_at, datetime) or not timezone.is_naive(
        spec.run_at
    ):
        return spec
    if settings.USE_TZ:
        raise BadInputError(
            f"invalid run_at {spec.run_at.isoformat()}: a naive datetime while USE_TZ = True; "
            "expected an aware one (e.g. django.utils.timezone.now() + timedelta(...))"
        )
    run_at = timezone.make_aware(spec.run_at, timezone.get_current_timezone())
    return dataclasses.replace(spec, run_at=run_at)


def _aware_item(item: Any) -> Any:
    if isinstance(item, job.RawJobSpec):
        return dataclasses.replace(item, spec=aware(item.spec) or item.spec)
    if isinstance(item, tuple) and len(item) == 3 and isinstance(item[2], job.JobSpec):
        return (item[0], item[1], aware(item[2]))
    return item
