"""The reference's stale-lock reset: locks older than four hours (a crashed worker's) are
cleared at start-up and every few minutes, at a random moment so a fleet does not reset in
step."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import asyncpg

from graphile_worker_cli.errors import DatabaseError
from graphile_worker_cli.worker import backoff, store
from graphile_worker_cli.worker.shutdown import sleep_unless_set

log = logging.getLogger("gw.worker")

FIRST_WITHIN = 60.0
EVERY = (480.0, 600.0)


def _nobody(error: str | None) -> None:
    pass


async def reset_stale_locks(
    pool: asyncpg.Pool, schema: str, reported: Callable[[str | None], None] = _nobody
) -> None:
    """Reset once; a transient error is logged (the next round tries again), a fatal one
    raises ``DatabaseError``. ``reported`` hears None after a reset, else the error."""
    try:
        async with pool.acquire() as conn:
            await store.reset_stale_locks(conn, schema)
    except backoff.FATAL_ERRORS as error:
        reported(str(error))
        raise DatabaseError(f"resetting stale locks failed: {error}") from error
    except backoff.TRANSIENT_ERRORS as error:
        reported(str(error) or type(error).__name__)
        log.warning("resetting stale locks failed (%s); will try again later", error)
    else:
        reported(None)


async def reset_stale_locks_until(
    stopping: asyncio.Event, pool: asyncpg.Pool, schema: str,
    reported: Callable[[str | None], None] = _nobody,
) -> None:
    """Reset now and then until ``stopping`` is set."""
    delay = random.uniform(0.0, FIRST_WITHIN)
    while not await sleep_unless_set(stopping, delay):
        await reset_stale_locks(pool, schema, reported)
        delay = random.uniform(*EVERY)

