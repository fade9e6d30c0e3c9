"""``TaskLimits``: per-task concurrency (``max_concurrency``) within one worker.

A task with a limit of N has at most N jobs running in the worker at once: the runner
starts a queued job of it only while fewer than N run (``can_start``), and otherwise takes
the next job of another task, so a task at its limit never holds up the others (no
head-of-line blocking). With a local queue, the worker may also hold a buffer of the task's
jobs: ones that start as soon as a running one of the task ends. The buffer is the task's
share of the queue (in proportion to its share of the slots), and no more than its running
jobs get through in about a second by their recent run times — so none until one of its
jobs has run, and none for a slow task. Without a local queue there is no buffer: every
job the worker locks can start at once.

Before each fetch the worker asks for a ``FetchPlan`` (None: nothing worth fetching): the
tasks with room (a task whose running jobs and buffer are full is left out), the batch,
and, for the limited tasks whose room is smaller than the batch, how many jobs of each the
fetch may lock (its SQL caps them). A task a fetch found nothing of is remembered as dry:
it is no reason to fetch until there is news (``forget_dry``: a notification, the poll, a
named queue unlocked, jobs handed back), though it rides along in any fetch made for
another task. So a worker whose busy task sits at its limit sends no empty fetches for its
idle tasks, and a fetch for the limited task alone asks for just its room.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from graphile_worker_cli.job import Job

log = logging.getLogger("gw.worker")

BUFFER_HORIZON = 1.0
"""Seconds: a task's buffer holds no more of its jobs than its running ones get through in
about this long (by their recent run times), so a buffered job starts soon."""
DURATION_WEIGHT = 0.2
"""Weight of the newest run time in a task's moving average."""

