"""``ctx.transaction()``: a task's own transaction, in which its job completes.

On a clean exit from the block the job is deleted (only if this worker still holds it, at
this attempt), and then the transaction commits. The task's writes and the job's
completion land together or not at all, so a worker that dies between the commit and the
settle cannot run the job again. An exception in the block rolls everything back and the
job goes on as usual (it fails and is retried if the task lets the exception out).

The worker makes a ``JobCompletion`` for a job run when its task first opens a transaction
(``Completions.completion_for``; most runs never do) and reads its ``state`` when the task
ends: after a commit there is nothing left for the settler to write.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TypeVar

import asyncpg

from graphile_worker_cli.errors import JobLockLostError
from graphile_worker_cli.job import Job

T = TypeVar("T")

CompleteStatement = Callable[[asyncpg.Connection, Job], Awaitable[bool]]
"""Completes the job on the connection (in its transaction); False when the job is no
longer this worker's (the worker's ``store.complete_job_in_transaction``)."""


_REFUSED_COMMITS = (asyncpg.IntegrityConstraintViolationError, asyncpg.TransactionRollbackError)
"""Errors of a commit that certainly rolled back (a deferred constraint, a serialization
failure, a deadlock); after any other, the commit may have landed."""


class TransactionState(enum.Enum):
    NONE = "none"
    """No transaction opened, or the last one rolled back: the job is not complete."""
    OPEN = "open"
    COMMITTED = "committed"
    """The job completed with the task's transaction."""
    UNKNOWN = "unknown"
    """The commit was sent and no answer came back: the job may or may not be complete."""


@dataclass(frozen=True, slots=True)
class InTransactionCompletion:
    """What every job run of one worker shares: its pool and the completion statement."""

    pool: asyncpg.Pool
    complete: CompleteStatement


class Completions(Protocol):
    """Where a context finds its job run's completion (the worker's ``JobRunner``)."""

    def completion_for(self, job: Job) -> JobCompletion:
        """The run's completion, made on first use; raises ``RuntimeError`` when the run
        cannot complete in a transaction (it is over, or a batch task's). Called on the
        worker's event loop."""
        ...


class JobCompletion:
    """One job run's completion in its task's transaction (at most one committed)."""

    __slots__ = (
        "_conn", "_finishing", "_job", "_refused", "_shared", "_tx", "abandoned", "ended",
        "state",
    )

    def __init__(
        self, job: Job, shared: InTransactionCompletion, *, refused: str | None = None
    ) -> None:
        self._job = job
        self._shared = shared
        self._refused = refused
        self.state = TransactionState.NONE
        self.ended = False
        """Set by the worker when the run is over: no transaction may start after it, and
        one still open then can no longer complete the job."""
        self.abandoned: str | None = None
        """Why the worker gave up on the run (it timed out): from then on no transaction
        completes the job, even one opened before."""
        self._finishing: asyncio.Future[None] | None = None
        """Set while a completion and its commit are in flight."""
        self._conn: Any = None
        self._tx: Any = None

    async def begin(self) -> asyncpg.Connection:
        self._check_can_begin()
        pool = self._shared.pool
        conn = await pool.acquire()
        try:
            tx = conn.transaction()
            await tx.start()
        except BaseException:
            await pool.release(conn)
            raise
        self._conn, self._tx, self.state = conn, tx, TransactionState.OPEN
        return conn

    def _check_can_begin(self) -> None:
        job = f"job {self._job.id} ({self._job.task_identifier})"
        if self._refused is not None:
            raise RuntimeError(self._refused)
        if self.abandoned is not None:
            raise JobLockLostError(
                f"{job} {self.abandoned}: ctx.transaction() can no longer complete it"
            )
        if self.ended:
            raise RuntimeError(f"ctx.transaction(): the run of {job} is over")
        if self.state is TransactionState.OPEN:
            raise RuntimeError(f"ctx.transaction() is already open for {job}; use its connection")
        if self.state is not TransactionState.NONE:
            raise RuntimeError(
                f"ctx.transaction() already completed {job}: one transaction per run may "
                "complete it"
            )

    async def end(self, error: BaseException | None) -> None:
        """Complete the job and commit (``error`` None), else roll back."""
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        try:
            if error is not None:
                await self._roll_back(conn, tx)
                return
            job = f"job {self._job.id} ({self._job.task_identifier})"
            if self.abandoned is not None or self.ended:
                # A sync task's thread the worker stopped waiting for: the job's outcome
                # is already decided (timed out, or handed back), not this commit's.
                await self._roll_back(conn, tx)
                why = self.abandoned or "ran past the end of its run"
                raise JobLockLostError(f"{job} {why}: its transaction was rolled back")
            self._finishing = asyncio.get_running_loop().create_future()
            try:
                await self._complete_and_commit(conn, tx, job)
            finally:
                self._finishing.set_result(None)
                self._finishing = None
        finally:
            await self._shared.pool.release(conn)

    async def _complete_and_commit(self, conn: asyncpg.Connection, tx: Any, job: str) -> None:
        try:
            ours = await self._shared.complete(conn, self._job)
        except BaseException:
            await self._roll_back(conn, tx)
            raise
        if not ours:
            await self._roll_back(conn, tx)
            raise JobLockLostError(
                f"{job} is no longer locked by this worker at this attempt; its "
                "transaction was rolled back"
            )
        try:
            await tx.commit()
        except _REFUSED_COMMITS:
            self.state = TransactionState.NONE  # the server rolled it back
            raise
        except BaseException:
            self.state = TransactionState.UNKNOWN  # lost connection, cancelled...
            raise
        self.state = TransactionState.COMMITTED

    async def give_up(self, why: str | None = None) -> TransactionState:
        """The worker is done with the run (``why`` None: it is over) or gave up on it
        (``why``: it timed out): no transaction completes the job from now on. A
        completion already in flight is waited for, so the state returned is final."""
        if why is None:
            self.ended = True
        elif self.abandoned is None:
            self.abandoned = why
        finishing = self._finishing
        if finishing is not None:
            await asyncio.shield(finishing)
        return self.state

    async def _roll_back(self, conn: asyncpg.Connection, tx: Any) -> None:
        self.state = TransactionState.NONE
        try:
            await tx.rollback()
        except Exception:
            # Its transaction state is unknown: the connection must not be reused. The
            # error that caused the rollback, if any, is the one worth raising.
            conn.terminate()
        except BaseException:
            conn.terminate()
            raise


