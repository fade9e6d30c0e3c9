"""The jobs API written once, for every driver: each operation is a generator (sans-IO).

An operation yields the statements it needs (``Statement``: SQL with asyncpg-style ``$n``
placeholders, already rendered for the schema, and its arguments) and is sent each one's
rows back; what it returns is the method's result. It never touches a connection, so the
same code serves asyncpg, psycopg, psycopg2, Django and SQLAlchemy, async or not:
``drivers.run_async`` and ``drivers.run_sync`` drive it; a statement the server refuses
is thrown into the generator as gw's error (an operation may catch it, e.g. to roll back
to a savepoint). Input is checked when the
operation is built, before any connection is used. Hooks are not here (they are async):
``WorkerUtils`` runs them around the operation.

A row is read as ``row["column"]``, ``row.keys()`` and ``row[:n]`` (``asyncpg.Record``
and ``drivers.rows.Record`` both do).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from graphile_worker_cli import job, job_input, payloads
from graphile_worker_cli.errors import (
    BadInputError,
    DatabaseError,
    JobKeyRaceError,
    JobNotFoundError,
)
from graphile_worker_cli.queries import Query
from graphile_worker_cli.queries import history as history_queries
from graphile_worker_cli.queries import jobs as queries
from graphile_worker_cli.queries import recovery as recovery_queries

T = TypeVar("T")

Row = Any
"""One result row: ``row["column"]``, ``row.keys()``, ``row[:n]``."""

Prepared = tuple[str, str, job.JobSpec]
"""One job to add: task identifier, payload as JSON text, checked spec."""


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL with ``$1..$n`` placeholders (the schema already in it) and its arguments."""

    sql: str
    args: tuple[Any, ...] = ()
    script: bool = False
    """Several statements, no arguments, no rows (a migration file): sent as one simple
    query, which the extended protocol (prepared statements) cannot carry."""


Operation = Generator[Statement, list[Row], T]


@dataclass(slots=True)
class Names:
    """Task identifiers and queue names by id, seen on one database. Ids are never reused
    and these names never change, so they can be remembered."""

    tasks: dict[int, str] = field(default_factory=dict)
    queues: dict[int, str] = field(default_factory=dict)


# --- preparing jobs (checks only, no statement) ----------------------------------------------


def prepare_job(identifier: Any, payload: Any, spec: job.JobSpec | None) -> Prepared:
    """``add_job``'s arguments checked. ``identifier`` may be a task handler instance: its
    IDENTIFIER names the task and the instance is the payload."""
    if not isinstance(identifier, str | type) and payload is None:
        payload = identifier
    return _prepared(job_input.task_name(identifier), payloads.to_json(payload), spec)


def prepare_raw_job(identifier: str, payload: Any, spec: job.JobSpec | None) -> Prepared:
    """``add_raw_job``'s arguments checked (the payload is plain JSON values)."""
    return _prepared(identifier, payloads.raw_to_json(payload), spec)


def prepare_batch_job(identifier: Any, items: Sequence[Any], spec: job.JobSpec | None) -> Prepared:
    """``add_batch_job``'s arguments checked: the payload is a JSON array of ``items``."""
    if isinstance(items, str | bytes | dict) or not isinstance(items, Sequence):
        raise BadInputError(
            f"invalid batch items of type {type(items).__name__}: expected a list"
        )
    checked = job.check_spec(spec)
    if checked.job_key_mode is job.JobKeyMode.UNSAFE_DEDUPE:
        raise BadInputError(
            "a batch job cannot use job key mode unsafe_dedupe (its items would be "
            "dropped); expected replace or preserve_run_at"
        )
    return job_input.task_name(identifier), payloads.to_json(list(items)), checked


def _prepared(identifier: str, payload_json: str, spec: job.JobSpec | None) -> Prepared:
    return job.check_identifier(identifier), payload_json, job.check_spec(spec)


def prepare_jobs(items: Iterable[Any], *, raw: bool) -> list[Prepared]:
    """``add_jobs`` / ``add_raw_jobs`` items checked."""
    return [job_input.bulk_item(item, raw=raw) for item in items]


# --- adding ------------------------------------------------------------------------------------


def add_job(schema: str, prepared: Prepared, *, key_race_retries: int) -> Operation[job.Job]:
    """Add one job: one statement (two when unsafe_dedupe found another task's job).

    The schema's function returns a row of nulls when a keyed job was locked between its
    two steps (the reference's race): that is tried again, up to ``key_race_retries``."""
    identifier, payload_json, spec = prepared
    args = queries.add_job_args(identifier, payload_json, spec)
    statement = Statement(queries.ADD_JOB.sql(schema), args)
    tries = max(1, key_race_retries) if spec.job_key is not None else 1
    return _add_job(schema, statement, tries, identifier, spec)


