"""The liveness side of a worker: a thread of its own, with its own event loop and its own
database connection, that holds the worker's liveness lock and writes its heartbeat.

The lock is a session-level advisory lock keyed from the worker id, taken once the
connection opens and held until the session ends. A sweep declares a worker dead only
when its heartbeat is late *and* that lock is free, so a worker whose process lives but
whose event loop (or whole interpreter, in a long C call holding the GIL) is stalled is
never swept: the server keeps its session. A killed process loses its session at once; a
vanished host loses it once TCP keepalives give up (``KEEPALIVE_SETTINGS``).

Being off the main event loop, the heartbeat stays on time while job code blocks that loop,
so ``gw workers list``, ``gw workers check`` and the metrics stay true during a stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from graphile_worker_cli import db
from graphile_worker_cli.errors import GraphileWorkerError
from graphile_worker_cli.recovery import registry
from graphile_worker_cli.recovery.config import WorkerRecoveryConfig

logger = logging.getLogger("gw.recovery")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *db.TRANSIENT_ERRORS,
    GraphileWorkerError,
    OSError,
)
# The server probes an idle client after 10 s and gives up after 3 unanswered probes 5 s
# apart; unacknowledged data is given up on after 30 s. So the session of a host that
# vanished (power loss, network partition) ends, and its liveness lock is freed, within
# about 30 s.
KEEPALIVE_SETTINGS = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
KEEPALIVE_BOUND_SECONDS = 30.0
FIRST_RETRY_DELAY = 0.1
LOCK_RETRY_DELAY = 0.1
STOP_TIMEOUT = 10.0
JOIN_POLL = 0.02

_LAST_BEAT: dict[str, float] = {}
"""When each worker of this process last wrote its heartbeat (monotonic clock)."""


def seconds_since_heartbeat(worker_id: str) -> float | None:
    """Seconds since a worker of this process last wrote its heartbeat; None when it has no
    liveness thread (or has not registered yet)."""
    last = _LAST_BEAT.get(worker_id)
    return time.monotonic() - last if last is not None else None


class LivenessThread:
    """Holds ``worker_id``'s liveness lock and heartbeats until stopped, then deregisters.

    ``longest_stall`` (optional) gives the longest recent event-loop stall in seconds,
    written with every heartbeat into the registry row's metadata.
    """

    def __init__(
        self,
        url: str,
        schema: str,
        worker_id: str,
        config: WorkerRecoveryConfig,
        *,
        tasks: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        prepared_statements: bool = True,
        longest_stall: Callable[[], float | None] | None = None,
    ) -> None:
        self.url = url
        self.schema = schema
        self.worker_id = worker_id
        self.config = config
        self.tasks = list(tasks)
        self.metadata = metadata
        self.prepared_statements = prepared_statements
        self.longest_stall = longest_stall
        self.registered = threading.Event()
        """Set once the worker's row is written with its lock held."""
        self._stop = threading.Event()
        self._deregister = True
        self._holds_no_jobs = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._conn: asyncpg.Connection | None = None
        self._keepalives = True
        self._lock_held_once = False
        self._thread = threading.Thread(
            target=self._main, name=f"gw-liveness-{worker_id}", daemon=True
        )

    # -- control, from any thread -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def request_stop(self, *, deregister: bool = True, holds_no_jobs: bool = False) -> None:
        self._deregister = deregister
        self._holds_no_jobs = holds_no_jobs
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                loop.call_soon_threadsafe(wake.set)

    async def stop(self, *, deregister: bool = True, holds_no_jobs: bool = False) -> None:
        """Stop from an event loop: deregister (when asked), close the session, join.
        ``holds_no_jobs``: see ``registry.deregister_worker``."""
        self.request_stop(deregister=deregister, holds_no_jobs=holds_no_jobs)
        # Polled, not joined in an executor: the default executor's threads may all be
        # busy with sync tasks that shutdown could not stop.
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(JOIN_POLL)

    # -- the thread ---------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException:  # a thread's crash is only printed: say it in the log too
            logger.exception("the liveness thread of worker %s crashed", self.worker_id)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._stop.is_set():
            self._wake.set()
        try:
            await self._beat_until_stopped()
            if self._deregister:
                await self._deregister_row()
        finally:
            _LAST_BEAT.pop(self.worker_id, None)
            await self._close()

    async def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until stopped; True when stopped."""
        wake = self._wake
        if wake is None:  # only _run sets it, before anything sleeps
            return self._stop.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=max(seconds, 0.0))
        return self._stop.is_set()

    async def _beat_until_stopped(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                await self._beat(await self._ensure_session())
            except TRANSIENT_ERRORS as error:
                failures += 1
                await self._close()
                # Retry well before the next beat is due: the lock must be back before the
                # heartbeat could be judged late.
                delay = min(
                    FIRST_RETRY_DELAY * 2 ** min(failures - 1, 10),
                    self.config.heartbeat_interval / 2,
                )
                logger.warning(
                    "heartbeat of worker %s failed (%s); retrying in %.1fs",
                    self.worker_id, str(error).strip() or type(error).__name__, delay,
                )
                if await self._sleep(delay * random.uniform(0.8, 1.0)):
                    return
                continue
            if failures:
                logger.info("heartbeat of worker %s restored", self.worker_id)
            failures = 0
            if await self._sleep(self.config.heartbeat_interval):
                return

    async def _connect(self) -> asyncpg.Connection:
        app_name = f"gw-liveness {self.worker_id}"[:63]
        settings = {"application_name": app_name}
        if self._keepalives:
            settings.update(KEEPALIVE_SETTINGS)
        extra: dict[str, Any] = {} if self.prepared_statements else {"statement_cache_size": 0}
        timeout = max(self.config.heartbeat_interval, 5.0)
        try:
            return await asyncio.wait_for(
                db.connect(self.url, server_settings=settings, **extra), timeout
            )
        except GraphileWorkerError as error:
            if not self._keepalives or "startup parameter" not in str(error):
                raise
            # A pooler (PgBouncer) refuses them: set direct_database_url for a real session.
            logger.warning(
                "the database refused TCP keepalive settings (%s): a vanished host is "
                "detected only by the operating system's defaults; set direct_database_url "
                "to a direct PostgreSQL connection", error,
            )
            self._keepalives = False
            return await self._connect()

    async def _ensure_session(self) -> asyncpg.Connection:
        """An open connection holding the liveness lock."""
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        conn = await self._connect()
        try:
            waited = 0.0
            warned = False
            while not await asyncio.wait_for(
                registry.take_liveness_lock(conn, self.schema, self.worker_id),
                max(self.config.heartbeat_interval, 1.0),
            ):
                # The previous session of this worker is still ending, or a sweeper is
                # testing the lock right now: both let go shortly.
                if not warned and waited >= self.config.heartbeat_interval:
                    logger.warning(
                        "worker %s is waiting for its liveness lock (still held by an older "
                        "session of it)", self.worker_id,
                    )
                    warned = True
                if await self._sleep(LOCK_RETRY_DELAY):
                    raise GraphileWorkerError("stopped while waiting for the liveness lock")
                waited += LOCK_RETRY_DELAY
        except BaseException:
            conn.terminate()
            raise
        if self._lock_held_once:
            logger.info("worker %s took its liveness lock again on a new session", self.worker_id)
        self._lock_held_once = True
        self._conn = conn
        return conn

    async def _beat(self, conn: asyncpg.Connection) -> None:
        """Register if needed, else heartbeat; one round trip either way."""
        timeout = max(self.config.heartbeat_interval, 1.0)
        stall = self.longest_stall() if self.longest_stall is not None else None
        if self.registered.is_set():
            alive = await asyncio.wait_for(
                registry.heartbeat(conn, self.schema, self.worker_id, stall), timeout
            )
            if alive:
                _LAST_BEAT[self.worker_id] = time.monotonic()
                return
            logger.error(
                "worker %s was declared dead by a sweep (its heartbeat was late beyond the "
                "sweep threshold and its liveness session was gone); its jobs were recovered "
                "and may run again elsewhere, and it will not settle them; registering again",
                self.worker_id,
                extra={"gw": {"action": "reregister", "worker_id": self.worker_id}},
            )
        await asyncio.wait_for(
            registry.register_worker(
                conn, self.schema, self.worker_id,
                heartbeat_interval=self.config.heartbeat_interval,
                tasks=self.tasks, metadata=self.metadata,
            ),
            timeout,
        )
        _LAST_BEAT[self.worker_id] = time.monotonic()
        self.registered.set()

    async def _deregister_row(self) -> None:
        if self.registered.is_set():
            await registry.deregister_at_exit(
                self._ensure_session, self.schema, self.worker_id, TRANSIENT_ERRORS,
                holds_no_jobs=self._holds_no_jobs,
            )

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), timeout=registry.DEREGISTER_TIMEOUT)
        if not conn.is_closed():
            conn.terminate()
