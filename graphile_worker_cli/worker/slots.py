"""``Slots``: the worker's concurrency slots and its demand for jobs.

``running`` (job id -> running job) is the one source of truth for how many slots are
taken. ``demand`` is how many jobs the worker believes it could get from a fetch: every
event that may have made jobs runnable (a notification, a finished job, an outcome that
unlocked a named queue, a new LISTEN connection, the poll timer) raises it, a fetch
consumes it, and a full batch restores it (there may be more). Raising it also sets
``wakeup``, the event the fetch loop sleeps on. ``news`` counts the events that may have
made jobs of any task ready (all of those but a freed slot): per-task limits forget which
tasks they found dry when it moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from graphile_worker_cli import context
from graphile_worker_cli.job import Job
from graphile_worker_cli.job_transaction import JobCompletion


@dataclass(slots=True)
class Running:
    """A job in a slot: its task and the signal that aborts it."""

    job: Job
    task: asyncio.Task[None]
    abort: context.AbortSignal
    completion: JobCompletion | None = None
    """Its completion in its task's transaction, once the task opened one."""


class Slots:
    """Slots taken by running jobs, and the fetch demand (see the module docstring)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.running: dict[int, Running] = {}
        self.wakeup = asyncio.Event()
        """Set when the fetch loop should look again."""
        self.demand = concurrency
        """Read it anywhere; change it only through the methods below."""
        self.news = 0
        self._serial_unsettled: set[int] = set()
        """Jobs of named queues whose outcome is not written yet (their queue is locked)."""
        self.on_announced: Callable[[], None] | None = None
        """Called after each ``announced`` (the fetch loop's spare fetch; see fetch_loop)."""

    def free(self) -> int:
        return self.concurrency - len(self.running)

    def occupy(self, running: Running) -> None:
        self.running[running.job.id] = running

    def vacate(self, job_id: int) -> None:
        self.running.pop(job_id, None)

    def running_ids(self) -> list[int]:
        return list(self.running)

    # -- demand ---------------------------------------------------------------------------
    def more_jobs(self, count: int = 1) -> None:
        """``count`` more jobs may be runnable (a notification, a slot freed): wake up."""
        self.demand = min(self.concurrency, self.demand + count)
        self.wakeup.set()

    def announced(self, count: int) -> None:
        """``count`` jobs were added (or unlocked): wake up."""
        self.news += 1
        self.more_jobs(count)
        if self.on_announced is not None:
            self.on_announced()

    def anything(self) -> None:
        """Anything may be runnable (notifications may have been missed): wake up."""
        self.news += 1
        self.demand = self.concurrency
        self.wakeup.set()

    def restore(self) -> None:
        """A poll is due, or a fetch came back full: look again on the next round."""
        self.demand = self.concurrency

    def consume(self) -> None:
        """A fetch is about to start. Taken before it is sent, so a nudge arriving while
        it is in flight survives it."""
        self.demand = 0

    # -- named queues ---------------------------------------------------------------------
    def holds_queue(self, job_id: int) -> None:
        """``job_id`` (of a named queue) finished; its queue stays locked until the
        outcome is written."""
        self._serial_unsettled.add(job_id)

    def outcomes_landed(self, job_ids: Iterable[int]) -> None:
        """Outcomes were written: the named queues they unlocked may have runnable jobs,
        and ``run_once`` waits for the last outcomes, so the fetch loop looks again."""
        if self._serial_unsettled:
            unlocked = self._serial_unsettled.intersection(job_ids)
            if unlocked:
                self.news += 1
                self._serial_unsettled.difference_update(unlocked)
                self.demand = min(self.concurrency, self.demand + len(unlocked))
        self.wakeup.set()

    def serial_unsettled(self) -> int:
        """How many named-queue jobs wait for their outcome to land (bench/memory.py)."""
        return len(self._serial_unsettled)
