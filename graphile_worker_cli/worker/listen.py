"""LISTEN on ``jobs:insert``, ``worker:migrate`` and ``gw:cancel`` over one dedicated
connection.

The connection is reopened with capped, jittered backoff whenever it drops. Each time it
is (re)established ``on_connected`` runs: notifications may have been missed meanwhile,
so the worker should look for jobs. ``worker_listener`` wires a listener to a worker's
slots: the connection comes from the database URL (its own) or else the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from graphile_worker_cli import db
from graphile_worker_cli.queries import jobs as jobs_queries
from graphile_worker_cli.queries import migrate as migrate_queries
from graphile_worker_cli.queries import worker as queries
from graphile_worker_cli.worker import backoff, store
from graphile_worker_cli.worker.cancel import CancelWatcher
from graphile_worker_cli.worker.events import Events
from graphile_worker_cli.worker.slots import Slots

log = logging.getLogger("gw.worker")

JOBS_INSERT = queries.JOBS_INSERT_CHANNEL
WORKER_MIGRATE = migrate_queries.MIGRATE_CHANNEL
GW_CANCEL = jobs_queries.CANCEL_CHANNEL
LISTEN_BACKOFF_CAP = backoff.CAP_SECONDS
CLOSE_TIMEOUT = 5.0

Connect = Callable[[], Awaitable[asyncpg.Connection]]
Release = Callable[[asyncpg.Connection], Awaitable[None]]
Probe = Callable[[asyncpg.Connection], Awaitable[bool]]


class ListenUndelivered(Exception):
    """LISTEN on the connection delivers nothing (a transaction pooler): stop listening."""


def _decode(payload: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class Listener:
    """Calls ``on_insert(count)`` for each ``jobs:insert`` and ``on_migrate(number,
    breaking)`` for each ``worker:migrate``; ``run()`` returns only when cancelled."""

    def __init__(
        self,
        *,
        connect: Connect,
        release: Release,
        on_insert: Callable[[int], None],
        on_migrate: Callable[[int | None, bool], None],
        on_connected: Callable[[], None],
        probe: Probe | None = None,
        on_lost: Callable[[str], None] = lambda error: None,
        on_restored: Callable[[], None] = lambda: None,
        on_cancel: Callable[[list[int] | None], None] | None = None,
    ) -> None:
        self._on_cancel = on_cancel
        self._probe = probe
        self._connect = connect
        self._release = release
        self._on_insert = on_insert
        self._on_migrate = on_migrate
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._on_restored = on_restored
        self._listening = False
        self._was_lost = False

    def _jobs_insert(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        count = _decode(payload).get("count", 1)
        self._on_insert(count if isinstance(count, int) else 1)

    def _worker_migrate(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        data = _decode(payload)
        number = data.get("migrationNumber")
        self._on_migrate(number if isinstance(number, int) else None, data.get("breaking") is True)

    def _gw_cancel(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if self._on_cancel is None:
            return
        ids = _decode(payload).get("ids")
        if isinstance(ids, list) and all(type(i) is int for i in ids):
            self._on_cancel(ids)
        else:
            self._on_cancel(None)  # too many to name: every worker looks

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen_once()
                failures = 0
                self._lost("connection closed")
                log.warning(
                    "listen connection lost; reconnecting",
                    extra={"gw": {"action": "listen_lost"}},
                )
                await asyncio.sleep(backoff.delay(1, base=0.05))
            except ListenUndelivered:
                return
            except backoff.TRANSIENT_ERRORS as error:
                failures += 1
                self._lost(str(error) or type(error).__name__)
                wait = backoff.delay(failures, base=0.05, cap=LISTEN_BACKOFF_CAP)
                log.warning(
                    "listen connection failed (%s); retrying in %.1fs", error, wait,
                    extra={"gw": {"action": "listen_retry", "attempt": failures}},
                )
                await asyncio.sleep(wait)

    async def _listen_once(self) -> None:
        conn = await self._connect()
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            # jobs:insert last: once it is listened to, every channel is.
            await conn.add_listener(WORKER_MIGRATE, self._worker_migrate)
            if self._on_cancel is not None:
                await conn.add_listener(GW_CANCEL, self._gw_cancel)
            if self._probe is not None:
                if not await self._probe(conn):
                    raise ListenUndelivered
                self._probe = None  # a fact about the connection's path: asked once
            await conn.add_listener(JOBS_INSERT, self._jobs_insert)
            log.debug("listening for new jobs", extra={"gw": {"action": "listen"}})
            self._on_connected()
            self._listening = True
            if self._was_lost:
                self._was_lost = False
                self._on_restored()
            await self._wait_until_lost(conn, lost)
        finally:
            if not conn.is_closed():
                try:
                    await conn.remove_listener(JOBS_INSERT, self._jobs_insert)
                    await conn.remove_listener(WORKER_MIGRATE, self._worker_migrate)
                    if self._on_cancel is not None:
                        await conn.remove_listener(GW_CANCEL, self._gw_cancel)
                except backoff.TRANSIENT_ERRORS:
                    pass
            await self._release(conn)

    def _lost(self, error: str) -> None:
        """Report a loss once per connection listened on (not each failed reconnect)."""
        if self._listening:
            self._listening = False
            self._was_lost = True
            self._on_lost(error)

    @staticmethod
    async def _wait_until_lost(conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        # The termination listener fires when the server closes the socket; the periodic
        # ping also catches a half-open connection that never sees a FIN.
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), timeout=30.0)
            except TimeoutError:
                await asyncio.wait_for(store.ping(conn), timeout=10.0)


class ListenConnections:
    """Where the listen connection comes from: a connection of its own when there is a
    database URL, else one of the pool's, held for as long as it listens."""

    def __init__(self, pool: asyncpg.Pool, url: str | None) -> None:
        self._pool = pool
        self._url = url

    async def connect(self) -> asyncpg.Connection:
        if self._url:
            return await db.connect(self._url)
        conn: asyncpg.Connection = await self._pool.acquire()
        return conn

    async def release(self, conn: asyncpg.Connection) -> None:
        if self._url:
            with contextlib.suppress(*backoff.TRANSIENT_ERRORS):
                await asyncio.wait_for(conn.close(), timeout=CLOSE_TIMEOUT)
            if not conn.is_closed():
                conn.terminate()
        else:
            with contextlib.suppress(*backoff.TRANSIENT_ERRORS):
                await self._pool.release(conn)


