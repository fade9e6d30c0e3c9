"""Writing a job's outcome to PostgreSQL, retried until it lands.

Every statement used here only touches jobs still locked by this worker, so running it
again after a lost reply is harmless. ``settle`` is meant to be wrapped in
``asyncio.shield`` by callers: a shutdown must never lose the final write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import asyncpg

from graphile_worker_cli.queries import worker as queries
from graphile_worker_cli.worker import backoff

log = logging.getLogger("gw.worker")

Statement: TypeAlias = Callable[[asyncpg.Connection], Awaitable[None]]


class Settler:
    """Runs settling statements on the pool; tracks the in-flight ones so shutdown can wait."""

    def __init__(self, pool: asyncpg.Pool, schema: str, worker_id: str) -> None:
        self._pool = pool
        self._schema = schema
        self._worker_id = worker_id
        self._pending: set[asyncio.Task[None]] = set()

    def _submit(self, what: str, statement: Statement) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._retry(what, statement))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _retry(self, what: str, statement: Statement) -> None:
        failures = 0
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await statement(conn)
                if failures:
                    log.info("%s settled after %d retries", what, failures)
                return
            except backoff.TRANSIENT_ERRORS as error:
                failures += 1
                wait = backoff.delay(failures)
                log.warning(
                    "could not %s (%s); retrying in %.1fs", what, error, wait,
                    extra={"gw": {"action": "settle_retry", "attempt": failures}},
                )
                await asyncio.sleep(wait)

    def complete(self, job_ids: list[int]) -> asyncio.Task[None]:
        return self._submit(
            f"complete job(s) {job_ids}",
            lambda c: queries.complete_jobs(c, self._schema, self._worker_id, job_ids),
        )

    def fail(self, failures: list[queries.Failure]) -> asyncio.Task[None]:
        ids = [f.job_id for f in failures]
        return self._submit(
            f"record the failure of job(s) {ids}",
            lambda c: queries.fail_jobs(c, self._schema, self._worker_id, failures),
        )

    def give_back(self, job_ids: list[int], delay: float | None = None) -> asyncio.Task[None]:
        """Return jobs without using up an attempt (after ``delay`` seconds if given)."""
        return self._submit(
            f"hand back job(s) {job_ids}",
            lambda c: queries.return_jobs(c, self._schema, self._worker_id, job_ids, delay),
        )

    async def drain(self, timeout: float) -> list[asyncio.Task[None]]:
        """Wait for in-flight writes; return those still not landed after ``timeout``."""
        pending = set(self._pending)
        if not pending:
            return []
        _done, still = await asyncio.wait(pending, timeout=timeout)
        return list(still)
