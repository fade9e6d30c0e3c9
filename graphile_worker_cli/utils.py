"""WorkerUtils: add, settle, inspect and clean up jobs without running a worker.

Every method calls the schema's own SQL functions (the ones Node and SQL clients call), so
the queue behaves the same whoever writes to it. Every method takes ``conn=``: given an
asyncpg connection, the statement runs on it, inside whatever transaction the caller has
open (a job queued atomically with the caller's writes); otherwise it runs on the pool.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import functools
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

import asyncpg

from graphile_worker_cli import conninfo, db, hooks, job, migrate, payloads, recovery
from graphile_worker_cli.errors import (
    BadInputError,
    ConfigError,
    DatabaseError,
    GraphileWorkerError,
    JobKeyRaceError,
    JobNotFoundError,
    JobScheduleSkippedError,
)
from graphile_worker_cli.queries import utils as queries

MAX_IDENTIFIER_LENGTH = 128
MAX_JOB_KEY_LENGTH = 512
SMALLINT_MIN, SMALLINT_MAX = -32768, 32767

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


def job_state(record: job.Job, now: datetime) -> JobState:
    """The state of a job at ``now`` (the same rules as the ``state`` filter)."""
    if record.locked_at is not None:
        return JobState.LOCKED
    if record.attempts >= record.max_attempts:
        return JobState.FAILED
    if record.run_at > now:
        return JobState.SCHEDULED
    return JobState.READY


@dataclass(frozen=True, slots=True, kw_only=True)
class RescheduleJobOptions:
    """Fields ``reschedule_jobs`` sets; ``None`` leaves a field as it is."""

    run_at: datetime | None = None
    priority: int | None = None
    attempts: int | None = None
    max_attempts: int | None = None


# --- input checks -------------------------------------------------------------------------


def _task_name(task: Any) -> str:
    """The identifier of a task given by name or by handler."""
    if isinstance(task, str):
        return _check_identifier(task)
    identifier = getattr(task, "IDENTIFIER", None)
    if identifier is None:
        raise BadInputError(
            f"invalid task {task!r}: expected an identifier string or a task handler "
            "with an IDENTIFIER"
        )
    return _check_identifier(identifier)


def _check_identifier(identifier: Any, what: str = "task identifier") -> str:
    if not isinstance(identifier, str) or not identifier:
        raise BadInputError(f"invalid {what} {identifier!r}: expected a non-empty string")
    if len(identifier) > MAX_IDENTIFIER_LENGTH:
        raise BadInputError(
            f"invalid {what} {identifier[:40]!r}...: at most {MAX_IDENTIFIER_LENGTH} characters"
        )
    return identifier


def _check_int(value: Any, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInputError(f"invalid {name} {value!r}: expected an integer")
    if not low <= value <= high:
        raise BadInputError(f"invalid {name} {value}: expected an integer from {low} to {high}")
    return value


def _check_time(value: Any, name: str = "run_at") -> datetime | None:
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


def job_key_mode(value: Any) -> job.JobKeyMode | None:
    """A JobKeyMode from an enum member or its name; BadInputError lists the valid modes."""
    if value is None or isinstance(value, job.JobKeyMode):
        return value
    try:
        return job.JobKeyMode(str(value).lower())
    except ValueError:
        valid = ", ".join(mode.value for mode in job.JobKeyMode)
        raise BadInputError(f"unknown job key mode {value!r}: expected one of {valid}") from None


def _check_spec(spec: job.JobSpec | None) -> job.JobSpec:
    spec = spec if spec is not None else job.JobSpec()
    if not isinstance(spec, job.JobSpec):
        raise BadInputError(f"invalid job spec {spec!r}: expected a JobSpec")
    if spec.queue_name is not None:
        _check_identifier(spec.queue_name, "queue name")
    if spec.job_key is not None and (
        not isinstance(spec.job_key, str) or not 1 <= len(spec.job_key) <= MAX_JOB_KEY_LENGTH
    ):
        raise BadInputError(
            f"invalid job key {spec.job_key!r}: expected a string of 1 to "
            f"{MAX_JOB_KEY_LENGTH} characters"
        )
    _check_int(spec.max_attempts, "max_attempts", 1, SMALLINT_MAX)
    _check_int(spec.priority, "priority", SMALLINT_MIN, SMALLINT_MAX)
    _check_time(spec.run_at)
    flags = spec.flags
    if flags is not None:
        if isinstance(flags, str) or not all(isinstance(flag, str) and flag for flag in flags):
            raise BadInputError(f"invalid flags {flags!r}: expected a list of non-empty strings")
        flags = tuple(flags)
    return replace(spec, job_key_mode=job_key_mode(spec.job_key_mode), flags=flags)


def _check_ids(ids: Iterable[Any], what: str = "job id") -> list[int]:
    checked = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInputError(f"invalid {what} {value!r}: expected an integer")
        checked.append(value)
    return checked


# --- database errors ----------------------------------------------------------------------

_NOT_MIGRATED = {"3F000", "42P01", "42883", "42704"}  # no schema / table / function / type


@contextmanager
def database_errors(schema: str) -> Iterator[None]:
    """Translate driver errors raised inside the block into gw's errors, each one line
    (``BadInputError`` for values the database refused, ``DatabaseError`` otherwise)."""
    try:
        yield
    except asyncpg.PostgresError as error:
        raise _translate(error, schema) from error
    except (asyncpg.InterfaceError, OSError) as error:
        raise DatabaseError(f"database connection failed: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _translate(error: asyncpg.PostgresError, schema: str) -> GraphileWorkerError:
    code = getattr(error, "sqlstate", None)
    if code == "GWBKM":
        return job_key_mode_error()
    if code in _NOT_MIGRATED:
        return DatabaseError(
            f"the Graphile Worker schema {schema!r} is missing or not fully migrated "
            f"({_first_line(error)}); run `gw migrate`"
        )
    if code is not None and (code.startswith("22") or code.startswith("23")):
        # data exceptions and integrity violations come from values the caller gave
        return BadInputError(f"the database rejected a value: {_first_line(error)}")
    return DatabaseError(f"database error: {_first_line(error)}")


def job_key_mode_error() -> BadInputError:
    valid = ", ".join(mode.value for mode in job.JobKeyMode)
    return BadInputError(f"unknown job key mode: expected one of {valid}")


# --- the API ------------------------------------------------------------------------------


class WorkerUtils:
    """Scheduling and maintenance operations on one Graphile Worker schema."""

    key_race_retries: ClassVar[int] = 5
    """How many times add_job tries again when a keyed job was locked mid-call."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        schema: str = db.DEFAULT_SCHEMA,
        hooks: hooks.HookRegistry | None = None,
    ) -> None:
        db.escape_identifier(schema)  # rejects an empty or NUL-containing name now
        self._pool = pool
        self._schema = schema
        self._owns_pool = False
        self._releasing: set[asyncio.Task[None]] = set()
        self.hooks = hooks
        """BeforeJobSchedule / JobScheduled hooks run on every add path (None: no hooks)."""
        self._task_names: dict[int, str] = {}
        self._queue_names: dict[int, str] = {}
        """Task identifiers and queue names by id, seen on this pool's database. Ids are
        never reused and these names never change, so they can be remembered."""

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        schema: str = db.DEFAULT_SCHEMA,
        max_size: int = 10,
        hooks: hooks.HookRegistry | None = None,
    ) -> WorkerUtils:
        """A WorkerUtils with a pool of its own, closed by ``close()``. Without ``url``, the
        PG* environment variables name the server (as in the reference)."""
        url = url or conninfo.url_from_environment()
        if url is None:
            raise ConfigError(
                "no database: pass a URL or set PG* environment variables (PGHOST, PGDATABASE...)"
            )
        pool = await db.create_pool(url, min_size=1, max_size=max_size)
        utils = cls(pool, schema=schema, hooks=hooks)
        utils._owns_pool = True
        return utils

    async def close(self) -> None:
        """Close the pool if this object opened it (a pool passed in is the caller's)."""
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        if self._owns_pool:
            await self._pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    # -- plumbing

    @asynccontextmanager
    async def _connection(
        self, conn: asyncpg.Connection | None
    ) -> AsyncIterator[asyncpg.Connection]:
        if conn is not None:
            yield conn
            return
        with database_errors(self._schema):
            acquired = await self._pool.acquire()
        try:
            yield acquired
        finally:
            db.release_soon(self._pool, acquired, self._releasing)  # close() waits for it

    async def _fetch(
        self, conn: asyncpg.Connection, template: str, *args: Any
    ) -> list[asyncpg.Record]:
        with database_errors(self._schema):
            rows: list[asyncpg.Record] = await conn.fetch(
                queries.render(template, self._schema), *args
            )
        return rows

    async def _resolve(
        self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], *, pooled: bool = False
    ) -> list[job.Job]:
        """Jobs with task identifier and queue name looked up by id (a separate statement
        sees tasks and queues that the previous statement created)."""
        # Only names not seen before cost a round trip; a caller's connection may be in
        # a transaction that rolls back, so only the pool's answers are remembered.
        task_names = self._task_names if pooled else dict(self._task_names)
        queue_names = self._queue_names if pooled else dict(self._queue_names)
        task_ids = sorted({row["task_id"] for row in rows} - task_names.keys())
        queue_ids = sorted({row["job_queue_id"] for row in rows} - queue_names.keys() - {None})
        if task_ids or queue_ids:
            for found in await self._fetch(conn, queries.RESOLVE_NAMES, task_ids, queue_ids):
                names = task_names if found["kind"] == "task" else queue_names
                names[found["id"]] = found["name"]
        return job.jobs_from_rows(rows, task_names, queue_names)

    # -- adding jobs

    async def add_job(
        self,
        identifier: TaskName,
        payload: Any = None,
        spec: job.JobSpec | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> job.Job:
        """Queue one job. ``payload``: a pydantic model, a dataclass, or JSON-like values.

        ``identifier`` may also be a task handler instance (a ``TaskHandler`` model): its
        ``IDENTIFIER`` names the task and the instance is the payload, as in
        ``await utils.add_job(SendEmail(to="a@example.com"))``."""
        if not isinstance(identifier, str | type) and payload is None:
            payload = identifier
        return await self._add_job(_task_name(identifier), payloads.to_json(payload), spec, conn)

    async def add_raw_job(
        self,
        identifier: str,
        payload: Any = None,
        spec: job.JobSpec | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> job.Job:
        """Queue one job whose payload is already plain JSON values (dict, list, str...)."""
        return await self._add_job(identifier, payloads.raw_to_json(payload), spec, conn)

    async def add_batch_job(
        self,
        identifier: TaskName,
        items: Sequence[Any],
        spec: job.JobSpec | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> job.Job:
        """Queue a batch job: its payload is a JSON array of ``items``. With a job key (in
        replace or preserve_run_at mode) the items of a job still waiting are appended to,
        so a batch accumulates until it runs."""
        if isinstance(items, str | bytes | dict) or not isinstance(items, Sequence):
            raise BadInputError(
                f"invalid batch items of type {type(items).__name__}: expected a list"
            )
        checked = _check_spec(spec)
        if checked.job_key_mode is job.JobKeyMode.UNSAFE_DEDUPE:
            raise BadInputError(
                "a batch job cannot use job key mode unsafe_dedupe (its items would be "
                "dropped); expected replace or preserve_run_at"
            )
        return await self._add_job(
            _task_name(identifier), payloads.to_json(list(items)), checked, conn
        )

    async def _add_job(
        self,
        identifier: str,
        payload_json: str,
        spec: job.JobSpec | None,
        conn: asyncpg.Connection | None,
    ) -> job.Job:
        _check_identifier(identifier)
        spec = _check_spec(spec)
        registry = self.hooks
        started = 0
        if registry is not None and registry.active:
            started = time.time_ns()
            if hooks.BeforeJobSchedule in registry.events:
                payload_json = await _scheduled_payload(registry, identifier, payload_json, spec)
        args = (
            identifier,
            payload_json,
            spec.queue_name,
            spec.run_at,
            spec.max_attempts,
            spec.job_key,
            spec.priority,
            list(spec.flags) if spec.flags is not None else None,
            spec.job_key_mode.value if spec.job_key_mode is not None else None,
        )
        tries = max(1, self.key_race_retries) if spec.job_key is not None else 1
        async with self._connection(conn) as c:
            for _ in range(tries):
                rows = await self._fetch(c, queries.ADD_JOB, *args)
                if rows and rows[0]["id"] is not None:
                    added = await self._added_job(c, rows[0], identifier, spec)
                    if started:
                        await self._scheduled(c, [added], started)
                    return added
        if spec.job_key is None:
            raise DatabaseError(f"add_job for task {identifier!r} returned no job")
        raise JobKeyRaceError(
            f"add_job for task {identifier!r} with job key {spec.job_key!r} returned no job "
            f"{tries} times: a worker kept locking that job at the same moment; retry later"
        )

    async def _scheduled(
        self, conn: asyncpg.Connection, added: list[job.Job], started_ns: int
    ) -> None:
        registry = self.hooks
        if registry is None or hooks.JobScheduled not in registry.events:
            return
        for item in added:
            await registry.emit(
                hooks.JobScheduled,
                hooks.JobScheduledContext(item, conn, self._schema, started_ns),
            )

    async def _added_job(
        self, conn: asyncpg.Connection, row: asyncpg.Record, identifier: str, spec: job.JobSpec
    ) -> job.Job:
        if spec.job_key_mode is job.JobKeyMode.UNSAFE_DEDUPE and row["revision"] > 0:
            # The job that was already there is returned untouched: it may belong to
            # another task or queue than the ones asked for.
            return (await self._resolve(conn, [row]))[0]
        return job.job_from_record(row, task_identifier=identifier, queue_name=spec.queue_name)

    async def add_jobs(
        self,
        jobs: Sequence[JobInput],
        *,
        conn: asyncpg.Connection | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[job.Job]:
        """Queue many jobs in one statement. Items: ``(identifier, payload)``,
        ``(identifier, payload, spec)`` or ``RawJobSpec``; payloads may be models.

        Job keys behave as in replace mode, or as preserve_run_at when
        ``job_key_preserve_run_at`` is set (or every spec asks for it); unsafe_dedupe is
        not available in bulk."""
        specs = [_bulk_item(item, raw=False) for item in jobs]
        return await self._add_jobs(specs, conn, job_key_preserve_run_at)

    async def add_raw_jobs(
        self,
        jobs: Sequence[job.RawJobSpec],
        *,
        conn: asyncpg.Connection | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[job.Job]:
        """``add_jobs`` for payloads that are already plain JSON values."""
        specs = [_bulk_item(item, raw=True) for item in jobs]
        return await self._add_jobs(specs, conn, job_key_preserve_run_at)

    async def _add_jobs(
        self,
        specs: list[tuple[str, str, job.JobSpec]],
        conn: asyncpg.Connection | None,
        job_key_preserve_run_at: bool,
    ) -> list[job.Job]:
        registry = self.hooks
        started = 0
        if registry is not None and registry.active:
            started = time.time_ns()
            if hooks.BeforeJobSchedule in registry.events:
                specs = await _scheduled_specs(registry, specs)
        if not specs:
            return []
        preserve = _bulk_preserve_run_at(specs, job_key_preserve_run_at)
        keys = collections.Counter(spec.job_key for _, _, spec in specs if spec.job_key is not None)
        duplicates = sorted(key for key, count in keys.items() if count > 1)
        if duplicates:
            raise BadInputError(
                f"job key {duplicates[0]!r} appears more than once in one add_jobs call; "
                "expected each job key at most once"
            )
        pending = specs
        added: list[asyncpg.Record] = []
        async with self._connection(conn) as c:
            for _ in range(max(1, self.key_race_retries)):
                rows = await self._fetch(c, queries.ADD_JOBS, _specs_json(pending), preserve)
                added.extend(rows)
                returned = {row["key"] for row in rows}
                returned.add(None)
                # Only keyed jobs can be missing: locked by a worker between the two steps.
                pending = [s for s in pending if s[2].job_key not in returned]
                if not pending:
                    resolved = await self._resolve(c, added, pooled=conn is None)
                    if started:
                        await self._scheduled(c, resolved, started)
                    return resolved
        missing = ", ".join(repr(spec.job_key) for _, _, spec in pending)
        raise JobKeyRaceError(
            f"add_jobs returned no job for job key(s) {missing} after "
            f"{max(1, self.key_race_retries)} tries: a worker kept locking them; retry later"
        )

    # -- settling jobs

    async def remove_job(
        self, job_key: str, *, conn: asyncpg.Connection | None = None
    ) -> job.Job | None:
        """Delete the job with this key; a job a worker holds loses its key instead and
        will not run again. Returns the job, or None if no job has that key."""
        if not isinstance(job_key, str) or not job_key:
            raise BadInputError(f"invalid job key {job_key!r}: expected a non-empty string")
        async with self._connection(conn) as c:
            rows = await self._fetch(c, queries.REMOVE_JOB, job_key)
        found = [row for row in rows if row["id"] is not None]
        return job.job_from_record(found[0]) if found else None

    async def complete_jobs(
        self, job_ids: Iterable[int], *, conn: asyncpg.Connection | None = None
    ) -> list[job.Job]:
        """Mark jobs done (delete them). Jobs a worker holds are left alone; the returned
        list holds only the jobs that were completed."""
        ids = _check_ids(job_ids)
        async with self._connection(conn) as c:
            rows = await self._fetch(c, queries.COMPLETE_JOBS, ids)
        return [job.job_from_record(row) for row in rows]

    async def permanently_fail_jobs(
        self,
        job_ids: Iterable[int],
        reason: str | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[job.Job]:
        """Mark jobs failed for good (attempts = max_attempts, last_error = reason). Jobs a
        worker holds are left alone; returns the jobs that were failed."""
        ids = _check_ids(job_ids)
        if reason is not None and not isinstance(reason, str):
            raise BadInputError(f"invalid failure reason {reason!r}: expected a string")
        async with self._connection(conn) as c:
            if reason is None:
                rows = await self._fetch(c, queries.PERMANENTLY_FAIL_JOBS_DEFAULT_REASON, ids)
            else:
                rows = await self._fetch(c, queries.PERMANENTLY_FAIL_JOBS, ids, reason)
        return [job.job_from_record(row) for row in rows]

    async def reschedule_jobs(
        self,
        job_ids: Iterable[int],
        options: RescheduleJobOptions | None = None,
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        max_attempts: int | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> list[job.Job]:
        """Set run_at / priority / attempts / max_attempts (keyword arguments override the
        fields of ``options``; None leaves a field as it is). Jobs a worker holds are left
        alone; returns the jobs that were changed."""
        ids = _check_ids(job_ids)
        base = options or RescheduleJobOptions()
        run_at = _check_time(run_at if run_at is not None else base.run_at)
        priority = _check_int(
            priority if priority is not None else base.priority,
            "priority", SMALLINT_MIN, SMALLINT_MAX,
        )
        attempts = _check_int(
            attempts if attempts is not None else base.attempts, "attempts", 0, SMALLINT_MAX
        )
        max_attempts = _check_int(
            max_attempts if max_attempts is not None else base.max_attempts,
            "max_attempts", 1, SMALLINT_MAX,
        )
        async with self._connection(conn) as c:
            rows = await self._fetch(
                c, queries.RESCHEDULE_JOBS, ids, run_at, priority, attempts, max_attempts
            )
        return [job.job_from_record(row) for row in rows]

    async def force_unlock_workers(
        self, worker_ids: Iterable[str], *, conn: asyncpg.Connection | None = None
    ) -> None:
        """Release every job and queue locked by these workers (use only for workers you
        know are dead: a live one would have its jobs run twice)."""
        ids = list(worker_ids)
        if isinstance(worker_ids, str) or not all(isinstance(w, str) for w in ids):
            raise BadInputError(f"invalid worker ids {worker_ids!r}: expected a list of strings")
        async with self._connection(conn) as c:
            await self._fetch(c, queries.FORCE_UNLOCK_WORKERS, ids)

    async def list_active_workers(
        self, *, threshold: float | None = None, conn: asyncpg.Connection | None = None
    ) -> list[recovery.ActiveWorkerRow]:
        """Registered gw workers: heartbeat age, jobs held, stale or not (see ``recovery``)."""
        async with self._connection(conn) as c:
            with database_errors(self._schema):
                return await recovery.list_active_workers(c, self._schema, threshold=threshold)

    async def sweep_stale_workers(
        self,
        options: recovery.SweepStaleWorkersOptions | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> recovery.SweepStaleWorkersResult:
        """Give the jobs of dead registered workers back to the queue (see ``recovery``)."""
        async with self._connection(conn) as c:
            with database_errors(self._schema):
                return await recovery.sweep_stale_workers(
                    c, self._schema, options, hooks=self.hooks
                )

    # -- maintenance

    async def cleanup(
        self,
        tasks: Iterable[CleanupTask | str] = DEFAULT_CLEANUP_TASKS,
        task_identifiers_to_keep: Iterable[str] = (),
        *,
        conn: asyncpg.Connection | None = None,
    ) -> dict[CleanupTask, int]:
        """Delete what the named cleanup tasks cover; returns the rows deleted per task.
        Permanently failed jobs go first, so the tasks and queues they used can go too."""
        chosen = {cleanup_task(task) for task in tasks}
        keep = [_check_identifier(name, "task identifier to keep")
                for name in task_identifiers_to_keep]
        statements = (
            (CleanupTask.DELETE_PERMAFAILED_JOBS, queries.DELETE_PERMAFAILED_JOBS, ()),
            (CleanupTask.GC_TASK_IDENTIFIERS, queries.GC_TASK_IDENTIFIERS, (keep,)),
            (CleanupTask.GC_JOB_QUEUES, queries.GC_JOB_QUEUES, ()),
        )
        deleted: dict[CleanupTask, int] = {}
        async with self._connection(conn) as c:
            for task, template, args in statements:
                if task in chosen:
                    with database_errors(self._schema):
                        status = await c.execute(queries.render(template, self._schema), *args)
                    deleted[task] = int(status.split()[-1])
        return deleted

    async def migrate(self, *, conn: asyncpg.Connection | None = None) -> None:
        """Bring the schema up to date (raises SchemaTooNewError for a newer database)."""
        async with self._connection(conn) as c:
            with database_errors(self._schema):
                await migrate.migrate(c, self._schema)

    # -- reading

    async def get_job(self, job_id: int, *, conn: asyncpg.Connection | None = None) -> job.Job:
        """The job with this id, payload included; JobNotFoundError if there is none."""
        (checked,) = _check_ids([job_id])
        async with self._connection(conn) as c:
            rows = await self._fetch(c, queries.GET_JOB, checked)
        if not rows:
            raise JobNotFoundError(f"no job with id {checked}")
        return job.job_from_record(rows[0])

    async def list_jobs(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        state: JobState | str | None = None,
        limit: int | None = 100,
        conn: asyncpg.Connection | None = None,
    ) -> list[job.Job]:
        """Jobs in id order, filtered by task identifier, queue name and state."""
        checked_state = _job_state(state)
        _check_int(limit, "limit", 0, 2**62)
        async with self._connection(conn) as c:
            rows = await self._fetch(
                c, queries.LIST_JOBS, task, queue,
                checked_state.value if checked_state else None, limit,
            )
        return [job.job_from_record(row) for row in rows]


def cleanup_task(value: CleanupTask | str) -> CleanupTask:
    """A CleanupTask from a member or its name (any case); BadInputError lists the valid."""
    if isinstance(value, CleanupTask):
        return value
    try:
        return CleanupTask(str(value).upper())
    except ValueError:
        valid = ", ".join(task.value for task in CleanupTask)
        raise BadInputError(f"unknown cleanup task {value!r}: expected one of {valid}") from None


def _job_state(value: JobState | str | None) -> JobState | None:
    if value is None or isinstance(value, JobState):
        return value
    try:
        return JobState(str(value).lower())
    except ValueError:
        valid = ", ".join(state.value for state in JobState)
        raise BadInputError(f"unknown job state {value!r}: expected one of {valid}") from None


def _bulk_item(item: Any, *, raw: bool) -> tuple[str, str, job.JobSpec]:
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
    if spec is None or (type(spec) is job.JobSpec and spec == _DEFAULT_SPEC):
        return _task_name(identifier), text, _DEFAULT_SPEC
    return _task_name(identifier), text, _check_spec(spec)


_DEFAULT_SPEC = job.JobSpec()
"""A spec with every field unset (valid as it is, so not checked per item)."""


async def _scheduled_payload(
    registry: hooks.HookRegistry, identifier: str, payload_json: str, spec: job.JobSpec
) -> str:
    """The payload JSON after the BeforeJobSchedule hooks (which see JSON values)."""
    context = hooks.BeforeJobScheduleContext(identifier, json.loads(payload_json), spec)
    payload = await registry.before_job_schedule(context)
    if payload is context.payload:
        return payload_json
    return payloads.to_json(payload)


async def _scheduled_specs(
    registry: hooks.HookRegistry, specs: list[tuple[str, str, job.JobSpec]]
) -> list[tuple[str, str, job.JobSpec]]:
    """Bulk items after the BeforeJobSchedule hooks: skipped items are left out; a
    refusal raises for the whole call (nothing is added)."""
    kept = []
    for identifier, payload_json, spec in specs:
        try:
            text = await _scheduled_payload(registry, identifier, payload_json, spec)
        except JobScheduleSkippedError:
            continue
        kept.append((identifier, text, spec))
    return kept


def _bulk_preserve_run_at(specs: list[tuple[str, str, job.JobSpec]], preserve: bool) -> bool:
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


def _specs_json(specs: list[tuple[str, str, job.JobSpec]]) -> str:
    """The job_spec array for add_jobs as JSON (payloads embedded as JSON, not strings)."""
    parts = []
    for identifier, payload_json, spec in specs:
        if spec is _DEFAULT_SPEC:
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