class JobTransaction:
    """What ``ctx.transaction()`` returns: ``async with`` it in an async task (it gives an
    asyncpg connection), ``with`` it in a sync task's thread (it gives a ``SyncConnection``)."""

    def __init__(
        self, completions: Completions, job: Job,
        run_coroutine: Callable[[Awaitable[Any]], Any],
    ) -> None:
        self._completions = completions
        self._job = job
        self._run = run_coroutine
        self._completion: JobCompletion | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        if self._completion is not None:
            raise RuntimeError("a ctx.transaction() object is entered once; call it again")
        self._completion = self._completions.completion_for(self._job)
        return await self._completion.begin()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._completion is not None:
            await self._completion.end(error)

    def __enter__(self) -> SyncConnection:
        if _on_event_loop():
            raise RuntimeError(
                "an async task writes `async with ctx.transaction() as conn:`; `with` is for "
                "sync tasks, which run in a thread"
            )
        conn: asyncpg.Connection = self._run(self.__aenter__())
        return SyncConnection(conn, self._run)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._run(self.__aexit__(kind, error, traceback))


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class SyncConnection:
    """The transaction's connection for a sync task: each call runs on the worker's event
    loop (an asyncpg connection belongs to it) and blocks the task's thread until done."""

    def __init__(
        self, conn: asyncpg.Connection, run_coroutine: Callable[[Awaitable[Any]], Any]
    ) -> None:
        self._conn = conn
        self._run = run_coroutine

    @property
    def connection(self) -> asyncpg.Connection:
        """The asyncpg connection itself, to hand to coroutines run with
        ``ctx.run_coroutine`` (e.g. ``ctx.add_job(..., conn=tx.connection)``); never call
        its methods from the thread directly."""
        return self._conn

    def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        status: str = self._run(self._conn.execute(query, *args, timeout=timeout))
        return status

    def executemany(
        self, command: str, args: Iterable[Any], *, timeout: float | None = None
    ) -> None:
        self._run(self._conn.executemany(command, args, timeout=timeout))

    def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        rows: list[Any] = self._run(self._conn.fetch(query, *args, timeout=timeout))
        return rows

    def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return self._run(self._conn.fetchrow(query, *args, timeout=timeout))

    def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any:
        return self._run(self._conn.fetchval(query, *args, column=column, timeout=timeout))