def _add_job(
    schema: str, statement: Statement, tries: int, identifier: str, spec: job.JobSpec
) -> Operation[job.Job]:
    for _ in range(tries):
        rows = yield statement
        if rows and rows[0]["id"] is not None:
            row = rows[0]
            if spec.job_key_mode is job.JobKeyMode.UNSAFE_DEDUPE and row["revision"] > 0:
                # The job that was already there is returned untouched: it may belong to
                # another task or queue than the ones asked for.
                return (yield from _resolve(schema, [row], Names(), ()))[0]
            return job.job_from_record(
                row, task_identifier=identifier, queue_name=spec.queue_name
            )
    if spec.job_key is None:
        raise DatabaseError(f"add_job for task {identifier!r} returned no job")
    raise JobKeyRaceError(
        f"add_job for task {identifier!r} with job key {spec.job_key!r} returned no job "
        f"{tries} times: a worker kept locking that job at the same moment; retry later"
    )


def add_jobs(
    schema: str,
    specs: list[Prepared],
    *,
    job_key_preserve_run_at: bool,
    key_race_retries: int,
    names: Names,
) -> Operation[list[job.Job]]:
    """Add many jobs in one statement (plus one to look up names not known yet).

    ``names`` is read, and filled with what the lookup finds: pass a copy when the
    connection may belong to another database than the one the cache was filled from."""
    if not specs:
        return _nothing([])
    preserve = job_input.bulk_preserve_run_at(specs, job_key_preserve_run_at)
    seen: set[str] = set()
    for _, _, spec in specs:
        if spec.job_key is not None:
            if spec.job_key in seen:
                raise BadInputError(
                    f"job key {spec.job_key!r} appears more than once in one add_jobs call; "
                    "expected each job key at most once"
                )
            seen.add(spec.job_key)
    return _add_jobs(schema, specs, preserve, max(1, key_race_retries), names)


def _add_jobs(
    schema: str, specs: list[Prepared], preserve: bool, tries: int, names: Names
) -> Operation[list[job.Job]]:
    sql = queries.ADD_JOBS.sql(schema)
    pending = specs
    added: list[Row] = []
    for _ in range(tries):
        rows = yield Statement(sql, (job_input.specs_json(pending), preserve))
        added.extend(rows)
        returned = {row["key"] for row in rows}
        returned.add(None)
        # Only keyed jobs can be missing: locked by a worker between the two steps.
        pending = [s for s in pending if s[2].job_key not in returned]
        if not pending:
            return (yield from _resolve(schema, added, names, specs))
    missing = ", ".join(repr(spec.job_key) for _, _, spec in pending)
    raise JobKeyRaceError(
        f"add_jobs returned no job for job key(s) {missing} after "
        f"{tries} tries: a worker kept locking them; retry later"
    )


def _resolve(
    schema: str, rows: Sequence[Row], names: Names, specs: Sequence[Prepared]
) -> Operation[list[job.Job]]:
    """Jobs with task identifier and queue name. Every row added by ``specs`` has the
    task (and queue) of its spec, so when all specs name one task (and one queue) no
    lookup is needed; otherwise ids not in ``names`` are looked up in a statement of
    their own (it sees the tasks and queues that the statement before created)."""
    task_names, queue_names = dict(names.tasks), dict(names.queues)
    _infer(rows, specs, "task_id", 0, task_names)
    _infer(rows, specs, "job_queue_id", None, queue_names)
    task_ids = sorted({row["task_id"] for row in rows} - task_names.keys())
    queue_ids = sorted({row["job_queue_id"] for row in rows} - queue_names.keys() - {None})
    if task_ids or queue_ids:
        statement = Statement(queries.RESOLVE_NAMES.sql(schema), (task_ids, queue_ids))
        for found in (yield statement):
            found_names = names.tasks if found["kind"] == "task" else names.queues
            found_names[found["id"]] = found["name"]
            (task_names if found["kind"] == "task" else queue_names)[found["id"]] = found["name"]
    return job.jobs_from_rows(rows, task_names, queue_names)


def _infer(
    rows: Sequence[Row], specs: Sequence[Prepared], column: str, at: int | None,
    known: dict[int, str],
) -> None:
    """When every spec names the same task (``at`` 0) or queue (``at`` None), every row
    has its id: remember it for this call."""
    if not specs or not rows:
        return
    values = {spec[0] if at == 0 else spec[2].queue_name for spec in specs}
    ids = {row[column] for row in rows}
    if len(values) == 1 and len(ids) == 1:
        (value,), (found,) = values, ids
        if value is not None and found is not None:
            known[found] = value


