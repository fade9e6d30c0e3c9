"""Writing job outcomes to PostgreSQL: batched, retried until they land, flushed at exit.

Completions and failures are collected for ``complete_job_batch_delay`` /
``fail_job_batch_delay`` seconds and written with one statement per batch. With a delay of 0
a batch is still formed: everything that finished in the same event-loop turn, or while the
previous statement was in flight, goes out together — under load that is where most of the
throughput comes from.

Every statement used here only touches jobs still locked by this worker (failures also
check the attempt number), so running it again after a lost reply changes nothing: a
batch is retried with backoff until it lands and is never applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeAlias, TypeVar

import asyncpg

from graphile_worker_cli.worker import backoff, store

log = logging.getLogger("gw.worker")

Statement: TypeAlias = Callable[[asyncpg.Connection], Awaitable[None]]
T = TypeVar("T")


async def _write_until_landed(pool: asyncpg.Pool, what: str, statement: Statement) -> None:
    failures = 0
    while True:
        try:
            async with pool.acquire() as conn:
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


class _Batcher(Generic[T]):
    """Collects items and writes them in batches, one batch in flight at a time."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        what: str,
        delay: float,
        write: Callable[..., Awaitable[None]],
        job_id: Callable[[T], int],
        on_landed: Callable[[list[int]], None],
    ) -> None:
        self._on_landed = on_landed
        self._pool = pool
        self._what = what
        self._delay = delay
        self._write = write
        self._job_id = job_id
        self._items: list[T] = []
        self._in_flight: list[T] = []
        self._task: asyncio.Task[None] | None = None
        self._now = asyncio.Event()
        self.statements = 0
        """Statements that landed (a test and benchmark observable)."""

    def add(self, item: T) -> None:
        self._items.append(item)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def job_ids(self) -> list[int]:
        return [self._job_id(item) for item in (*self._items, *self._in_flight)]

    def __len__(self) -> int:
        return len(self._items) + len(self._in_flight)

    async def _run(self) -> None:
        try:
            while self._items:
                if self._delay > 0 and not self._now.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._now.wait(), self._delay)
                else:
                    await asyncio.sleep(0)  # outcomes of this loop turn join the batch
                self._in_flight, self._items = self._items, []
                batch = self._in_flight
                what = f"{self._what} {len(batch)} job(s)"
                write = functools.partial(self._write, batch=batch)
                await _write_until_landed(self._pool, what, write)
                self.statements += 1
                self._in_flight = []
                self._on_landed([self._job_id(item) for item in batch])
        finally:
            self._task = None

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def flush(self) -> None:
        """Write everything now (no more waiting for the delay); return once landed."""
        self._now.set()
        while self._task is not None:
            await asyncio.shield(self._task)