def worker_listener(
    pool: asyncpg.Pool,
    url: str | None,
    slots: Slots,
    on_migrate: Callable[[int | None, bool], None],
    probe: Probe | None = None,
    pulse: Callable[[int], object] = lambda count: None,
    events: Events | None = None,
    cancels: CancelWatcher | None = None,
) -> Listener:
    """A listener that raises ``slots``' demand on new jobs and on each (re)connection,
    and tells ``pulse`` (the local queue's refetch delay) how many jobs were announced;
    with ``probe``, it first checks that LISTEN delivers and stops when it does not; with
    ``cancels``, it passes on ``gw:cancel`` and has it look on each (re)connection."""
    connections = ListenConnections(pool, url)

    def jobs_inserted(count: int) -> None:
        if count > 0:
            pulse(count)
            slots.announced(count)

    def connected() -> None:
        slots.anything()
        if cancels is not None:
            cancels.connected()

    return Listener(
        connect=connections.connect,
        release=connections.release,
        on_insert=jobs_inserted,
        on_migrate=on_migrate,
        on_connected=connected,
        on_cancel=cancels.notified if cancels is not None else None,
        probe=probe,
        on_lost=events.listen_lost if events is not None else lambda error: None,
        on_restored=events.listen_restored if events is not None else lambda: None,
    )