def _nothing(value: T) -> Operation[T]:
    return value
    yield  # a generator that runs no statement


# --- settling ----------------------------------------------------------------------------------


def remove_job(schema: str, job_key: str) -> Operation[job.Job | None]:
    """Delete the job with this key (a locked job loses its key instead)."""
    if not isinstance(job_key, str) or not job_key:
        raise BadInputError(f"invalid job key {job_key!r}: expected a non-empty string")
    return _maybe_job(Statement(queries.REMOVE_JOB.sql(schema), (job_key,)))


def _maybe_job(statement: Statement) -> Operation[job.Job | None]:
    rows = yield statement
    found = [row for row in rows if row["id"] is not None]
    return job.job_from_record(found[0]) if found else None


def complete_jobs(schema: str, job_ids: Iterable[int]) -> Operation[list[job.Job]]:
    ids = job_input.check_ids(job_ids)
    return _jobs_by_hand(
        schema, queries.COMPLETE_JOBS, queries.COMPLETE_JOBS_RECORDING_HISTORY, (ids,)
    )


def permanently_fail_jobs(
    schema: str, job_ids: Iterable[int], reason: str | None
) -> Operation[list[job.Job]]:
    ids = job_input.check_ids(job_ids)
    if reason is not None and not isinstance(reason, str):
        raise BadInputError(f"invalid failure reason {reason!r}: expected a string")
    if reason is None:
        return _jobs_by_hand(
            schema, queries.PERMANENTLY_FAIL_JOBS_DEFAULT_REASON,
            queries.PERMANENTLY_FAIL_JOBS_DEFAULT_REASON_RECORDING_HISTORY, (ids,),
        )
    return _jobs_by_hand(
        schema, queries.PERMANENTLY_FAIL_JOBS,
        queries.PERMANENTLY_FAIL_JOBS_RECORDING_HISTORY, (ids, reason),
    )


def _settled_by_hand(
    schema: str, plain: Query, recording: Query, args: tuple[Any, ...]
) -> Operation[list[Row]]:
    """Runs ``recording`` (which also writes the job history while a worker with history on
    has said so lately) when the schema has gw's history state, else ``plain``."""
    (row,) = yield Statement(queries.HISTORY_STATE_PRESENT.sql(schema), (schema,))
    rows: list[Row] = yield Statement((recording if row["present"] else plain).sql(schema), args)
    return rows


def _jobs_by_hand(
    schema: str, plain: Query, recording: Query, args: tuple[Any, ...]
) -> Operation[list[job.Job]]:
    rows = yield from _settled_by_hand(schema, plain, recording, args)
    return [job.job_from_record(row) for row in rows]


def cancel_jobs(schema: str, job_ids: Iterable[int]) -> Operation[list[job_input.JobCancellation]]:
    """Cancel jobs, one outcome per distinct id in the order given (see
    ``job_input.CancelOutcome``): a job not running is failed for good as ``cancelled``;
    a running one is asked to stop (a gw worker) or marked (any other worker)."""
    ids = list(dict.fromkeys(job_input.check_ids(job_ids)))
    if not ids:
        return _nothing([])
    return _cancellations(schema, (ids, job_input.CANCELLED_ERROR))


def _cancellations(
    schema: str, args: tuple[Any, ...]
) -> Operation[list[job_input.JobCancellation]]:
    rows = yield from _settled_by_hand(
        schema, queries.CANCEL_JOBS, queries.CANCEL_JOBS_RECORDING_HISTORY, args
    )
    return [
        job_input.JobCancellation(
            int(row["job_id"]), job_input.CancelOutcome(row["outcome"]), row["locked_by"]
        )
        for row in rows
    ]


def reschedule_jobs(
    schema: str,
    job_ids: Iterable[int],
    options: job_input.RescheduleJobOptions | None,
    *,
    run_at: datetime | None,
    priority: int | None,
    attempts: int | None,
    max_attempts: int | None,
) -> Operation[list[job.Job]]:
    """Keyword arguments override the fields of ``options``; None leaves a field as is."""
    ids = job_input.check_ids(job_ids)
    base = options or job_input.RescheduleJobOptions()
    args = (
        ids,
        job.check_time(run_at if run_at is not None else base.run_at),
        job.check_int(
            priority if priority is not None else base.priority,
            "priority", job.SMALLINT_MIN, job.SMALLINT_MAX,
        ),
        job.check_int(
            attempts if attempts is not None else base.attempts,
            "attempts", 0, job.SMALLINT_MAX,
        ),
        job.check_int(
            max_attempts if max_attempts is not None else base.max_attempts,
            "max_attempts", 1, job.SMALLINT_MAX,
        ),
    )
    return _jobs(Statement(queries.RESCHEDULE_JOBS.sql(schema), args))


