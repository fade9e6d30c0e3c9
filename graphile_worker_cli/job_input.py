"""The arguments of the jobs API, checked: task names, job specs, ids, bulk items.

Pure functions and value types, no database and no driver: ``WorkerUtils``,
``SyncWorkerUtils`` and the driver-neutral operations in ``operations`` all check their
input here, so a bad value gets the same one-line ``BadInputError`` whichever API was used.
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from graphile_worker_cli import job, payloads
from graphile_worker_cli.errors import BadInputError


class Identified(Protocol):
    """A task handler (class or instance) that names its task: ``IDENTIFIER``."""

    IDENTIFIER: ClassVar[str]


TaskName = str | Identified | type[Identified]
"""A task identifier, or a handler (class or instance) whose IDENTIFIER is used."""

# (identifier, payload) or (identifier, payload, spec), or a RawJobSpec.
JobInput = tuple[TaskName, Any] | tuple[TaskName, Any, job.JobSpec | None] | job.RawJobSpec


class CleanupTask(enum.StrEnum):
    """What ``WorkerUtils.cleanup`` may delete."""

    GC_TASK_IDENTIFIERS = "GC_TASK_IDENTIFIERS"
    """Task identifiers no job refers to (except those the caller keeps)."""
    GC_JOB_QUEUES = "GC_JOB_QUEUES"
    """Unlocked queues no job refers to."""
    DELETE_PERMAFAILED_JOBS = "DELETE_PERMAFAILED_JOBS"
    """Unlocked jobs that are out of attempts."""


DEFAULT_CLEANUP_TASKS = (CleanupTask.GC_JOB_QUEUES, CleanupTask.GC_TASK_IDENTIFIERS)
"""What the reference cleans when no tasks are named."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RescheduleJobOptions:
    """Fields ``reschedule_jobs`` sets; ``None`` leaves a field as it is."""

    run_at: datetime | None = None
    priority: int | None = None
    attempts: int | None = None
    max_attempts: int | None = None


class CancelOutcome(enum.StrEnum):
    """What ``cancel_jobs`` did to one job."""

    CANCELLED = "cancelled"
    """It was not running: failed for good now, last_error ``cancelled``."""
    REQUESTED = "requested"
    """A gw worker runs it: that worker was told, fires the job's abort signal (reason
    ``cancelled``) and fails it for good as ``cancelled`` when the task returns or the
    abort window ends."""
    MARKED = "marked"
    """A worker gw cannot reach runs it (not in gw's worker registry: a reference Node.js
    worker, or gw without worker recovery). It cannot be interrupted; it is marked out of
    attempts so it is never run again, and whatever that worker does with it stands."""
    ALREADY_FAILED = "already_failed"
    """It was already failed for good (out of attempts): left as it is."""
    NOT_FOUND = "not_found"
    """No job has this id (it may have completed already)."""


@dataclass(frozen=True, slots=True)
class JobCancellation:
    """The outcome of cancelling one job."""

    job_id: int
    outcome: CancelOutcome
    worker_id: str | None = None
    """The worker running the job (``requested`` and ``marked``), else None."""


CANCELLED_ERROR = "cancelled"
"""The last_error of a cancelled job."""


# --- input checks -------------------------------------------------------------------------


def task_name(task: Any) -> str:
    """The identifier of a task given by name or by handler."""
    if isinstance(task, str):
        return job.check_identifier(task)
    identifier = getattr(task, "IDENTIFIER", None)
    if identifier is None:
        raise BadInputError(
            f"invalid task {task!r}: expected an identifier string or a task handler "
            "with an IDENTIFIER"
        )
    return job.check_identifier(identifier)


def check_ids(ids: Iterable[Any], what: str = "job id") -> list[int]:
    checked = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInputError(f"invalid {what} {value!r}: expected an integer")
        checked.append(value)
    return checked


def cleanup_task(value: CleanupTask | str) -> CleanupTask:
    """A CleanupTask from a member or its name (any case); BadInputError lists the valid."""
    if isinstance(value, CleanupTask):
        return value
    try:
        return CleanupTask(str(value).upper())
    except ValueError:
        valid = ", ".join(task.value for task in CleanupTask)
        raise BadInputError(f"unknown cleanup task {value!r}: expected one of {valid}") from None


def bulk_item(item: Any, *, raw: bool) -> tuple[str, str, job.JobSpec]:
    """(identifier, payload JSON, checked spec) from one add_jobs / add_raw_jobs item."""
    spec: job.JobSpec | None
    if isinstance(item, job.RawJobSpec):
        identifier, payload, spec = item.identifier, item.payload, item.spec
    elif not raw and isinstance(item, tuple) and len(item) in (2, 3):
        identifier, payload = item[0], item[1]
        spec = item[2] if len(item) == 3 else None
    else:
        expected = "RawJobSpec" if raw else "(identifier, payload[, spec]) or RawJobSpec"
        raise BadInputError(f"invalid job {item!r}: expected {expected}")
    text = payloads.raw_to_json(payload) if raw else payloads.to_json(payload)
    if spec is None or (type(spec) is job.JobSpec and spec == DEFAULT_SPEC):
        return task_name(identifier), text, DEFAULT_SPEC
    return task_name(identifier), text, job.check_spec(spec)


DEFAULT_SPEC = job.JobSpec()
"""A spec with every field unset (valid as it is, so not checked per item)."""

def bulk_preserve_run_at(specs: list[tuple[str, str, job.JobSpec]], preserve: bool) -> bool:
    modes = {spec.job_key_mode for _, _, spec in specs if spec.job_key is not None} - {None}
    if job.JobKeyMode.UNSAFE_DEDUPE in modes:
        raise BadInputError(
            "add_jobs does not support job key mode unsafe_dedupe; "
            "expected replace or preserve_run_at (or use add_job)"
        )
    if preserve:
        modes.add(job.JobKeyMode.PRESERVE_RUN_AT)
    if len(modes) > 1:
        raise BadInputError(
            "add_jobs applies one job key mode to the whole call, but both replace and "
            "preserve_run_at were asked for; expected one of them"
        )
    return modes == {job.JobKeyMode.PRESERVE_RUN_AT}


def specs_json(specs: list[tuple[str, str, job.JobSpec]]) -> str:
    """The job_spec array for add_jobs as JSON (payloads embedded as JSON, not strings)."""
    parts = []
    for identifier, payload_json, spec in specs:
        if spec is DEFAULT_SPEC:
            # Fields left out are null (json_populate_recordset starts from a null row).
            parts.append('{"payload":' + payload_json + _identifier_suffix(identifier))
            continue
        fields = {
            "identifier": identifier,
            "queue_name": spec.queue_name,
            "run_at": spec.run_at.isoformat() if spec.run_at is not None else None,
            "max_attempts": spec.max_attempts,
            "job_key": spec.job_key,
            "priority": spec.priority,
            "flags": list(spec.flags) if spec.flags is not None else None,
        }
        encoded = json.dumps(fields, separators=(",", ":"))
        parts.append('{"payload":' + payload_json + "," + encoded[1:])
    return "[" + ",".join(parts) + "]"


@functools.lru_cache(maxsize=1024)
def _identifier_suffix(identifier: str) -> str:
    return ',"identifier":' + json.dumps(identifier) + "}"

