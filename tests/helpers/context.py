"""``Job`` and ``WorkerContext`` values for tests that need no database, and a task run on
them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import asyncpg

from graphile_worker_cli.context import AbortSignal, Extensions, WorkerContext
from graphile_worker_cli.job import Job
from graphile_worker_cli.tasks import define_task
from graphile_worker_cli.worker_utils import WorkerUtils

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_job(
    payload: Any = None,
    *,
    identifier: str = "some_task",
    attempts: int = 1,
    max_attempts: int = 25,
    queue_name: str | None = None,
    flags: dict[str, bool] | None = None,
) -> Job:
    return Job(
        id=42,
        task_identifier=identifier,
        queue_name=queue_name,
        payload={} if payload is None else payload,
        priority=0,
        run_at=NOW,
        attempts=attempts,
        max_attempts=max_attempts,
        last_error=None,
        created_at=NOW,
        updated_at=NOW,
        key="the-key",
        locked_at=NOW,
        locked_by="test-worker",
        revision=0,
        flags=flags,
    )


def make_context(
    job: Job | None = None,
    *,
    pool: asyncpg.Pool | None = None,
    schema: str = "graphile_worker",
    extensions: Extensions | None = None,
) -> WorkerContext:
    return WorkerContext(
        job=job or make_job(),
        pool=cast(asyncpg.Pool, pool),
        schema=schema,
        worker_id="test-worker",
        extensions=extensions or Extensions(),
        abort_signal=AbortSignal(),
        utils=WorkerUtils(pool, schema=schema) if pool is not None else None,
    )


async def run_task(obj: object, payload: Any, *, identifier: str = "t", attempts: int = 1) -> Any:
    """Define ``obj`` as a task and run it on a job with ``payload``: its outcome."""
    definition = define_task(obj, identifier)
    ctx = make_context(make_job(payload, identifier=identifier, attempts=attempts))
    return await definition(ctx)