def force_unlock_workers(schema: str, worker_ids: Iterable[str]) -> Operation[None]:
    ids = list(worker_ids)
    if isinstance(worker_ids, str) or not all(isinstance(w, str) for w in ids):
        raise BadInputError(f"invalid worker ids {worker_ids!r}: expected a list of strings")
    return _no_result(Statement(recovery_queries.FORCE_UNLOCK_WORKERS.sql(schema), (ids,)))


def _no_result(statement: Statement) -> Operation[None]:
    yield statement


def _jobs(statement: Statement) -> Operation[list[job.Job]]:
    rows = yield statement
    return [job.job_from_record(row) for row in rows]


# --- maintenance and reading ---------------------------------------------------------------


def cleanup(
    schema: str,
    tasks: Iterable[job_input.CleanupTask | str],
    task_identifiers_to_keep: Iterable[str],
) -> Operation[dict[job_input.CleanupTask, int]]:
    """Delete what the named cleanup tasks cover; the rows deleted per task. Permanently
    failed jobs go first, so the tasks and queues they used can go too."""
    chosen = {job_input.cleanup_task(task) for task in tasks}
    keep = [job.check_identifier(name, "task identifier to keep")
            for name in task_identifiers_to_keep]
    steps = [
        (task, Statement(template.sql(schema), args))
        for task, template, args in (
            (job_input.CleanupTask.DELETE_PERMAFAILED_JOBS, queries.DELETE_PERMAFAILED_JOBS, ()),
            (job_input.CleanupTask.GC_TASK_IDENTIFIERS, queries.GC_TASK_IDENTIFIERS, (keep,)),
            (job_input.CleanupTask.GC_JOB_QUEUES, queries.GC_JOB_QUEUES, ()),
        )
        if task in chosen
    ]
    return _cleanup(steps)


def _cleanup(
    steps: list[tuple[job_input.CleanupTask, Statement]],
) -> Operation[dict[job_input.CleanupTask, int]]:
    deleted: dict[job_input.CleanupTask, int] = {}
    for task, statement in steps:
        (row,) = yield statement
        deleted[task] = int(row["deleted"])
    return deleted


def get_job(schema: str, job_id: int | None = None, key: str | None = None) -> Operation[job.Job]:
    """The job with this id, or (``key``) with this job key."""
    if (job_id is None) == (key is None):
        raise BadInputError("get_job takes a job id or a key (key=...), exactly one of them")
    if key is not None:
        if not isinstance(key, str) or not key:
            raise BadInputError(f"invalid job key {key!r}: expected a non-empty string")
        statement = Statement(queries.GET_JOB_BY_KEY.sql(schema), (key,))
        return _one_job(statement, f"no job with key {key!r}")
    (checked,) = job_input.check_ids([job_id])
    return _one_job(Statement(queries.GET_JOB.sql(schema), (checked,)), f"no job with id {checked}")


def _one_job(statement: Statement, not_found: str) -> Operation[job.Job]:
    rows = yield statement
    if not rows:
        raise JobNotFoundError(not_found)
    return job.job_from_record(rows[0])


def list_jobs(
    schema: str,
    *,
    task: str | None,
    queue: str | None,
    state: job.JobState | str | None,
    limit: int | None,
) -> Operation[list[job.Job]]:
    """Jobs in id order, filtered by task identifier, queue name and state."""
    checked_state = job.parse_job_state(state)
    job.check_int(limit, "limit", 0, 2**62)
    args = (task, queue, checked_state.value if checked_state else None, limit)
    return _jobs(Statement(queries.LIST_JOBS.sql(schema), args))


def list_history(
    schema: str,
    *,
    task: str | None,
    since: datetime | timedelta | None,
    failed: bool,
    limit: int | None,
) -> Operation[list[job.JobHistoryEntry]]:
    """Job history, newest first: jobs finished since ``since`` (a time, or how long ago),
    only of ``task``, only the failed ones."""
    if isinstance(since, timedelta):
        since = datetime.now(UTC) - since
    checked_since = job.check_time(since, "since")
    job.check_int(limit, "limit", 0, 2**62)
    if task is not None and not isinstance(task, str):
        raise BadInputError(f"invalid task {task!r}: expected a task identifier")
    args = (task, checked_since, bool(failed), limit)
    return _history(Statement(history_queries.LIST_HISTORY.sql(schema), args))


def _history(statement: Statement) -> Operation[list[job.JobHistoryEntry]]:
    rows = yield statement
    return [job.history_entry_from_record(row) for row in rows]
