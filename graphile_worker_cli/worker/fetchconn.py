"""The connection the worker fetches jobs on: its own, held for the worker's lifetime.

Two reasons it is not a pool connection:

- no acquire/release per fetch (asyncpg resets a connection on release: one more round
  trip each time);
- its planner settings. A fetch wants the first runnable jobs in (priority, run_at) order,
  which gw's ``_gw_jobs_fetch_index`` (or the reference's ``jobs_main_index``) partial
  index gives directly. Right after a burst of inserts, before autovacuum has analyzed the
  table, PostgreSQL guesses that only a handful of rows match and plans a scan of *every*
  runnable row plus a sort, on each fetch (~4x the cost per job on 50,000 waiting jobs).
  Sequential and bitmap scans are therefore disabled on this session only, and JIT with
  them (the disabled paths' huge cost estimates would otherwise trigger JIT compilation of
  every fetch). The settings are startup parameters, so asyncpg's reset (``RESET ALL``)
  keeps them.

Without a database URL (the caller passed its own pool), or without prepared statements
(PgBouncer in transaction mode rejects startup parameters and pins nothing), it falls back
to leasing a pool connection per fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from graphile_worker_cli import db

PLANNER_SETTINGS = {"enable_seqscan": "off", "enable_bitmapscan": "off", "jit": "off"}
CLOSE_TIMEOUT = 5.0


class FetchConnection:
    """``async with fetch_conn.lease() as conn``: the fetch session (opened on first use,
    dropped after an error so the next lease reconnects)."""

    def __init__(self, pool: asyncpg.Pool, url: str | None, *, dedicated: bool) -> None:
        self._pool = pool
        self._url = url if dedicated else None
        self._conn: asyncpg.Connection | None = None

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[asyncpg.Connection]:
        if self._url is None:
            # Back to the pool in the background: the fetched jobs need not wait for
            # asyncpg's reset round trip.
            pooled = await self._pool.acquire()
            try:
                yield pooled
            finally:
                db.release_soon(self._pool, pooled, _RELEASING)
            return
        conn = self._conn
        if conn is None or conn.is_closed():
            conn = self._conn = await db.connect(self._url, server_settings=PLANNER_SETTINGS)
        try:
            yield conn
        except BaseException:
            # The session's state is unknown (a statement may still be running): drop it.
            self._conn = None
            conn.terminate()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), timeout=CLOSE_TIMEOUT)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            conn.terminate()


_RELEASING: set[asyncio.Task[None]] = set()
"""Strong references to background releases (the loop only keeps weak ones)."""