@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What one fetch may take."""

    task_ids: list[int]
    """The tasks to fetch jobs of: every task the worker knows but the ones without room."""
    room: dict[int, int] = field(default_factory=dict)
    """Task id -> the most jobs of it this fetch may lock (only where that is less than
    the batch: a larger room cannot cap anything)."""
    batch: int = 0
    """How many jobs to ask for (0: the caller's own number)."""


class TaskLimits:
    """The limits of the tasks that have one, their running jobs, and the next fetch."""

    def __init__(
        self, limits: Mapping[int, int], task_ids: Iterable[int], *, concurrency: int = 1,
        queue_size: int = 0, names: Mapping[int, str] | None = None,
    ) -> None:
        self.limits = dict(limits)
        """Task id -> max_concurrency (only tasks with a limit)."""
        self._task_ids = list(task_ids)
        self._unlimited = [task_id for task_id in self._task_ids if task_id not in self.limits]
        size = max(0, queue_size)
        self._shares = {task_id: size * limit // max(1, concurrency)
                        for task_id, limit in self.limits.items()}
        """Task id -> the most jobs of it that may wait in the local queue beyond its limit:
        its share of the queue in proportion to its share of the slots."""
        self._started_at: dict[int, float] = {}
        self._run_time: dict[int, float] = {}
        """Task id -> moving average of its jobs' run times (seconds)."""
        self.running: Counter[int] = Counter()
        """Task id -> its jobs running now (limited tasks only; kept by the runner)."""
        self._dry: set[int] = set()
        self._names = dict(names or {})

    @classmethod
    def of(
        cls, limits: Mapping[int, int], task_ids: Iterable[int], concurrency: int,
        queue_size: int = 0, names: Mapping[int, str] | None = None,
    ) -> TaskLimits | None:
        """Limits for a worker of ``concurrency`` slots and a local queue of
        ``queue_size``, or None when none can bind (no task has a limit below the
        concurrency): the worker then fetches as it always does."""
        binding = {task_id: limit for task_id, limit in limits.items() if limit < concurrency}
        if not binding:
            return None
        return cls(binding, task_ids, concurrency=concurrency, queue_size=queue_size,
                   names=names)

    # -- running ------------------------------------------------------------------------------
    def can_start(self, job: Job) -> bool:
        task_id = job.task_id
        if task_id is None:
            return True
        limit = self.limits.get(task_id)
        return limit is None or self.running[task_id] < limit

    def started(self, job: Job) -> None:
        task_id = job.task_id
        limit = None if task_id is None else self.limits.get(task_id)
        if task_id is None or limit is None:
            return
        running = self.running[task_id] + 1
        self.running[task_id] = running
        if self._shares[task_id]:
            self._started_at[job.id] = time.monotonic()
        if running == limit and log.isEnabledFor(logging.DEBUG):
            name = self._names.get(task_id, job.task_identifier)
            log.debug("task %s at its limit (%d running); its other jobs wait", name, limit,
                      extra={"gw": {"action": "task_at_limit", "task": name, "limit": limit}})

    def ended(self, job: Job) -> None:
        task_id = job.task_id
        if task_id is None or task_id not in self.limits:
            return
        self.running[task_id] -= 1
        started = self._started_at.pop(job.id, None)
        if started is not None:
            took = time.monotonic() - started
            average = self._run_time.get(task_id)
            self._run_time[task_id] = (
                took if average is None else average + DURATION_WEIGHT * (took - average)
            )

    def buffer(self, task_id: int) -> int:
        """How many jobs of a limited task may wait in the local queue beyond its limit:
        its share of the queue (in proportion to its share of the slots), no more than its
        running jobs get through within ``BUFFER_HORIZON``; none before one has run."""
        share = self._shares[task_id]
        took = self._run_time.get(task_id)
        if not share or took is None:
            return 0
        return min(share, int(self.limits[task_id] * BUFFER_HORIZON / max(took, 1e-6)))

    def at_limit(self) -> list[int]:
        """The tasks running as many jobs as their limit allows."""
        return [task_id for task_id, limit in self.limits.items()
                if self.running[task_id] >= limit]

    # -- fetching ------------------------------------------------------------------------------
    def plan(self, queued: Callable[[int], int], batch: int) -> FetchPlan | None:
        """The next fetch of up to ``batch`` jobs, given how many jobs of a task wait in
        the local queue; None when no task is worth a fetch (each is dry, or has no room)."""
        limits, dry = self.limits, self._dry
        rooms: dict[int, int] = {}
        wanted = any(task_id not in dry for task_id in self._unlimited)
        for task_id, limit in limits.items():
            buffer, held = self.buffer(task_id), queued(task_id)
            left = limit + buffer - self.running[task_id] - held
            if left <= 0:
                continue
            rooms[task_id] = left
            # With a buffer, refill it once it is half empty, not after every job.
            if not wanted and task_id not in dry and held <= buffer // 2:
                wanted = True
        if not wanted:
            return None
        if any(task_id not in dry for task_id in self._unlimited):
            size = batch
        else:
            size = min(batch, sum(rooms.values()))
        task_ids = (
            self._task_ids if len(rooms) == len(limits)
            else [task_id for task_id in self._task_ids
                  if task_id in rooms or task_id not in limits]
        )
        return FetchPlan(task_ids, {t: r for t, r in rooms.items() if r < size}, size)

    def fetched(self, plan: FetchPlan, jobs: list[Job], considered: int) -> None:
        """What a fetch of ``plan`` found: fewer jobs considered than its batch means the
        tasks it did not cap have no ready jobs left (dry)."""
        dry = self._dry
        if considered < plan.batch:
            capped = Counter(job.task_id for job in jobs) if plan.room else None
            for task_id in plan.task_ids:
                if capped is None or capped[task_id] < plan.room.get(task_id, plan.batch):
                    dry.add(task_id)
        elif dry:
            for job in jobs:
                if job.task_id is not None:
                    dry.discard(job.task_id)

    def forget_dry(self) -> bool:
        """There is news (jobs added or unlocked): every task may have ready jobs again.
        True when some task was dry."""
        if not self._dry:
            return False
        self._dry.clear()
        return True

    def dry(self) -> set[int]:
        return set(self._dry)
