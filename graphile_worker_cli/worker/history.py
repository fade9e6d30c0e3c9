"""Job history upkeep (``history_retention``): once a minute one worker of the fleet (a
transaction-scoped advisory lock; the others skip that round) samples the queue depth and
deletes history older than the retention, in bounded batches.

The history rows are written by the settling statements themselves (``worker.settle``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import asyncpg

from graphile_worker_cli.errors import DatabaseError
from graphile_worker_cli.queries import history as queries
from graphile_worker_cli.worker import backoff
from graphile_worker_cli.worker.shutdown import sleep_unless_set

log = logging.getLogger("gw.worker")

EVERY = (55.0, 65.0)
"""Seconds between rounds (at random within, so a fleet does not line up)."""
FIRST_WITHIN = 5.0
PRUNE_BATCH = 10_000
"""Rows one delete removes at most: short transactions, short row locks."""
MAX_BATCHES = 50
"""Deletes per round at most; a larger backlog is worked off over the next rounds."""
STATEMENT_TIMEOUT = "30s"


@dataclass(frozen=True, slots=True)
class UpkeepResult:
    """One round: whether this worker held the upkeep lock, and what it deleted."""

    ran: bool
    history_pruned: int = 0
    samples_pruned: int = 0


async def _locked(conn: asyncpg.Connection, schema: str) -> bool:
    row = await conn.fetchrow(
        queries.BEGIN_MAINTENANCE.sql(schema), queries.maintenance_lock_key(schema),
        STATEMENT_TIMEOUT,
    )
    return bool(row is not None and row["locked"])


async def run_upkeep(
    pool: asyncpg.Pool, schema: str, retention: float, *, batch: int = PRUNE_BATCH
) -> UpkeepResult:
    """One round: this minute's queue-depth sample, then history and samples older than
    ``retention`` seconds deleted, ``batch`` rows per transaction. Skipped (``ran`` false)
    while another worker holds the upkeep lock."""
    history_pruned = samples_pruned = 0
    async with pool.acquire() as conn:
        async with conn.transaction():
            if not await _locked(conn, schema):
                return UpkeepResult(ran=False)
            await conn.execute(queries.SAMPLE_QUEUE_DEPTH.sql(schema))
            samples_pruned = await conn.fetchval(
                queries.PRUNE_SAMPLES.sql(schema), retention, batch
            )
        for _ in range(MAX_BATCHES):
            async with conn.transaction():
                if not await _locked(conn, schema):
                    break
                deleted = await conn.fetchval(
                    queries.PRUNE_HISTORY.sql(schema), retention, batch
                )
            history_pruned += deleted
            if deleted < batch:
                break
    return UpkeepResult(True, history_pruned, samples_pruned)


async def upkeep_until(
    stopping: asyncio.Event, pool: asyncpg.Pool, schema: str, retention: float
) -> None:
    """Run ``run_upkeep`` about once a minute until ``stopping`` is set. A transient
    database error is logged (the next round tries again); a fatal one raises."""
    delay = random.uniform(0.0, FIRST_WITHIN)
    while not await sleep_unless_set(stopping, delay):
        delay = random.uniform(*EVERY)
        try:
            result = await run_upkeep(pool, schema, retention)
        except backoff.FATAL_ERRORS as error:
            raise DatabaseError(f"job history upkeep failed: {error}") from error
        except backoff.TRANSIENT_ERRORS as error:
            log.warning("job history upkeep failed (%s); will try again later", error)
            continue
        if result.history_pruned:
            log.debug("pruned %d job history row(s)", result.history_pruned)
