"""The sweep: registered workers whose heartbeat went stale give their jobs back.

One transaction, one sweeper at a time per schema (a transaction-scoped advisory lock; a
second sweeper returns at once with ``skipped``), bounded by server-side timeouts so a
sweeper that stalls cannot hold the lock for long. A dry run does the same work and rolls
it back, so it reports exactly what a real sweep would have done.

``sweep_in_transaction`` is the same sweep on a caller's connection of any driver
(``WorkerUtils.sweep_stale_workers(conn=...)``), inside the caller's transaction.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol, TypeVar

from graphile_worker_cli import db
from graphile_worker_cli.drivers import asyncpg_conn
from graphile_worker_cli.errors import GraphileWorkerError
from graphile_worker_cli.job_input import CANCELLED_ERROR
from graphile_worker_cli.operations import Operation, Row, Statement
from graphile_worker_cli.queries import recovery as queries
from graphile_worker_cli.recovery.config import (
    ResolvedSweepConfig,
    SweepStaleWorkersOptions,
    SweepStaleWorkersResult,
    WorkerRecoveryConfig,
)
from graphile_worker_cli.recovery.registry import Executor, acquire

if TYPE_CHECKING:
    from graphile_worker_cli import hooks as gw_hooks

logger = logging.getLogger("gw.recovery")
T = TypeVar("T")

# Bounds of one sweep transaction: a statement (or a row lock wait) longer than the first
# is cancelled; a sweeper idle inside the transaction longer than the second (its event
# loop stalled) loses its session, and with it the sweep lock, so other sweepers go on.
SWEEP_STATEMENT_TIMEOUT = "10s"
SWEEP_IDLE_TIMEOUT = "5s"


class Run(Protocol):
    """Runs an operation on the sweep's connection (whatever its driver)."""

    def __call__(self, operation: Operation[T], /) -> Awaitable[T]: ...


async def sweep_stale_workers(
    pool_or_conn: Executor,
    schema: str = db.DEFAULT_SCHEMA,
    options: SweepStaleWorkersOptions | None = None,
    *,
    defaults: WorkerRecoveryConfig | None = None,
    sweeper_id: str | None = None,
    hooks: gw_hooks.HookRegistry | None = None,
) -> SweepStaleWorkersResult:
    """Recover the jobs and queues of dead registered workers and remove their rows.

    ``sweeper_id``: the id of the worker sweeping, which knows it is alive and so never
    sweeps itself (even when its own heartbeat is lagging). ``hooks``: JobRecovery
    interceptors decide per job (in the sweep's transaction); WorkerRecovered is emitted
    after a sweep that recovered something."""
    resolved = (options or SweepStaleWorkersOptions()).resolve(defaults)
    async with acquire(pool_or_conn) as conn:

        def run(operation: Operation[T]) -> Awaitable[T]:
            return asyncpg_conn.run_raw(conn, operation)

        begin = Statement(
            queries.BEGIN_SWEEP.sql(schema),
            (queries.sweep_lock_key(schema), SWEEP_STATEMENT_TIMEOUT, SWEEP_IDLE_TIMEOUT),
        )
        transaction = conn.transaction()
        await transaction.start()
        try:
            record = await _sweep(run, begin, schema, resolved, sweeper_id, hooks)
        except BaseException:
            with contextlib.suppress(Exception):  # the connection may be the thing that failed
                await transaction.rollback()
            raise
        if record is None or resolved.dry_run:
            await transaction.rollback()
        else:
            await transaction.commit()
    return await _finish(record, resolved, sweeper_id, hooks)


async def sweep_in_transaction(
    run: Run,
    schema: str = db.DEFAULT_SCHEMA,
    options: SweepStaleWorkersOptions | None = None,
    *,
    hooks: gw_hooks.HookRegistry | None = None,
) -> SweepStaleWorkersResult:
    """The sweep on a caller's connection of any driver (``run`` runs operations on it),
    inside the caller's open transaction: in a savepoint (a dry run rolls back to it), the
    sweep lock held until the caller's transaction ends, nothing committed here."""
    resolved = (options or SweepStaleWorkersOptions()).resolve(None)
    begin = Statement(queries.TRY_SWEEP_LOCK.sql(schema), (queries.sweep_lock_key(schema),))
    await run(_statement(queries.SAVEPOINT_SWEEP.sql(schema)))
    try:
        record = await _sweep(run, begin, schema, resolved, None, hooks)
    except BaseException:
        with contextlib.suppress(Exception):  # the connection may be the thing that failed
            await run(_statement(queries.ROLLBACK_TO_SWEEP.sql(schema)))
        raise
    if record is None or resolved.dry_run:
        await run(_statement(queries.ROLLBACK_TO_SWEEP.sql(schema)))
    await run(_statement(queries.RELEASE_SWEEP.sql(schema)))
    return await _finish(record, resolved, None, hooks)


