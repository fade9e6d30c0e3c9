"""The reference's stale-lock reset: locks older than four hours (a crashed worker's) are
cleared at start-up and every few minutes, at a random moment so a fleet does not reset in
step.

Finding them means reading the whole jobs table (locked jobs are in no index), so gw's
workers share the work: a row in ``_gw_maintenance`` says when the oldest lock seen by the
last reset turns four hours old, and until then a reset is skipped without reading the
table (``queries.worker.RESET_STALE_LOCKS_WHEN_DUE``). Every lock over four hours old is
still released at the same moments as the reference releases it. A schema without that
row's table (gw migration 4 not applied, ``--no-migrate``) gets the plain reset each time.
"""

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


async def _reset(conn: asyncpg.Connection, schema: str, worker_id: str) -> None:
    try:
        for _ in range(2):  # a second time only when the row had to be put back
            row = await store.reset_stale_locks_when_due(conn, schema, worker_id)
            if row is not None:
                if row["jobs_reset"] or row["queues_reset"]:
                    log.info(
                        "unlocked %d job(s) and %d queue(s) locked over 4 hours ago",
                        row["jobs_reset"], row["queues_reset"],
                        extra={"gw": {"action": "stale_locks_reset"}},
                    )
                return
    except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError):
        pass
    await store.reset_stale_locks(conn, schema)


async def reset_stale_locks(
    pool: asyncpg.Pool, schema: str, reported: Callable[[str | None], None] = _nobody,
    worker_id: str = "",
) -> None:
    """Reset once (when due); a transient error is logged (the next round tries again), a
    fatal one raises ``DatabaseError``. ``reported`` hears None after a reset (or a check
    that found none due), else the error."""
    try:
        async with pool.acquire() as conn:
            await _reset(conn, schema, worker_id)
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
    reported: Callable[[str | None], None] = _nobody, worker_id: str = "",
) -> None:
    """Reset now and then until ``stopping`` is set."""
    delay = random.uniform(0.0, FIRST_WITHIN)
    while not await sleep_unless_set(stopping, delay):
        await reset_stale_locks(pool, schema, reported, worker_id)
        delay = random.uniform(*EVERY)
