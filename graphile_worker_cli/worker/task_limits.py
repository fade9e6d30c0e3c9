"""``TaskLimits``: per-task concurrency (``max_concurrency``) within one worker.

A task with a limit of N has at most N jobs held by the worker at once: running, or locked
in the local queue. Counting the queued ones too means every job the worker holds can start
as soon as a slot is free, so a saturated task never keeps the local queue from feeding the
other tasks (no head-of-line blocking), and nothing is locked that cannot start soon.

Before each fetch the worker asks for a ``FetchPlan``: the tasks with room (a saturated
task is left out of the fetch entirely) and, for the limited ones whose room is smaller
than the batch, how many jobs of each the fetch may lock (its SQL caps them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from graphile_worker_cli.job import Job


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What one fetch may take."""

    task_ids: list[int]
    """The tasks to fetch jobs of: every task the worker knows but the saturated ones."""
    room: dict[int, int] = field(default_factory=dict)
    """Task id -> the most jobs of it this fetch may lock (only where that is less than
    the batch: a larger room cannot cap anything)."""

    def filled(self, jobs: Iterable[Job]) -> bool:
        """Whether the fetch took all the room of some capped task: the statement may have
        left other tasks' jobs behind for it, so the next round should look again."""
        if not self.room:
            return False
        got = Counter(job.task_id for job in jobs)
        return any(got[task_id] >= room for task_id, room in self.room.items())


class TaskLimits:
    """The limits of the tasks that have one, and the plan of the next fetch."""

    def __init__(self, limits: Mapping[int, int], task_ids: Iterable[int]) -> None:
        self.limits = dict(limits)
        """Task id -> max_concurrency (only tasks with a limit)."""
        self._task_ids = list(task_ids)

    @classmethod
    def of(
        cls, limits: Mapping[int, int], task_ids: Iterable[int], concurrency: int
    ) -> TaskLimits | None:
        """Limits for a worker of ``concurrency`` slots, or None when none can bind (no
        task has a limit below the concurrency): the worker then fetches as it always does."""
        binding = {task_id: limit for task_id, limit in limits.items() if limit < concurrency}
        return cls(binding, task_ids) if binding else None

    def plan(self, held: Iterable[Job], batch: int) -> FetchPlan:
        """The next fetch of up to ``batch`` jobs, given the jobs the worker holds."""
        limits = self.limits
        counts = Counter(job.task_id for job in held if job.task_id in limits)
        room: dict[int, int] = {}
        saturated: set[int] = set()
        for task_id, limit in limits.items():
            left = limit - counts[task_id]
            if left <= 0:
                saturated.add(task_id)
            elif left < batch:
                room[task_id] = left
        task_ids = (
            [task_id for task_id in self._task_ids if task_id not in saturated]
            if saturated else self._task_ids
        )
        return FetchPlan(task_ids, room)

    def saturated(self, held: Iterable[Job]) -> bool:
        """Whether every task the worker knows is at its limit (nothing to fetch)."""
        if len(self.limits) < len(self._task_ids):
            return False
        counts = Counter(job.task_id for job in held)
        return all(counts[task_id] >= limit for task_id, limit in self.limits.items())