async def _finish(
    record: Row | None,
    resolved: ResolvedSweepConfig,
    sweeper_id: str | None,
    hooks: gw_hooks.HookRegistry | None,
) -> SweepStaleWorkersResult:
    if record is None:
        return SweepStaleWorkersResult(dry_run=resolved.dry_run, skipped=True)
    result = SweepStaleWorkersResult(
        worker_ids=list(record["worker_ids"]),
        recovered_job_ids=list(record["job_ids"]),
        unlocked_queue_names=list(record["queue_names"]),
        dry_run=resolved.dry_run,
    )
    if result.worker_ids and not resolved.dry_run:
        _log_swept(result)
        if hooks is not None:
            from graphile_worker_cli.hooks import recovery as hook_recovery

            await hook_recovery.recovered(hooks, sweeper_id or "", result)
    return result


async def _sweep(
    run: Run,
    begin: Statement,
    schema: str,
    resolved: ResolvedSweepConfig,
    sweeper_id: str | None,
    hooks: gw_hooks.HookRegistry | None,
) -> Row | None:
    """The sweep's statements inside its transaction: the statement's one row, or None when
    another sweeper holds the sweep lock."""
    began = await run(_first_row(begin))
    if began is None or not began["locked"]:
        logger.debug("another sweeper holds the sweep lock; skipping this sweep")
        return None
    # The hook events are imported only with hooks: a worker without them would otherwise
    # pay for importing every event class in the middle of its first sweep.
    if hooks is not None:
        from graphile_worker_cli.hooks import recovery as hook_recovery
    intercept = hooks is not None and hook_recovery.intercepts(hooks)
    before = await run(hook_recovery.snapshot(schema, resolved, sweeper_id)) if intercept else []
    record = await run(_first_row(Statement(
        queries.SWEEP_STALE_WORKERS.sql(schema),
        (
            resolved.threshold,
            resolved.resilient_sweep_threshold_multiplier,
            list(resolved.resilient_job_flags),
            sweeper_id,
            resolved.recovery_delay,
        ),
    )))
    if record is None:  # the statement always returns one row
        raise GraphileWorkerError("the sweep statement returned no row")
    if intercept and hooks is not None:
        decisions = await hook_recovery.decide(
            hooks, before, set(record["job_ids"]), sweeper_id or ""
        )
        await run(hook_recovery.apply(schema, decisions))
    if record["job_ids"]:
        await run(_fail_swept_cancelled(schema, list(record["job_ids"])))
    return record


def _first_row(statement: Statement) -> Operation[Row | None]:
    rows = yield statement
    return rows[0] if rows else None


def _fail_swept_cancelled(schema: str, job_ids: list[int]) -> Operation[None]:
    """Recovered jobs someone asked to cancel are failed for good, not run again (on a
    schema with gw's cancel requests, migration 3)."""
    rows = yield Statement(queries.HAS_CANCEL_REQUESTS.sql(schema), (schema,))
    if rows and rows[0][0]:
        yield Statement(queries.FAIL_SWEPT_CANCELLED.sql(schema), (job_ids, CANCELLED_ERROR))


def _statement(sql: str) -> Operation[None]:
    yield Statement(sql)


def _log_swept(result: SweepStaleWorkersResult) -> None:
    logger.warning(
        "swept %d dead worker(s) %s: recovered %d job(s), unlocked %d queue(s)",
        len(result.worker_ids),
        ", ".join(result.worker_ids),
        result.recovered_count,
        len(result.unlocked_queue_names),
        extra={
            "gw": {
                "action": "sweep",
                "worker_ids": result.worker_ids,
                "job_ids": result.recovered_job_ids,
            }
        },
    )
