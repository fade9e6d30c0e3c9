"""WorkerUtils: add, settle, inspect and clean up jobs without running a worker.

Every method calls the schema's own SQL functions (the ones Node and SQL clients call), so
the queue behaves the same whoever writes to it. The jobs methods are written once, as
driver-neutral operations (``operations``); this class runs them on its asyncpg pool, or
with ``conn=`` on the caller's connection, inside whatever transaction the caller has open
(a job queued atomically with the caller's writes): an asyncpg ``Connection``, a psycopg 3
``AsyncConnection``, a SQLAlchemy ``AsyncConnection`` or ``AsyncSession`` (see ``drivers``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import asyncpg

from graphile_worker_cli import (
    conninfo,
    db,
    drivers,
    job,
    migrate,
    operations,
    payloads,
)
from graphile_worker_cli.drivers import asyncpg_conn
from graphile_worker_cli.errors import (
    BadInputError,
    ConfigError,
    JobScheduleSkippedError,
)
from graphile_worker_cli.job import JobState
from graphile_worker_cli.job_input import (
    DEFAULT_CLEANUP_TASKS,
    CleanupTask,
    JobCancellation,
    JobInput,
    RescheduleJobOptions,
    TaskName,
)

if TYPE_CHECKING:
    from graphile_worker_cli import config, hooks, recovery

# hooks is imported where a registry is used: there is none unless the caller made one
# (and so imported it), and `gw add-job` starts faster without it.

T = TypeVar("T")


class WorkerUtils:
    """Scheduling and maintenance operations on one Graphile Worker schema.

    ``WorkerUtils(pool)`` runs on an asyncpg pool (``connect(url)`` opens one); without a
    pool (``WorkerUtils(schema=...)``) every jobs method needs ``conn=``."""

    key_race_retries: ClassVar[int] = 5
    """How many times add_job tries again when a keyed job was locked mid-call."""

    def __init__(
        self,
        pool: asyncpg.Pool | None = None,
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
        self._names = operations.Names()
        """Task identifiers and queue names by id, seen on this pool's database (a caller's
        connection may be another database's: its answers are not kept)."""

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        schema: str = db.DEFAULT_SCHEMA,
        max_size: int = 10,
        hooks: hooks.HookRegistry | None = None,
        prepared_statements: bool = True,
    ) -> WorkerUtils:
        """A WorkerUtils with a pool of its own, closed by ``close()``. Without ``url``, the
        PG* environment variables name the server (as in the reference). Without
        ``prepared_statements``, nothing is cached on the server (PgBouncer in transaction
        mode)."""
        url = url or conninfo.url_from_environment()
        if url is None:
            raise ConfigError(
                "no database: pass a URL or set PG* environment variables (PGHOST, PGDATABASE...)"
            )
        pool = await db.create_pool(
            url, min_size=1, max_size=max_size, **db.statement_cache(prepared_statements)
        )
        utils = cls(pool, schema=schema, hooks=hooks)
        utils._owns_pool = True
        return utils

    async def close(self) -> None:
        """Close the pool if this object opened it (a pool passed in is the caller's)."""
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        if self._owns_pool and self._pool is not None:
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
        if self._pool is None:
            raise BadInputError(
                "this WorkerUtils has no pool (it was made with WorkerUtils(schema=...)): "
                "pass conn= your connection, or make it with WorkerUtils.connect(url)"
            )
        return self._pool

    # -- plumbing

    @asynccontextmanager
    async def _connection(
        self, conn: asyncpg.Connection | None
    ) -> AsyncIterator[asyncpg.Connection]:
        if conn is not None:
            yield conn
            return
        pool = self.pool
        with db.database_errors(self._schema):
            acquired = await pool.acquire()
        try:
            yield acquired
        finally:
            db.release_soon(pool, acquired, self._releasing)  # close() waits for it

    @asynccontextmanager
    async def _executor(self, conn: object | None) -> AsyncIterator[drivers.AsyncExecutor]:
        """The caller's connection (any driver ``drivers`` knows), else one of the pool's."""
        if conn is not None:
            yield drivers.async_executor(conn, self._schema)
            return
        async with self._connection(None) as acquired:
            yield asyncpg_conn.AsyncpgExecutor(acquired, self._schema)

    async def _run(self, operation: operations.Operation[T], conn: object | None) -> T:
        async with self._executor(conn) as executor:
            return await drivers.run_async(operation, executor)

    async def _callers_transaction(
        self, conn: object, method: str
    ) -> drivers.AsyncExecutor | None:
        """An executor on ``conn`` when it has a transaction open (the method runs inside
        it). None for an asyncpg connection outside a transaction (asyncpg has no implicit
        one: gw opens its own there, as on its pool); any other driver's connection that
        would commit each statement on its own is refused."""
        executor = drivers.async_executor(conn, self._schema)
        if await executor.in_transaction():
            return executor
        if isinstance(executor, asyncpg_conn.AsyncpgExecutor):
            return None
        raise drivers.no_transaction_error(conn, method)

    # -- adding jobs

    async def add_job(
        self,
        identifier: TaskName,
        payload: Any = None,
        spec: job.JobSpec | None = None,
        *,
        conn: object | None = None,
    ) -> job.Job:
        """Queue one job. ``payload``: a pydantic model, a dataclass, or JSON-like values.

        ``identifier`` may also be a task handler instance (a ``TaskHandler`` model): its
        ``IDENTIFIER`` names the task and the instance is the payload, as in
        ``await utils.add_job(SendEmail(to="a@example.com"))``."""
        return await self._add_job(operations.prepare_job(identifier, payload, spec), conn)

    async def add_raw_job(
        self,
        identifier: str,
        payload: Any = None,
        spec: job.JobSpec | None = None,
        *,
        conn: object | None = None,
    ) -> job.Job:
        """Queue one job whose payload is already plain JSON values (dict, list, str...)."""
        return await self._add_job(operations.prepare_raw_job(identifier, payload, spec), conn)

    async def add_batch_job(
        self,
        identifier: TaskName,
        items: Sequence[Any],
        spec: job.JobSpec | None = None,
        *,
        conn: object | None = None,
    ) -> job.Job:
        """Queue a batch job: its payload is a JSON array of ``items``. With a job key (in
        replace or preserve_run_at mode) the items of a job still waiting are appended to,
        so a batch accumulates until it runs."""
        return await self._add_job(operations.prepare_batch_job(identifier, items, spec), conn)

    async def _add_job(self, prepared: operations.Prepared, conn: object | None) -> job.Job:
        registry = self.hooks
        started = 0
        if registry is not None and registry.active:
            from graphile_worker_cli import hooks

            started = time.time_ns()
            if hooks.BeforeJobSchedule in registry.events:
                identifier, payload_json, spec = prepared
                payload_json = await _scheduled_payload(registry, identifier, payload_json, spec)
                prepared = identifier, payload_json, spec
        operation = operations.add_job(
            self._schema, prepared, key_race_retries=self.key_race_retries
        )
        async with self._executor(conn) as executor:
            added = await drivers.run_async(operation, executor)
            if started:
                await self._scheduled(executor, [added], started)
        return added

    async def _scheduled(
        self, executor: drivers.AsyncExecutor, added: list[job.Job], started_ns: int
    ) -> None:
        registry = self.hooks
        if registry is None:
            return
        from graphile_worker_cli import hooks

        if hooks.JobScheduled not in registry.events:
            return

        async def fetch(sql: str, *args: Any) -> list[Any]:
            return await executor.fetch(operations.Statement(sql, args))

        for item in added:
            await registry.emit(
                hooks.JobScheduled,
                hooks.JobScheduledContext(
                    item, executor.connection, self._schema, started_ns, fetch
                ),
            )

    async def add_jobs(
        self,
        jobs: Sequence[JobInput],
        *,
        conn: object | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[job.Job]:
        """Queue many jobs in one statement. Items: ``(identifier, payload)``,
        ``(identifier, payload, spec)`` or ``RawJobSpec``; payloads may be models.

        Job keys behave as in replace mode, or as preserve_run_at when
        ``job_key_preserve_run_at`` is set (or every spec asks for it); unsafe_dedupe is
        not available in bulk."""
        specs = operations.prepare_jobs(jobs, raw=False)
        return await self._add_jobs(specs, conn, job_key_preserve_run_at)

    async def add_raw_jobs(
        self,
        jobs: Sequence[job.RawJobSpec],
        *,
        conn: object | None = None,
        job_key_preserve_run_at: bool = False,
    ) -> list[job.Job]:
        """``add_jobs`` for payloads that are already plain JSON values."""
        specs = operations.prepare_jobs(jobs, raw=True)
        return await self._add_jobs(specs, conn, job_key_preserve_run_at)

    async def _add_jobs(
        self,
        specs: list[operations.Prepared],
        conn: object | None,
        job_key_preserve_run_at: bool,
    ) -> list[job.Job]:
        registry = self.hooks
        started = 0
        if registry is not None and registry.active:
            from graphile_worker_cli import hooks

            started = time.time_ns()
            if hooks.BeforeJobSchedule in registry.events:
                specs = await _scheduled_specs(registry, specs)
        names = self._names if conn is None else operations.Names(
            dict(self._names.tasks), dict(self._names.queues)
        )
        operation = operations.add_jobs(
            self._schema, specs, job_key_preserve_run_at=job_key_preserve_run_at,
            key_race_retries=self.key_race_retries, names=names,
        )
        async with self._executor(conn) as executor:
            added = await drivers.run_async(operation, executor)
            if started and added:
                await self._scheduled(executor, added, started)
        return added

    # -- settling jobs

    async def remove_job(self, job_key: str, *, conn: object | None = None) -> job.Job | None:
        """Delete the job with this key; a job a worker holds loses its key instead and
        will not run again. Returns the job, or None if no job has that key."""
        return await self._run(operations.remove_job(self._schema, job_key), conn)

    async def complete_jobs(
        self, job_ids: Iterable[int], *, conn: object | None = None
    ) -> list[job.Job]:
        """Mark jobs done (delete them). Jobs a worker holds are left alone; the returned
        list holds only the jobs that were completed. Recorded in the job history while a
        worker with ``history_retention`` runs (docs/history.md), as are the next two."""
        return await self._run(operations.complete_jobs(self._schema, job_ids), conn)

    async def permanently_fail_jobs(
        self,
        job_ids: Iterable[int],
        reason: str | None = None,
        *,
        conn: object | None = None,
    ) -> list[job.Job]:
        """Mark jobs failed for good (attempts = max_attempts, last_error = reason). Jobs a
        worker holds are left alone; returns the jobs that were failed."""
        return await self._run(
            operations.permanently_fail_jobs(self._schema, job_ids, reason), conn
        )

    async def cancel_jobs(
        self, job_ids: Iterable[int], *, conn: object | None = None
    ) -> list[JobCancellation]:
        """Cancel jobs; one ``JobCancellation`` per distinct id, in the order given.

        A job not running is failed for good with last_error ``cancelled``. A job a gw
        worker runs is asked to stop (outcome ``requested``): that worker fires its abort
        signal with reason ``cancelled`` and, when the task returns or the abort window
        ends, fails it for good as ``cancelled``. A job another worker runs (a reference
        Node.js worker) cannot be interrupted: it is marked (``marked``) so it never runs
        again. Inside the caller's transaction (``conn=``) nothing happens until commit."""
        return await self._run(operations.cancel_jobs(self._schema, job_ids), conn)

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
    ) -> list[job.Job]:
        """Set run_at / priority / attempts / max_attempts (keyword arguments override the
        fields of ``options``; None leaves a field as it is). Jobs a worker holds are left
        alone; returns the jobs that were changed."""
        operation = operations.reschedule_jobs(
            self._schema, job_ids, options,
            run_at=run_at, priority=priority, attempts=attempts, max_attempts=max_attempts,
        )
        return await self._run(operation, conn)

    async def force_unlock_workers(
        self, worker_ids: Iterable[str], *, conn: object | None = None
    ) -> None:
        """Release every job and queue locked by these workers (use only for workers you
        know are dead: a live one would have its jobs run twice)."""
        await self._run(operations.force_unlock_workers(self._schema, worker_ids), conn)

    async def list_active_workers(
        self, *, threshold: float | None = None, conn: object | None = None
    ) -> list[recovery.ActiveWorkerRow]:
        """Registered gw workers: heartbeat age, jobs held, stale or not (see ``recovery``)."""
        # Imported on use: a worker (which holds a WorkerUtils) may run without recovery.
        from graphile_worker_cli.recovery import registry

        operation = registry.list_active_workers_operation(self._schema, threshold=threshold)
        return await self._run(operation, conn)

    async def sweep_stale_workers(
        self,
        options: recovery.SweepStaleWorkersOptions | None = None,
        *,
        conn: object | None = None,
    ) -> recovery.SweepStaleWorkersResult:
        """Give the jobs of dead registered workers back to the queue (see ``recovery``).

        With ``conn=`` in an open transaction, the sweep runs inside it (in a savepoint;
        the sweep lock is held until the caller's transaction ends)."""
        from graphile_worker_cli.recovery import sweep

        executor = None
        if conn is not None:
            executor = await self._callers_transaction(conn, "sweep_stale_workers")
        if executor is not None:
            ready = executor

            def run(operation: operations.Operation[T]) -> Awaitable[T]:
                return drivers.run_async(operation, ready)

            return await sweep.sweep_in_transaction(run, self._schema, options, hooks=self.hooks)
        async with self._connection(conn) as c:  # None, or an asyncpg connection
            with db.database_errors(self._schema):
                return await sweep.sweep_stale_workers(c, self._schema, options, hooks=self.hooks)

    # -- maintenance

    async def cleanup(
        self,
        tasks: Iterable[CleanupTask | str] = DEFAULT_CLEANUP_TASKS,
        task_identifiers_to_keep: Iterable[str] = (),
        *,
        conn: object | None = None,
    ) -> dict[CleanupTask, int]:
        """Delete what the named cleanup tasks cover; returns the rows deleted per task.
        Permanently failed jobs go first, so the tasks and queues they used can go too."""
        return await self._run(
            operations.cleanup(self._schema, tasks, task_identifiers_to_keep), conn
        )

    async def migrate(self, *, conn: object | None = None) -> None:
        """Bring the schema up to date (raises SchemaTooNewError for a newer database).

        With ``conn=`` in an open transaction, the migration runs inside it, under the
        migration lock, and exists only if the caller commits; an asyncpg connection
        outside a transaction is migrated as gw's pool is (a transaction per step)."""
        executor = None
        if conn is not None:
            executor = await self._callers_transaction(conn, "migrate")
        if executor is not None:
            await drivers.run_async(migrate.migrate_in_transaction(self._schema), executor)
            return
        async with self._connection(conn) as c:  # None, or an asyncpg connection
            with db.database_errors(self._schema):
                await migrate.migrate(c, self._schema)

    # -- reading

    async def get_job(
        self, job_id: int | None = None, *, key: str | None = None, conn: object | None = None
    ) -> job.Job:
        """The job with this id, or with this job ``key``, payload included;
        JobNotFoundError if there is none."""
        return await self._run(operations.get_job(self._schema, job_id, key), conn)

    async def list_jobs(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        state: JobState | str | None = None,
        limit: int | None = 100,
        conn: object | None = None,
    ) -> list[job.Job]:
        """Jobs in id order, filtered by task identifier, queue name and state."""
        operation = operations.list_jobs(
            self._schema, task=task, queue=queue, state=state, limit=limit
        )
        return await self._run(operation, conn)

    async def list_history(
        self,
        *,
        task: str | None = None,
        since: datetime | timedelta | None = None,
        failed: bool = False,
        limit: int | None = 100,
        conn: object | None = None,
    ) -> list[job.JobHistoryEntry]:
        """Jobs gw workers completed or failed for good (``history_retention``), newest
        first: finished since ``since`` (a time, or how long ago), of ``task``, failed
        only."""
        operation = operations.list_history(
            self._schema, task=task, since=since, failed=failed, limit=limit
        )
        return await self._run(operation, conn)


