"""``LocalQueue``: jobs this worker has locked but not started yet.

A fetch may lock more jobs than there are free slots (up to ``size``); they wait here and
go to slots as those free up, without another round trip. Once the queue is down to its
low-water mark the fetch loop tops it up in the background. A job that waits longer than
``ttl`` is handed back (with its attempt restored), and so is everything left at
shutdown. When a fetch returns at most ``refetch_delay_threshold`` jobs (and not a full
batch), ``refetch_delay`` keeps the next one from following at once; enough ``jobs:insert``
notifications meanwhile (``pulse``) cut it short. With ``size`` 0 the queue only passes each
fetched batch to the slots.

Its mode follows the reference's: STARTING, then POLLING while empty, WAITING while it holds
jobs, TTL_EXPIRED after handing back jobs that waited too long, RELEASED at shutdown; each
change is reported (``LocalQueueModeChange``) when the queue is on.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, deque
from collections.abc import Callable

from graphile_worker_cli.job import Job
from graphile_worker_cli.worker.events import Events

log = logging.getLogger("gw.worker")

LOW_WATER_FRACTION = 0.5
ABORT_THRESHOLD_PER_SLOT = 5
"""Without ``refetch_delay_max_abort_threshold``: this many times the batch size (the
reference's default)."""

STARTING, POLLING, WAITING, TTL_EXPIRED, RELEASED = (
    "STARTING", "POLLING", "WAITING", "TTL_EXPIRED", "RELEASED"
)


class LocalQueue:
    """Locked, unstarted jobs in fetch order, each with the loop time it was fetched at."""

    def __init__(
        self,
        size: int,
        *,
        ttl: float,
        refetch_delay: float,
        give_back: Callable[[list[int]], object],
        events: Events,
        refetch_delay_threshold: int = 0,
        refetch_delay_max_abort_threshold: float | None = None,
        jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.5),
        fraction: Callable[[], float] = random.random,
    ) -> None:
        self.size = max(0, size)
        self.ttl = ttl
        self.refetch_delay = refetch_delay
        self.refetch_delay_threshold = refetch_delay_threshold
        self.max_abort_threshold = (
            ABORT_THRESHOLD_PER_SLOT * self.size if refetch_delay_max_abort_threshold is None
            else refetch_delay_max_abort_threshold
        )
        self.mode = STARTING
        self._delaying = False
        self._abort_threshold = math.inf
        self._notified = 0
        """``jobs:insert`` count seen since the refetch delay started."""
        self._fraction = fraction
        self._jobs: deque[tuple[Job, float]] = deque()
        self._counts: Counter[int | None] | None = None
        """Task id -> its queued jobs, once ``count_tasks`` turned the count on."""
        self._low_water = self.size * LOW_WATER_FRACTION
        self._refill = True
        """False after a TTL expiry: no background refills until the queue has run dry."""
        self._fetch_not_before = 0.0
        self._give_back = give_back
        self._events = events
        self._jitter = jitter

    def __len__(self) -> int:
        return len(self._jobs)

    def __bool__(self) -> bool:
        return bool(self._jobs)

    def job_ids(self) -> list[int]:
        return [job.id for job, _ in self._jobs]

    def jobs(self) -> list[Job]:
        return [job for job, _ in self._jobs]

    def count_tasks(self) -> None:
        """Keep a count of the queued jobs of each task from now on (per-task limits)."""
        self._counts = Counter(job.task_id for job, _ in self._jobs)

    def queued_of(self, task_id: int) -> int:
        """Queued jobs of task ``task_id`` (``count_tasks`` must be on)."""
        return self._counts[task_id] if self._counts is not None else 0

    def _taken(self, job: Job) -> None:
        if self._counts is not None:
            self._counts[job.task_id] -= 1

    # -- filling --------------------------------------------------------------------------
    def start(self) -> None:
        """The worker starts fetching: the queue is polling."""
        self._set_mode(POLLING)

    def add(self, jobs: list[Job], now: float) -> None:
        """Queue fetched jobs; a fetch into an empty queue allows background refills again."""
        if not self._jobs:
            self._refill = True
        self._jobs.extend((job, now) for job in jobs)
        if self._counts is not None:
            self._counts.update(job.task_id for job in jobs)
        if self._jobs:
            self._set_mode(WAITING)

    def pop(self) -> Job:
        """The job fetched first (the queue must not be empty)."""
        job = self._jobs.popleft()[0]
        self._taken(job)
        if not self._jobs:
            self._set_mode(POLLING)
        return job

    def next_job(self) -> Job | None:
        """The job fetched first, taken off the queue (None: the queue is empty)."""
        jobs = self._jobs
        if not jobs:
            return None
        job = jobs.popleft()[0]
        self._taken(job)
        if not jobs:
            self._set_mode(POLLING)
        return job

    def next_job_where(self, startable: Callable[[Job], bool]) -> Job | None:
        """The first job fetched that ``startable`` accepts, taken off the queue (None:
        no such job); the jobs before it keep their place."""
        for index, (job, _) in enumerate(self._jobs):
            if startable(job):
                del self._jobs[index]
                self._taken(job)
                if not self._jobs:
                    self._set_mode(POLLING)
                return job
        return None

    def take(self, job_id: int) -> Job | None:
        """Take job ``job_id`` off the queue wherever it is (a cancelled job); None when
        it is not queued."""
        return self.next_job_where(lambda job: job.id == job_id)

    def _set_mode(self, mode: str) -> None:
        old = self.mode
        if old in (mode, RELEASED) or not self.size:
            return
        self.mode = mode
        self._events.queue_mode_change(old, mode)

    def wants_refill(self, demand: int) -> bool:
        """Whether to top the queue up now: jobs may be waiting (``demand``), refills are
        allowed, and the queue is down to its low-water mark."""
        return bool(demand) and self._refill and len(self._jobs) <= self._low_water

    def room(self) -> int:
        return self.size - len(self._jobs)

    def batch_size(self, want: int) -> int:
        """How many jobs to ask for when ``want`` are wanted: an empty queue fills up."""
        return want if self._jobs else max(want, self.size)

    # -- refetch delay ----------------------------------------------------------------------
    def delay_left(self, now: float) -> float:
        """Seconds until the next fetch may go out (0: now). Reports the delay's end."""
        if not self._delaying:
            return 0.0
        left = self._fetch_not_before - now
        if left > 0:
            return left
        self._delaying = False
        self._events.refetch_delay_over(False)
        return 0.0

    def fetch_came_back_short(self, asked: int, now: float, got: int = 0) -> None:
        """A fetch for ``asked`` jobs returned ``got`` (fewer): start the refetch delay
        (jittered) if the queue is on, a delay is set and ``got`` is at most the threshold."""
        if not self.size or self.refetch_delay <= 0 or got > self.refetch_delay_threshold:
            return
        delay = self.refetch_delay * self._jitter()
        self._fetch_not_before = now + delay
        self._delaying = True
        self._notified = 0
        # A random share of the maximum, as the reference draws it (0 would mean "never").
        self._abort_threshold = self._fraction() * self.max_abort_threshold or math.inf
        self._events.refetch_delay_start(delay, asked)

    def pulse(self, count: int) -> bool:
        """``count`` jobs were announced (``jobs:insert``). True when that cut the refetch
        delay short."""
        if not self._delaying:
            return False
        self._notified += count
        if self._notified < self._abort_threshold:
            return False
        self._delaying = False
        self._fetch_not_before = 0.0
        self._events.refetch_delay_over(True)
        return True

    # -- handing back ---------------------------------------------------------------------
    def next_expiry(self) -> float | None:
        """Loop time at which the oldest job's TTL runs out (None: the queue is empty)."""
        return self._jobs[0][1] + self.ttl if self._jobs else None

    def expire(self, now: float) -> int:
        """Hand back the jobs that waited longer than the TTL; return how many."""
        jobs, ttl = self._jobs, self.ttl
        expired: list[int] = []
        while jobs and jobs[0][1] + ttl <= now:
            job = jobs.popleft()[0]
            self._taken(job)
            expired.append(job.id)
        if expired:
            # Jobs are not flowing: no background refills until the queue has run dry,
            # or the same jobs would be fetched and handed back again and again.
            self._refill = False
            self._set_mode(TTL_EXPIRED)
            log.info(
                "handing back %d job(s) that waited longer than %gs in the local queue",
                len(expired), ttl, extra={"gw": {"action": "local_queue_ttl"}},
            )
            self._hand_back(expired)
        return len(expired)

    def hand_back_all(self) -> None:
        """Hand back every queued job (shutdown), at once: other workers may take them."""
        self._delaying = False
        self._set_mode(RELEASED)
        if not self._jobs:
            return
        ids = self.job_ids()
        self._jobs.clear()
        if self._counts is not None:
            self._counts.clear()
        log.info("handing back %d job(s) not started", len(ids),
                 extra={"gw": {"action": "local_queue_return", "count": len(ids)}})
        self._hand_back(ids)

    def _hand_back(self, ids: list[int]) -> None:
        self._give_back(ids)
        self._events.queue_returned(len(ids))
