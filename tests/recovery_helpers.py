"""Shared helpers of the recovery tests: registry setup and locked jobs made by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg

from graphile_worker_cli import db

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


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, interval: float = 0.05
) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