class Settler:
    """Batches completions and failures; hands jobs back; tracks every write in flight so
    shutdown can wait for them. With ``history``, the statements that end a job for good
    also record it in the job history."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        worker_id: str,
        *,
        complete_delay: float = 0.0,
        fail_delay: float = 0.0,
        on_landed: Callable[[list[int]], None] = lambda ids: None,
        history: bool = False,
    ) -> None:
        self._pool = pool
        # Without history the store functions are called exactly as before the feature.
        self._recording: dict[str, bool] = {"history": True} if history else {}
        self._schema = schema
        self._worker_id = worker_id
        self._pending: set[asyncio.Task[None]] = set()
        self._on_landed = on_landed
        self.hand_back_lost = False
        """A hand-back was cancelled or failed: its jobs may still be locked by us."""
        self.cancelled_message: str | None = None
        """Set when the schema has cancel requests: a hand-back then fails the jobs someone
        asked to cancel (with this last_error) instead of letting them run again."""
        self.completions: _Batcher[int] = _Batcher(
            pool, "complete", complete_delay, self._complete, lambda job_id: job_id,
            on_landed,
        )
        self.failures: _Batcher[store.Failure] = _Batcher(
            pool, "record the failure of", fail_delay, self._fail, lambda f: f.job_id, on_landed
        )

    async def _complete(self, conn: asyncpg.Connection, batch: list[int]) -> None:
        await store.complete_jobs(conn, self._schema, self._worker_id, batch, **self._recording)

    async def _fail(self, conn: asyncpg.Connection, batch: list[store.Failure]) -> None:
        await store.fail_jobs(conn, self._schema, self._worker_id, batch, **self._recording)

    def complete(self, job_id: int) -> None:
        """Queue a completion (the job row is deleted when its batch lands)."""
        self.completions.add(job_id)

    def fail(self, failure: store.Failure) -> None:
        """Queue a failed attempt (backoff, last_error, lock cleared when its batch lands)."""
        self.failures.add(failure)

    def give_back(self, job_ids: Sequence[int], delay: float | None = None) -> asyncio.Task[None]:
        """Return jobs without using up an attempt (after ``delay`` seconds if given)."""
        ids = list(job_ids)
        task = asyncio.get_running_loop().create_task(_write_until_landed(
            self._pool, f"hand back {len(ids)} job(s)",
            functools.partial(self._give_back, ids=ids, delay=delay),
        ))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        task.add_done_callback(self._note_lost)
        return task

    async def _give_back(
        self, conn: asyncpg.Connection, *, ids: list[int], delay: float | None
    ) -> None:
        message = self.cancelled_message
        if message is None:
            await store.return_jobs(conn, self._schema, self._worker_id, ids, delay)
            return
        async with conn.transaction():
            cancelled = await store.finish_requested(
                conn, self._schema, self._worker_id, ids, message, **self._recording
            )
            await store.return_jobs(conn, self._schema, self._worker_id, ids, delay)
        if cancelled:
            log.warning(
                "job(s) %s had a cancel request: failed for good as cancelled instead of "
                "handed back", ", ".join(map(str, cancelled)),
                extra={"gw": {"action": "cancelled", "job_ids": cancelled}},
            )

    def cancelled(self, job_ids: Sequence[int], message: str) -> asyncio.Task[None]:
        """Fail cancelled jobs for good with ``message`` and drop their cancel requests."""
        ids = list(job_ids)

        async def write(conn: asyncpg.Connection) -> None:
            await store.finish_cancelled(
                conn, self._schema, self._worker_id, ids, message, **self._recording
            )
            self._on_landed(ids)

        task = asyncio.get_running_loop().create_task(_write_until_landed(
            self._pool, f"record the cancellation of {len(ids)} job(s)", write,
        ))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task
    def _note_lost(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is not None:
            self.hand_back_lost = True

    def all_written(self) -> bool:
        """Every outcome and hand-back given to this settler landed (none queued, in
        flight, cancelled or failed): the worker holds none of those jobs any more."""
        return not self.busy() and not self._pending and not self.hand_back_lost

    def pending_writes(self) -> int:
        """Hand-backs not landed yet (bench/memory.py)."""
        return len(self._pending)

    def busy(self) -> bool:
        """True while some completion or failure is not written yet."""
        return bool(len(self.completions) or len(self.failures))

    def unsettled_ids(self) -> list[int]:
        """Jobs whose outcome is queued or being written (still locked by this worker)."""
        return self.completions.job_ids() + self.failures.job_ids()

    async def drain(self, timeout: float) -> int:
        """Flush every batch and wait for in-flight writes; return how many outcomes were
        still not written after ``timeout`` seconds."""
        flushes = [
            asyncio.get_running_loop().create_task(batch.flush())
            for batch in (self.completions, self.failures)
        ]
        waiting = {*flushes, *self._pending}
        _done, still = await asyncio.wait(waiting, timeout=timeout)
        left = len(self.completions) + len(self.failures) + len(self._pending & still)
        for task in still:
            task.cancel()
        for batch in (self.completions, self.failures):
            batch.cancel()
        return left
