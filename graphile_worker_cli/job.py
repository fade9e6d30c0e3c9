"""Job records and the options for adding jobs: ``Job``, ``JobSpec``, ``JobKeyMode``,
``JobState``, and the checks a spec passes before it reaches the database (one
``BadInputError`` line per bad value, whichever API was used)."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from graphile_worker_cli.errors import BadInputError

MAX_IDENTIFIER_LENGTH = 128
MAX_JOB_KEY_LENGTH = 512
SMALLINT_MIN, SMALLINT_MAX = -32768, 32767


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


@dataclass(frozen=True, slots=True, kw_only=True)
class JobHistoryEntry:
    """A job a gw worker (or WorkerUtils, by hand) completed or failed for good, from the job
    history (``history_retention``). ``started_at`` is when a worker took the job for its
    last attempt (None when settled by hand); ``duration`` (finished - started) and ``wait``
    (started - run_at) are seconds, None without ``started_at``."""

    job_id: int
    task_identifier: str
    queue_name: str | None
    key: str | None
    attempts: int
    max_attempts: int
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime
    duration: float | None
    wait: float | None
    worker_id: str | None
    """None for a job settled by hand (WorkerUtils, the dashboard, ``gw jobs``)."""
    outcome: str
    """``completed`` or ``failed`` (out of attempts)."""
    last_error: str | None


def history_entry_from_record(record: Any) -> JobHistoryEntry:
    """A history entry from a row of ``queries.history.LIST_HISTORY``."""
    return JobHistoryEntry(**{name: record[name] for name in JobHistoryEntry.__slots__})


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


JOB_COLUMNS = (
    "id", "job_queue_id", "task_id", "payload", "priority", "run_at", "attempts",
    "max_attempts", "last_error", "created_at", "updated_at", "key", "locked_at",
    "locked_by", "revision", "flags",
)
"""The leading columns of ``_private_jobs``, in table order."""


_FIELD_SETTERS = tuple(getattr(Job, f.name).__set__ for f in dataclasses.fields(Job))
"""Each field's slot setter, in declaration order: ``jobs_from_rows`` fills a Job through
them, skipping the frozen dataclass ``__init__`` (which pays one ``object.__setattr__``
call per field): this runs for every fetched job."""


def jobs_from_rows(
    rows: Sequence[Any],
    task_names: Mapping[int, str],
    queue_names: Mapping[int, str] | None = None,
) -> list[Job]:
    """Jobs from rows holding every ``_private_jobs`` column: task identifiers looked up in
    ``task_names``, queue names in ``queue_names`` or, when it is None, taken from the rows'
    own ``queue_name`` column.

    The hot path of a fetch: every payload is decoded in one ``json.loads`` call, and rows
    whose columns start in table order are unpacked by position (a by-name lookup per field
    is a third of the cost per job)."""
    if not rows:
        return []
    texts = [row["payload"] for row in rows]
    if all(type(text) is str for text in texts):
        payloads = json.loads("[" + ",".join(texts) + "]")
    else:
        payloads = [decode_json(text) for text in texts]
    keys = tuple(rows[0].keys())
    in_order = keys[: len(JOB_COLUMNS)] == JOB_COLUMNS
    queue_at = keys.index("queue_name") if queue_names is None else -1
    jobs: list[Job] = []
    append = jobs.append
    new = object.__new__
    for row, payload in zip(rows, payloads, strict=True):
        (id_, queue_id, task_id, _, priority, run_at, attempts, max_attempts, last_error,
         created_at, updated_at, key, locked_at, locked_by, revision, flags,
         ) = row[:16] if in_order else [row[name] for name in JOB_COLUMNS]
        if queue_id is None:
            queue_name = None
        elif queue_names is None:
            queue_name = row[queue_at]
        else:
            queue_name = queue_names.get(queue_id)
        job = new(Job)
        for set_field, value in zip(_FIELD_SETTERS, (
            id_, task_names.get(task_id, ""), queue_name, payload, priority, run_at, attempts,
            max_attempts, last_error, created_at, updated_at, key, locked_at, locked_by,
            revision, None if flags is None else decode_json(flags), task_id, queue_id,
        ), strict=True):
            set_field(job, value)
        append(job)
    return jobs


class JobState(enum.StrEnum):
    """Where a job stands, as ``gw jobs list --state`` filters it."""

    READY = "ready"
    """Available and due: the next free worker may take it."""
    SCHEDULED = "scheduled"
    """Available, but its run_at is in the future."""
    LOCKED = "locked"
    """Taken by a worker (maybe a dead one, if the lock is over 4 hours old)."""
    FAILED = "failed"
    """Out of attempts: it will not run again unless rescheduled."""


def job_state(record: Job, now: datetime) -> JobState:
    """The state of a job at ``now`` (the same rules as the ``state`` filter)."""
    if record.locked_at is not None:
        return JobState.LOCKED
    if record.attempts >= record.max_attempts:
        return JobState.FAILED
    if record.run_at > now:
        return JobState.SCHEDULED
    return JobState.READY


def parse_job_state(value: JobState | str | None) -> JobState | None:
    if value is None or isinstance(value, JobState):
        return value
    try:
        return JobState(str(value).lower())
    except ValueError:
        valid = ", ".join(state.value for state in JobState)
        raise BadInputError(f"unknown job state {value!r}: expected one of {valid}") from None


# --- checks ---------------------------------------------------------------------------


def check_identifier(identifier: Any, what: str = "task identifier") -> str:
    if not isinstance(identifier, str) or not identifier:
        raise BadInputError(f"invalid {what} {identifier!r}: expected a non-empty string")
    if len(identifier) > MAX_IDENTIFIER_LENGTH:
        raise BadInputError(
            f"invalid {what} {identifier[:40]!r}...: at most {MAX_IDENTIFIER_LENGTH} characters"
        )
    return identifier


def check_int(value: Any, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInputError(f"invalid {name} {value!r}: expected an integer")
    if not low <= value <= high:
        raise BadInputError(f"invalid {name} {value}: expected an integer from {low} to {high}")
    return value


def check_time(value: Any, name: str = "run_at") -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise BadInputError(f"invalid {name} {value!r}: expected a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise BadInputError(
            f"invalid {name} {value.isoformat()}: expected a timezone-aware datetime "
            "(e.g. datetime.now(UTC))"
        )
    return value


def job_key_mode(value: Any) -> JobKeyMode | None:
    """A JobKeyMode from an enum member or its name; BadInputError lists the valid modes."""
    if value is None or isinstance(value, JobKeyMode):
        return value
    try:
        return JobKeyMode(str(value).lower())
    except ValueError:
        valid = ", ".join(mode.value for mode in JobKeyMode)
        raise BadInputError(f"unknown job key mode {value!r}: expected one of {valid}") from None


def check_spec(spec: JobSpec | None) -> JobSpec:
    spec = spec if spec is not None else JobSpec()
    if not isinstance(spec, JobSpec):
        raise BadInputError(f"invalid job spec {spec!r}: expected a JobSpec")
    if spec.queue_name is not None:
        check_identifier(spec.queue_name, "queue name")
    if spec.job_key is not None and (
        not isinstance(spec.job_key, str) or not 1 <= len(spec.job_key) <= MAX_JOB_KEY_LENGTH
    ):
        raise BadInputError(
            f"invalid job key {spec.job_key!r}: expected a string of 1 to "
            f"{MAX_JOB_KEY_LENGTH} characters"
        )
    check_int(spec.max_attempts, "max_attempts", 1, SMALLINT_MAX)
    check_int(spec.priority, "priority", SMALLINT_MIN, SMALLINT_MAX)
    check_time(spec.run_at)
    flags = spec.flags
    if flags is not None:
        if isinstance(flags, str) or not all(isinstance(flag, str) and flag for flag in flags):
            raise BadInputError(f"invalid flags {flags!r}: expected a list of non-empty strings")
        flags = tuple(flags)
    return replace(spec, job_key_mode=job_key_mode(spec.job_key_mode), flags=flags)
