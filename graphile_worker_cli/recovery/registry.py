"""The ``_gw_workers`` registry: registering, heartbeating, deregistering, listing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from graphile_worker_cli import db
from graphile_worker_cli.drivers import asyncpg_conn
from graphile_worker_cli.operations import Operation, Statement
from graphile_worker_cli.queries import recovery as queries
from graphile_worker_cli.recovery.config import WorkerRecoveryConfig
from graphile_worker_cli.version import __version__

Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection"

logger = logging.getLogger("gw.recovery")


@asynccontextmanager
async def acquire(pool_or_conn: Executor) -> AsyncIterator[asyncpg.Connection]:
    """A connection from a pool, or the connection itself."""
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            yield conn
    else:
        yield pool_or_conn


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveWorkerRow:
    """A registered worker; durations in seconds, measured by the database clock."""

    id: str
    host: str
    pid: int
    version: str
    tasks: list[str]
    started_at: datetime
    last_heartbeat_at: datetime
    age: float
    heartbeat_age: float
    heartbeat_interval: float
    threshold: float
    late: bool
    """Its heartbeat is older than its threshold."""
    session_alive: bool
    """Its database session still holds its liveness lock (its process lives)."""
    stale: bool
    """Late and session gone: a sweep would declare it dead."""
    longest_stall: float | None
    """The longest event-loop stall it reported recently, in seconds (None: not reported)."""
    jobs_held: int
    queues_held: int
    pool_connections: int | None = None
    """The most pooled connections it opens (None: not reported)."""
    session_connections: int | None = None
    """The most connections of its own (LISTEN, fetch, liveness) it opens."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LockHolderRow:
    """A locked_by value with no registry row (a reference worker, an old gw)."""

    id: str
    jobs_held: int
    oldest_lock_at: datetime


@dataclass(frozen=True, slots=True)
class SchemaState:
    migrated: bool
    """The schema has Graphile Worker's tables."""
    has_registry: bool
    """The schema has gw's worker registry."""


async def schema_state(pool_or_conn: Executor, schema: str) -> SchemaState:
    """Whether ``schema`` is migrated and has gw's worker registry."""
    async with acquire(pool_or_conn) as conn:
        state = await conn.fetchrow(queries.SCHEMA_STATE.sql(schema), schema)
    if state is None:
        return SchemaState(False, False)
    return SchemaState(bool(state["migrated"]), bool(state["has_registry"]))


async def registry_exists(pool_or_conn: Executor, schema: str) -> bool:
    """Whether ``schema`` has gw's worker registry (``migrate.migrate`` creates it)."""
    return (await schema_state(pool_or_conn, schema)).has_registry


async def force_unlock_workers(
    pool_or_conn: Executor, schema: str, worker_ids: Sequence[str]
) -> int:
    """Unlock every job and queue the workers hold; how many jobs they held."""
    async with acquire(pool_or_conn) as conn:
        held = await conn.fetchval(queries.FORCE_UNLOCK_WORKERS.sql(schema), list(worker_ids))
    return int(held or 0)


async def register_worker(
    pool_or_conn: Executor,
    schema: str,
    worker_id: str,
    *,
    heartbeat_interval: float,
    tasks: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    host: str | None = None,
    pid: int | None = None,
) -> bool:
    """Add (or refresh) this worker's row; True when the row was new."""
    async with acquire(pool_or_conn) as conn:
        inserted = await conn.fetchval(
            queries.REGISTER_WORKER.sql(schema),
            worker_id,
            host or socket.gethostname(),
            os.getpid() if pid is None else pid,
            __version__,
            list(tasks),
            heartbeat_interval,
            json.dumps(metadata or {}),
        )
    return bool(inserted)


async def heartbeat(
    pool_or_conn: Executor, schema: str, worker_id: str, longest_stall: float | None = None
) -> bool:
    """Record that the worker is alive (and its longest recent event-loop stall); False when
    its row is gone (it was swept)."""
    async with acquire(pool_or_conn) as conn:
        found = await conn.fetchval(queries.HEARTBEAT.sql(schema), worker_id, longest_stall)
    return found is not None


