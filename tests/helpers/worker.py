"""An in-process worker for tests: its options, and jobs added and counted with plain SQL."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from graphile_worker_cli.worker import WorkerOptions

S = "graphile_worker"


def make_options(db_url: str, **overrides: Any) -> WorkerOptions:
    values: dict[str, Any] = {
        "database_url": db_url,
        "listen_os_shutdown_signals": False,
        "migrate": False,
        "poll_interval": 0.2,
        "concurrency": 4,
    }
    values.update(overrides)
    return WorkerOptions(**values)


async def add_job(conn: asyncpg.Connection, identifier: str, payload: Any = None,
                  **spec: Any) -> int:
    names = ", ".join(f"{key} := ${i + 3}" for i, key in enumerate(spec))
    sql = f"select id from {S}.add_job($1, $2::json{', ' + names if names else ''})"
    job_id: int = await conn.fetchval(sql, identifier, json.dumps(payload), *spec.values())
    return job_id


async def job_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(f"select count(*) from {S}._private_jobs")
    return count


async def no_jobs(conn: asyncpg.Connection) -> bool:
    return await job_count(conn) == 0
