"""Shared helpers of the recovery tests: registry rows and locked jobs made by hand."""

from __future__ import annotations

import asyncpg

from graphile_worker_cli import db, recovery

SCHEMA = "graphile_worker"


async def ensure_registry(conn: asyncpg.Connection, schema: str = SCHEMA) -> None:
    """migrate.migrate creates gw's registry; make sure the test database has it."""
    qualified = f"{db.escape_identifier(schema)}._gw_workers"
    assert await conn.fetchval("select to_regclass($1)", qualified) is not None


async def add_locked_job(
    conn: asyncpg.Connection,
    worker_id: str,
    *,
    queue: str | None = None,
    locked_ago: str = "1 minute",
    flags: list[str] | None = None,
    attempts: int = 1,
    max_attempts: int = 25,
    key: str | None = None,
) -> int:
    """A job as if ``worker_id`` had fetched it (attempts already counts the try)."""
    job_id: int = await conn.fetchval(
        "select id from graphile_worker.add_job('recovery_task', '{}'::json, queue_name => $1,"
        " flags => $2::text[], max_attempts => $3, job_key => $4)",
        queue, flags, max_attempts, key,
    )
    await conn.execute(
        "update graphile_worker._private_jobs set locked_by = $1,"
        " locked_at = now() - $2::text::interval, attempts = $3,"
        " run_at = now() - $2::text::interval,"
        " updated_at = now() - $2::text::interval - interval '1 second'"
        " where id = $4",
        worker_id, locked_ago, attempts, job_id,
    )
    if queue is not None:
        await conn.execute(
            "update graphile_worker._private_job_queues set locked_by = $1,"
            " locked_at = now() - $2::text::interval where queue_name = $3",
            worker_id, locked_ago, queue,
        )
    return job_id


async def age_heartbeat(conn: asyncpg.Connection, worker_id: str, ago: str) -> None:
    await conn.execute(
        "update graphile_worker._gw_workers set last_heartbeat_at = now() - $2::text::interval"
        " where id = $1",
        worker_id, ago,
    )


async def register(conn: asyncpg.Connection, worker_id: str, interval: float = 1.0) -> None:
    await recovery.register_worker(
        conn, SCHEMA, worker_id, heartbeat_interval=interval, tasks=["recovery_task"]
    )


async def job_row(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "select *, run_at - now() as delay from graphile_worker._private_jobs where id = $1",
        job_id,
    )
    assert row is not None
    return row