async def _scheduled_payload(
    registry: hooks.HookRegistry, identifier: str, payload_json: str, spec: job.JobSpec
) -> str:
    """The payload JSON after the BeforeJobSchedule hooks (which see JSON values)."""
    from graphile_worker_cli import hooks

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


@asynccontextmanager
async def configured_worker_utils(
    settings: config.Settings, *, max_size: int = 1, check_schema: bool = True
) -> AsyncIterator[WorkerUtils]:
    """A ``WorkerUtils`` with a pool of its own on the database the settings name (the
    embedded one when none is), for the ``gw jobs`` commands and ``gw admin``; with
    ``check_schema``, after refusing a schema it cannot work with (not migrated, too new)."""
    from graphile_worker_cli import embedded  # settings-level: the config stack on demand

    async with embedded.database_url(settings) as url, await WorkerUtils.connect(
        url, schema=settings.schema_name, max_size=max_size,
        prepared_statements=settings.prepared_statements,
    ) as worker_utils:
        if check_schema:
            with db.database_errors(settings.schema_name):
                async with worker_utils.pool.acquire() as conn:
                    await migrate.check_schema(conn, settings.schema_name)
        yield worker_utils


async def quick_add_job(
    identifier: TaskName,
    payload: Any = None,
    spec: job.JobSpec | None = None,
    *,
    settings: config.Settings | None = None,
    config_file: Path | str | None = None,
    **overrides: Any,
) -> job.Job:
    """The reference's ``quickAddJob``: connect, add one job (as ``WorkerUtils.add_job``; the
    schema check and the insert in one statement, see ``quick_add``), disconnect. For more
    than the odd job, keep a ``WorkerUtils`` instead: each call opens and closes its own
    connection.

    The database and schema are the ones ``gw`` would use: from ``settings`` (a
    ``config.Settings``) or, without, ``config_file`` (default ./worker.toml when present) <
    the environment (``DATABASE_URL``, ``GW_<KEY>``, PG* variables) < ``overrides`` named
    like the TOML keys (``database_url="postgres://..."``, ``schema="app_jobs"``). With no
    database named anywhere, the embedded server, as ``gw add-job``. The schema must be
    migrated already (``gw migrate``), as in the reference.
    """
    # settings-level: the config stack on demand
    from graphile_worker_cli import config, quick_add

    if settings is None:
        path = Path(config_file) if config_file is not None else None
        settings = config.load_settings(path, overrides)
    elif config_file is not None or overrides:
        raise TypeError("quick_add_job: pass settings, or config_file/overrides, not both")

    return await quick_add.add_prepared_job(
        settings, *operations.prepare_job(identifier, payload, spec)
    )
