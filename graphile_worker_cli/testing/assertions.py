"""Check what was queued: by task, payload subset, queue and run_at."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from graphile_worker_cli.job import Job

_ANY: Any = object()


def payload_contains(payload: Any, expected: Any) -> bool:
    """True when ``payload`` holds ``expected``: a dict holds the keys of an expected dict
    (recursively), a list the same number of items each holding its expected item, and
    any other value is equal."""
    if isinstance(expected, Mapping):
        return isinstance(payload, Mapping) and all(
            key in payload and payload_contains(payload[key], value)
            for key, value in expected.items()
        )
    if isinstance(expected, list | tuple):
        return (
            isinstance(payload, list) and len(payload) == len(expected)
            and all(payload_contains(a, b) for a, b in zip(payload, expected, strict=True))
        )
    return bool(payload == expected)


def _run_at_matches(value: datetime, expected: datetime | tuple[datetime, datetime]) -> bool:
    if isinstance(expected, tuple):
        earliest, latest = expected
        return earliest <= value <= latest
    return value == expected


def matching_jobs(
    jobs: Iterable[Job],
    task: str | None = None,
    *,
    payload: Any = _ANY,
    queue: str | None = _ANY,
    run_at: datetime | tuple[datetime, datetime] | None = None,
) -> list[Job]:
    """The jobs of ``task`` whose payload contains ``payload``, in ``queue`` (None: no
    queue) and due at ``run_at`` (a datetime, or an inclusive (earliest, latest) window).
    Criteria left out match anything."""
    return [
        job for job in jobs
        if (task is None or job.task_identifier == task)
        and (payload is _ANY or payload_contains(job.payload, payload))
        and (queue is _ANY or job.queue_name == queue)
        and (run_at is None or _run_at_matches(job.run_at, run_at))
    ]


def assert_job_queued(
    jobs: Sequence[Job],
    task: str | None = None,
    *,
    payload: Any = _ANY,
    queue: str | None = _ANY,
    run_at: datetime | tuple[datetime, datetime] | None = None,
    count: int = 1,
) -> list[Job]:
    """The ``count`` jobs that match (see ``matching_jobs``); an AssertionError listing
    every queued job when the number of matches differs."""
    found = matching_jobs(jobs, task, payload=payload, queue=queue, run_at=run_at)
    if len(found) != count:
        wanted = [f"task={task!r}"] if task is not None else []
        if payload is not _ANY:
            wanted.append(f"payload containing {payload!r}")
        if queue is not _ANY:
            wanted.append(f"queue={queue!r}")
        if run_at is not None:
            wanted.append(f"run_at={run_at!r}")
        queued = "\n".join(
            f"  #{job.id} {job.task_identifier} queue={job.queue_name!r} "
            f"run_at={job.run_at.isoformat()} payload={job.payload!r}"
            for job in jobs
        ) or "  (no job)"
        raise AssertionError(
            f"expected {count} job(s) with {', '.join(wanted) or 'any spec'}, "
            f"found {len(found)}; queued:\n{queued}"
        )
    return found
