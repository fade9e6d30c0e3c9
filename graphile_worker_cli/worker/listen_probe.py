"""Does LISTEN on this connection deliver? A transaction pooler (PgBouncer in transaction
mode) accepts LISTEN but hands the server connection to other clients between statements,
so no notification ever reaches the listener: the worker would only seem to listen.

The probe listens on a channel of its own, sends one notification to it from another
connection (the pool), and waits for it. On a real session it arrives at once; behind a
transaction pooler it never does. The answer is a fact about the connection, not a guess
from settings or ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import asyncpg

from graphile_worker_cli.queries import worker as queries
from graphile_worker_cli.worker import backoff

PROBE_TIMEOUT = 5.0


async def delivers(conn: asyncpg.Connection, pool: asyncpg.Pool, schema: str) -> bool:
    """True when a notification sent through ``pool`` reaches a LISTEN on ``conn`` (also
    when the pool has no connection to spare to ask: then LISTEN is assumed to work)."""
    channel = f"gw:probe:{secrets.token_hex(8)}"
    arrived = asyncio.Event()

    def received(_c: object, _pid: int, _channel: str, _payload: str) -> None:
        arrived.set()

    await conn.add_listener(channel, received)
    try:
        try:
            async with pool.acquire(timeout=PROBE_TIMEOUT) as sender:
                await sender.execute(queries.NOTIFY.sql(schema), channel, "probe")
        except TimeoutError:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), PROBE_TIMEOUT)
        return arrived.is_set()
    finally:
        with contextlib.suppress(*backoff.TRANSIENT_ERRORS):
            await conn.remove_listener(channel, received)
