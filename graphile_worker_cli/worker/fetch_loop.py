"""``FetchLoop``: the one loop that decides when to fetch jobs and how many.

It wakes on a ``jobs:insert`` notification, a finished job, an outcome that unlocked a
named queue, the poll timer or a shutdown request (all through ``Slots.wakeup``), and
fetches as many jobs as there are free slots — or, with a local queue, enough to fill it,
topped up in the background once it runs low. With per-task limits (``TaskLimits``), each
fetch leaves out the tasks without room and takes no more of a limited task than it has
room for, and no fetch goes out when every task with room was found dry since the last
news.

A fetched job someone asked to cancel (its worker let it go without acting on the request:
it shut down, its lock was released or it was swept) is failed as cancelled at once
instead of running. The check is a second statement on the fetch's connection, made only
while the cancel watch says the requests table may have rows: most fetches never make it.

A fetch in flight cannot see jobs committed after it started. When jobs are announced (a
``jobs:insert`` notification) while the fetch session is busy, a *spare fetch* goes out at
once on a pooled connection for the slots the fetch in flight did not ask for, instead of
queueing behind it: the same statement (and cancel check), so the same locking and job
order. At most one is in flight; none with a local queue or per-task limits (their fetches
are planned as a whole), nor while jobs of a lost reply may still be held. A finished job
does not start one: the fetch in flight may well have taken what it would look for, and a
drain would otherwise double its fetches on connections without the session's planner
settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from graphile_worker_cli.errors import DatabaseError
from graphile_worker_cli.job import Job
from graphile_worker_cli.worker import backoff, store
from graphile_worker_cli.worker.cancel import CancelWatcher
from graphile_worker_cli.worker.events import Events
from graphile_worker_cli.worker.fetchconn import FetchConnection
from graphile_worker_cli.worker.local_queue import LocalQueue
from graphile_worker_cli.worker.running import JobRunner, shielded
from graphile_worker_cli.worker.settle import Settler
from graphile_worker_cli.worker.slots import Slots
from graphile_worker_cli.worker.task_limits import FetchPlan, TaskLimits

log = logging.getLogger("gw.worker")


class FetchLoop:
    """Fetches jobs into ``queue`` for ``runner`` while ``stopping`` is not set."""

    def __init__(
        self,
        *,
        slots: Slots,
        queue: LocalQueue,
        runner: JobRunner,
        settler: Settler,
        events: Events,
        connection: FetchConnection,
        stopping: asyncio.Event,
        schema: str,
        worker_id: str,
        task_names: dict[int, str],
        forbidden_flags: list[str],
        poll_interval: float,
        limits: TaskLimits | None = None,
        spare: FetchConnection | None = None,
    ) -> None:
        self._slots = slots
        self._queue = queue
        self._runner = runner
        self._settler = settler
        self._events = events
        self._connection = connection
        self._stopping = stopping
        self._schema = schema
        self._worker_id = worker_id
        self._task_names = task_names
        self._task_ids = list(task_names)
        self._forbidden_flags = forbidden_flags
        self._poll_interval = poll_interval
        self._limits = limits
        """None when no task has a limit that can bind: every fetch is the plain one."""
        if limits is not None:
            queue.count_tasks()
        self._news_seen = slots.news
        self._next_poll = 0.0
        self._orphans_possible = False
        """A fetch may have locked jobs whose reply was lost: hand them back first."""
        self._fetch_unanswered = False
        """A fetch was sent and its reply never read (it raised, or was cancelled)."""
        self.cancels: CancelWatcher | None = None
        """Set by the worker when the schema has cancel requests."""
        self._spare = spare if limits is None and not queue.size else None
        self._asking = 0
        """Jobs the fetch in flight on the fetch session asked for (0: none in flight)."""
        self._spare_task: asyncio.Task[None] | None = None
        self._spare_asked = 0
        self._spare_unanswered = False

    async def run(self, *, once: bool) -> None:
        """Fetch until the worker stops; with ``once``, until nothing is left to run."""
        if self._spare is not None:
            self._slots.on_announced = self._announced_during_fetch
        try:
            await self._run(once)
        finally:
            self._slots.on_announced = None
            await self._spare_finished()

    async def _run(self, once: bool) -> None:
        loop = asyncio.get_running_loop()
        self._next_poll = loop.time() + self._poll_interval
        self._queue.start()
        while not self._stopping.is_set():
            self._slots.wakeup.clear()
            now = loop.time()
            want = self._wanted(now, once)
            plan = None
            if want > 0 and self._limits is not None:
                plan = self._plan(self._limits, want)
                if plan is None:
                    want = 0
                    if once and self._drained() and self._limits.forget_dry():
                        # Jobs may have added jobs of a task found dry earlier (no
                        # notifications in --once): one last look at every task.
                        continue
            if want > 0:
                delay = self._queue.delay_left(now)
                if delay > 0:
                    # Woken early by a finished job, a notification (which may cut the
                    # delay short) or shutdown; the next round looks again.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slots.wakeup.wait(), delay)
                elif not await self._fetch_round(want, plan):
                    return
                continue
            if once and self._drained():
                return
            await self._idle(once)

    def _wanted(self, now: float, once: bool) -> int:
        """How many jobs to fetch now (0: none)."""
        slots, queue = self._slots, self._queue
        if not once and now >= self._next_poll:
            slots.restore()
            self._next_poll = now + self._poll_interval
            if self._limits is not None:
                self._limits.forget_dry()
        if queue and queue.expire(now) and self._limits is not None:
            self._limits.forget_dry()  # the jobs handed back are ready again
        if queue:
            # Every slot is busy; top the queue up before it runs dry.
            want = queue.room() if queue.wants_refill(slots.demand) else 0
            if not want and self._limits is not None and slots.demand:
                # Slots are free while the queue holds only jobs of tasks at their limit:
                # those slots are for the other tasks.
                want = slots.free()
        else:
            want = min(slots.free() - self._spare_asked, slots.demand)
        return want

    def _plan(self, limits: TaskLimits, want: int) -> FetchPlan | None:
        """The limits' plan for a fetch of ``want`` jobs (None: nothing worth fetching)."""
        news = self._slots.news
        if news != self._news_seen:
            self._news_seen = news
            limits.forget_dry()
        return limits.plan(self._queue.queued_of, self._queue.batch_size(want))

    async def _fetch_round(self, want: int, plan: FetchPlan | None) -> bool:
        """Fetch and start jobs; False when the worker stopped meanwhile."""
        self._slots.consume()
        ask = self._queue.batch_size(want) if plan is None else plan.batch
        jobs, considered, cancelled = await self._fetch(ask, plan)
        if jobs and self._stopping.is_set():
            # Fetched, never started: hand them back with their attempt restored.
            await shielded(self._settler.give_back([job.id for job in jobs]))
            return False
        loop = asyncio.get_running_loop()
        if plan is not None and self._limits is not None:
            self._limits.fetched(plan, jobs, considered)
        if not jobs:
            self._events.fetch_empty()
        if considered == ask:
            self._slots.restore()  # there may be more
        else:
            self._queue.fetch_came_back_short(ask, loop.time(), got=len(jobs))
        await self._events.jobs_fetched(jobs)
        self._queue.add(jobs, loop.time())
        for job_id in cancelled:
            self._runner.cancel(job_id)  # off the queue, failed for good as cancelled
        self._runner.fill_slots()
        return True

    def _drained(self) -> bool:
        """Nothing running, queued or waiting to be written (``run_once`` is done)."""
        return (
            not self._slots.running and not self._queue and not self._settler.busy()
            and self._spare_task is None
        )

    async def _idle(self, once: bool) -> None:
        """Sleep until woken, the next poll, or the oldest queued job's TTL."""
        wake_at = None if once else self._next_poll
        expiry = self._queue.next_expiry()
        if expiry is not None:
            wake_at = expiry if wake_at is None else min(wake_at, expiry)
        loop = asyncio.get_running_loop()
        timeout = None if wake_at is None else max(0.0, wake_at - loop.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slots.wakeup.wait(), timeout)

    async def _fetch(
        self, want: int, plan: FetchPlan | None
    ) -> tuple[list[Job], int, list[int]]:
        """Lock up to ``want`` jobs (within ``plan``'s tasks and room), retrying with
        backoff while the database is away; also how many jobs the fetch considered (as
        many as ``want``: there may be more) and which of the jobs have a cancel request."""
        task_ids, room = (self._task_ids, None) if plan is None else (plan.task_ids, plan.room)
        failures = 0
        while not self._stopping.is_set():
            try:
                if self._orphans_possible:
                    await self._spare_finished()  # its jobs must be known as held first
                async with self._connection.lease() as conn:
                    if self._orphans_possible:
                        await store.return_orphans(
                            conn, self._schema, self._worker_id, self._held_ids()
                        )
                        self._orphans_possible = False
                    self._fetch_unanswered = True
                    self._asking = want
                    if room:
                        jobs, considered = await store.fetch_jobs_within_room(
                            conn, self._schema, self._worker_id, task_ids, want, room,
                            self._forbidden_flags, self._task_names,
                        )
                    else:
                        jobs = await store.fetch_jobs(
                            conn, self._schema, self._worker_id, task_ids, want,
                            self._forbidden_flags, self._task_names,
                        )
                        considered = len(jobs)
                    self._fetch_unanswered = False
                    cancelled = await self._cancel_requested(conn, jobs)
                    self._asking = 0
                    return jobs, considered, cancelled
            except backoff.FATAL_ERRORS as error:
                self._asking = 0
                self._events.fetch_error(str(error), failures + 1)
                raise DatabaseError(f"fetching jobs failed: {error}") from error
            except backoff.TRANSIENT_ERRORS as error:
                # The statement may have committed with its reply lost: the jobs it locked
                # are ours, and get handed back before the next fetch.
                self._orphans_possible = True
                self._asking = 0
                failures += 1
                self._events.fetch_error(str(error) or type(error).__name__, failures)
                wait = backoff.delay(failures)
                log.warning(
                    "fetching jobs failed (%s); retrying in %.1fs", error, wait,
                    extra={"gw": {"action": "fetch_retry", "attempt": failures}},
                )
                await backoff.pause(self._slots.wakeup, wait)  # the listener back: retry now
        return [], 0, []

    async def _cancel_requested(self, conn: asyncpg.Connection, jobs: list[Job]) -> list[int]:
        """Which of ``jobs`` have a cancel request (only asked while there may be some)."""
        cancels = self.cancels
        if not jobs or cancels is None or not cancels.pending:
            return []
        return await store.requested_among(conn, self._schema, [job.id for job in jobs])

    @property
    def orphans_possible(self) -> bool:
        """Whether this worker may hold jobs it does not know of: a fetch whose reply was
        lost (it raised or was cancelled) and whose jobs were not handed back since."""
        return self._orphans_possible or self._fetch_unanswered or self._spare_unanswered

    def _held_ids(self) -> list[int]:
        """Jobs this worker holds: running, queued, or with an outcome not written yet."""
        return [*self._slots.running_ids(), *self._queue.job_ids(),
                *self._settler.unsettled_ids()]

    # -- the spare fetch ----------------------------------------------------------------------
    def _announced_during_fetch(self) -> None:
        """Jobs were announced: with the fetch session busy, fetch at once on a spare
        connection (see the module docstring)."""
        slots, spare = self._slots, self._spare
        if (
            spare is None or not self._asking or self._spare_task is not None
            or self._orphans_possible or self._stopping.is_set()
        ):
            return
        want = min(slots.free() - self._asking, slots.demand)
        if want <= 0:
            return
        slots.consume()
        self._spare_asked = want
        self._spare_task = asyncio.get_running_loop().create_task(
            self._spare_round(spare, want)
        )

    async def _spare_round(self, spare: FetchConnection, want: int) -> None:
        try:
            fetched = await self._spare_fetch(spare, want)
            if fetched is None:
                return
            jobs, cancelled = fetched
            if jobs and self._stopping.is_set():
                await shielded(self._settler.give_back([job.id for job in jobs]))
                return
            if len(jobs) == want:
                self._slots.restore()  # there may be more
            elif not jobs:
                self._events.fetch_empty()
            await self._events.jobs_fetched(jobs)
            self._queue.add(jobs, asyncio.get_running_loop().time())
            self._spare_asked = 0
            for job_id in cancelled:
                self._runner.cancel(job_id)
            self._runner.fill_slots()
        finally:
            self._spare_asked = 0
            self._spare_task = None
            self._slots.wakeup.set()  # the loop may be waiting for it (once, orphans)

    async def _spare_fetch(
        self, spare: FetchConnection, want: int
    ) -> tuple[list[Job], list[int]] | None:
        """The jobs the spare fetch locked, and those of them with a cancel request; None
        when it failed (the fetch loop's next fetch meets the same trouble, and deals with
        it)."""
        try:
            async with spare.lease() as conn:
                self._spare_unanswered = True
                jobs = await store.fetch_jobs(
                    conn, self._schema, self._worker_id, self._task_ids, want,
                    self._forbidden_flags, self._task_names,
                )
                cancelled = await self._cancel_requested(conn, jobs)
                self._spare_unanswered = False
                return jobs, cancelled
        except (*backoff.FATAL_ERRORS, *backoff.TRANSIENT_ERRORS) as error:
            if self._spare_unanswered:
                self._spare_unanswered = False
                self._orphans_possible = True
            log.debug("the spare fetch failed: %s", error,
                      extra={"gw": {"action": "spare_fetch_failed"}})
            self._slots.anything()
            return None

    async def _spare_finished(self) -> None:
        """Wait for the spare fetch in flight, if any (cancel it when we are cancelled)."""
        task = self._spare_task
        if task is None:
            return
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            task.cancel()
        await asyncio.wait({task})
