"""Job history upkeep (``history_retention``): once a minute one worker of the fleet (a
transaction-scoped advisory lock; the others skip that round) samples the queue depth,
says history is on (for WorkerUtils), rolls the closed minutes of history up for the
dashboard's charts and deletes history older than the retention, in bounded batches.

The history rows are written by the settling statements themselves (``worker.settle``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
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
PRUNE_BATCH = 1_000
"""History rows one delete removes at most (each row is one settled batch, up to a few
hundred jobs): short transactions, short row locks."""
MAX_BATCHES = 50
"""Deletes per round at most; a larger backlog is worked off over the next rounds."""
STATEMENT_TIMEOUT = "30s"
ROLLUP_GRACE = 60.0
"""Seconds after a minute ends before it is rolled up: a record is stamped when its
statement starts and lands when it commits."""
ROLLUP_SPAN = 600.0
"""Seconds of history one rollup statement reads at most (a backlog, e.g. the history
that was there before the rollup existed, is read in such steps)."""
ROLLUP_BUDGET = 20.0
"""Seconds of rollup statements per round at most (then the next round goes on)."""


@dataclass(frozen=True, slots=True)
class UpkeepResult:
    """One round: whether this worker held the upkeep lock, and what it deleted (jobs of
    history, depth samples)."""

    ran: bool
    history_pruned: int = 0
    samples_pruned: int = 0
    minutes_rolled: int = 0


async def _locked(conn: asyncpg.Connection, schema: str) -> bool:
    row = await conn.fetchrow(
        queries.BEGIN_MAINTENANCE.sql(schema), queries.maintenance_lock_key(schema),
        STATEMENT_TIMEOUT,
    )
    return bool(row is not None and row["locked"])


async def run_upkeep(
    pool: asyncpg.Pool, schema: str, retention: float, *, batch: int = PRUNE_BATCH
) -> UpkeepResult:
    """One round: this minute's queue-depth sample, history on said (for WorkerUtils),
    history, samples and rolled-up minutes older than ``retention`` seconds deleted,
    ``batch`` rows (history: batches of jobs) per transaction, then the closed minutes
    rolled up. Skipped (``ran`` false) while another worker holds the upkeep lock."""
    history_pruned = samples_pruned = 0
    async with pool.acquire() as conn:
        async with conn.transaction():
            if not await _locked(conn, schema):
                return UpkeepResult(ran=False)
            await conn.execute(queries.SAMPLE_QUEUE_DEPTH.sql(schema))
            samples_pruned = await conn.fetchval(
                queries.PRUNE_SAMPLES.sql(schema), retention, batch
            )
            # Without gw migration 5 (a worker with migrate off): no rollup, no flag.
            state = await conn.fetchrow(queries.HISTORY_STATE.sql(schema), schema)
            rolled = state is not None and state["rolled"]
            if rolled:
                await conn.execute(queries.SAY_RECORDING.sql(schema), retention)
                await conn.fetchval(queries.PRUNE_MINUTES.sql(schema), retention, batch)
        for _ in range(MAX_BATCHES):
            async with conn.transaction():
                if not await _locked(conn, schema):
                    break
                row = await conn.fetchrow(queries.PRUNE_HISTORY.sql(schema), retention, batch)
            deleted = row["deleted"] if row is not None else 0
            history_pruned += row["jobs"] if row is not None else 0
            if deleted < batch:
                break
        minutes_rolled = await _roll_up(conn, schema, retention) if rolled else 0
    return UpkeepResult(True, history_pruned, samples_pruned, minutes_rolled)


async def _roll_up(conn: asyncpg.Connection, schema: str, retention: float) -> int:
    """The closed minutes not rolled up yet, into ``_gw_job_history_minutes``; returns how
    many minutes with history were written."""
    written = 0
    deadline = time.monotonic() + ROLLUP_BUDGET
    while True:
        async with conn.transaction():
            if not await _locked(conn, schema):
                break
            row = await conn.fetchrow(
                queries.ROLL_UP_HISTORY.sql(schema), ROLLUP_GRACE, ROLLUP_SPAN,
                list(queries.WAIT_EDGES), retention,
            )
        if row is None:
            break
        written += row["minutes"]
        if not row["behind"] or time.monotonic() >= deadline:
            break
    return written


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
            log.debug("pruned the history of %d job(s)", result.history_pruned)
