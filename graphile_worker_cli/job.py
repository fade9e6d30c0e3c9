"""Job records and the options for adding jobs: ``Job``, ``JobSpec``, ``JobKeyMode``."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class JobKeyMode(enum.StrEnum):
    """What adding a job does when a job with the same key already exists."""

    REPLACE = "replace"
    """Debounce: the existing job is replaced, run_at included."""
    PRESERVE_RUN_AT = "preserve_run_at"
    """Throttle: the existing job is updated but keeps its run_at (unless it already failed)."""
    UNSAFE_DEDUPE = "unsafe_dedupe"
    """The existing job is left as it is, whatever its state."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """Optional parameters of one job; ``None`` leaves the database default."""

    queue_name: str | None = None
    run_at: datetime | None = None
    max_attempts: int | None = None
    job_key: str | None = None
    job_key_mode: JobKeyMode | None = None
    priority: int | None = None
    flags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class RawJobSpec:
    """One job for ``WorkerUtils.add_raw_jobs``: identifier, JSON payload and its options."""

    identifier: str
    payload: Any = field(default_factory=dict)
    spec: JobSpec = field(default_factory=JobSpec)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A row of ``_private_jobs``, with the task identifier and queue name resolved."""

    id: int
    task_identifier: str
    queue_name: str | None
    payload: Any
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    key: str | None
    locked_at: datetime | None
    locked_by: str | None
    revision: int
    flags: dict[str, bool] | None
    task_id: int | None = None
    job_queue_id: int | None = None

    @property
    def is_batch(self) -> bool:
        return isinstance(self.payload, list)


def decode_json(value: Any) -> Any:
    """asyncpg returns json/jsonb columns as text unless a codec is set; decode once here."""
    if isinstance(value, str):
        return json.loads(value)
    return value


def job_from_record(
    record: Any, *, task_identifier: str | None = None, queue_name: str | None = None
) -> Job:
    """Build a Job from a row that has ``_private_jobs`` columns (plus, optionally,
    ``task_identifier`` and ``queue_name`` columns)."""
    keys = set(record.keys())  # asyncpg returns an iterator
    return Job(
        id=record["id"],
        task_identifier=(
            record["task_identifier"] if "task_identifier" in keys else task_identifier or ""
        ),
        queue_name=record["queue_name"] if "queue_name" in keys else queue_name,
        payload=decode_json(record["payload"]) if "payload" in keys else None,
        priority=record["priority"],
        run_at=record["run_at"],
        attempts=record["attempts"],
        max_attempts=record["max_attempts"],
        last_error=record["last_error"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
        key=record["key"],
        locked_at=record["locked_at"],
        locked_by=record["locked_by"],
        revision=record["revision"],
        flags=decode_json(record["flags"]),
        task_id=record["task_id"] if "task_id" in keys else None,
        job_queue_id=record["job_queue_id"] if "job_queue_id" in keys else None,
    )