async def take_liveness_lock(conn: asyncpg.Connection, schema: str, worker_id: str) -> bool:
    """Take the worker's liveness lock for ``conn``'s session; False when another session
    holds it for now. Held until the session ends: while it is held, no sweep declares the
    worker dead, however late its heartbeat."""
    return bool(await conn.fetchval(queries.TAKE_LIVENESS_LOCK.sql(schema), worker_id))


async def deregister_worker(
    pool_or_conn: Executor, schema: str, worker_id: str, *, holds_no_jobs: bool = False
) -> bool:
    """Remove the worker's row on clean exit; True when removed.

    A worker that still holds locks (an outcome it could not write) keeps its row: it goes
    stale and a sweep recovers those jobs, instead of leaving them to the 4-hour rule.
    ``holds_no_jobs``: the worker knows it holds no job (every fetch it sent was answered,
    every outcome written), so its job locks are not counted — counting them reads the
    whole jobs table.
    """
    query = queries.DEREGISTER_IDLE_WORKER if holds_no_jobs else queries.DEREGISTER_WORKER
    async with acquire(pool_or_conn) as conn:
        held = await conn.fetchval(query.sql(schema), worker_id)
    return bool(held == 0)



DEREGISTER_TIMEOUT = 5.0


async def deregister_at_exit(
    executor: Callable[[], Awaitable[Executor]],
    schema: str,
    worker_id: str,
    transient_errors: tuple[type[BaseException], ...],
    holds_no_jobs: bool = False,
) -> None:
    """``deregister_worker`` at a worker's exit, bounded in time: a worker still holding
    locks, or a database that is gone, leaves its row to go stale and be swept (no job is
    lost either way), and says so."""
    try:
        conn = await asyncio.wait_for(executor(), DEREGISTER_TIMEOUT)
        removed = await asyncio.wait_for(
            deregister_worker(conn, schema, worker_id, holds_no_jobs=holds_no_jobs),
            DEREGISTER_TIMEOUT,
        )
    except transient_errors as error:
        logger.warning("could not deregister worker %s: %s", worker_id, error)
        return
    if not removed:
        logger.warning(
            "worker %s still holds locks at exit; its registry row stays so that "
            "a sweep recovers those jobs once the row is stale", worker_id,
        )

async def list_active_workers(
    pool_or_conn: Executor,
    schema: str = db.DEFAULT_SCHEMA,
    *,
    threshold: float | None = None,
    config: WorkerRecoveryConfig | None = None,
) -> list[ActiveWorkerRow]:
    """Every registered worker, with jobs held and whether a sweep would declare it dead."""
    operation = list_active_workers_operation(schema, threshold=threshold, config=config)
    async with acquire(pool_or_conn) as conn:
        return await asyncpg_conn.run_raw(conn, operation)


def list_active_workers_operation(
    schema: str = db.DEFAULT_SCHEMA,
    *,
    threshold: float | None = None,
    config: WorkerRecoveryConfig | None = None,
) -> Operation[list[ActiveWorkerRow]]:
    """``list_active_workers`` as an operation, for a connection of any driver."""
    base = config or WorkerRecoveryConfig()
    records = yield Statement(
        queries.LIST_ACTIVE_WORKERS.sql(schema),
        (
            base.sweep_threshold if threshold is None else threshold,
            base.resilient_sweep_threshold_multiplier,
            list(base.resilient_job_flags),
        ),
    )
    # By keys() and a slice: an asyncpg Record iterates over its values, not its keys.
    return [
        ActiveWorkerRow(**dict(zip(record.keys(), record[:], strict=True)))
        for record in records
    ]


async def list_unregistered_lock_holders(
    pool_or_conn: Executor, schema: str = db.DEFAULT_SCHEMA
) -> list[LockHolderRow]:
    """Lock holders the sweep never touches (only the 4-hour stale-lock rule applies)."""
    async with acquire(pool_or_conn) as conn:
        records = await conn.fetch(queries.LIST_UNREGISTERED_LOCK_HOLDERS.sql(schema))
    return [LockHolderRow(**dict(record)) for record in records]
