"""The stall watchdog: a thread that notices when the worker's event loop stops turning.

The loop stamps the time every ``TICK`` seconds; the thread checks the stamp. A stamp older
than ``threshold`` is a stall: the jobs running at that moment are noted (the loop is
frozen, so the list is stable), and when the loop turns again one WARNING names them, the
stall's length and the fix. The longest stall of the last ``window`` seconds (an ongoing
one included) is kept for the heartbeat, the metrics and ``gw workers list``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("gw.worker")

TICK = 0.1
CHECK_EVERY = 0.1
DEFAULT_THRESHOLD = 1.0
DEFAULT_WINDOW = 600.0
FIX = "a blocking call in an async task: make it a sync `def task`, or use `asyncio.to_thread`"

RunningJobs = Callable[[], list[tuple[int, str]]]

_RUNNING: dict[str, StallWatchdog] = {}
"""The watchdog of each worker of this process, by worker id (read by the metrics)."""


def longest_recent_stall(worker_id: str) -> float | None:
    """The longest recent event-loop stall of a worker of this process, in seconds."""
    watchdog = _RUNNING.get(worker_id)
    return watchdog.longest_recent() if watchdog is not None else None


class StallWatchdog:
    """Watches one event loop from a daemon thread; ``start`` it from that loop."""

    def __init__(
        self,
        running_jobs: RunningJobs,
        *,
        worker_id: str = "",
        threshold: float = DEFAULT_THRESHOLD,
        window: float = DEFAULT_WINDOW,
    ) -> None:
        self._running_jobs = running_jobs
        self._worker_id = worker_id
        self._threshold = threshold
        self._window = window
        self._stamp = time.monotonic()
        self._stalls: deque[tuple[float, float]] = deque()
        """(ended at, length) of recent stalls, oldest first."""
        self._stall_started: float | None = None
        self._stall_jobs: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._handle: asyncio.TimerHandle | None = None
        self._thread = threading.Thread(target=self._watch, name="gw-stall-watchdog",
                                        daemon=True)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._stamp = time.monotonic()
        self._handle = loop.call_later(TICK, self._tick, loop)
        self._thread.start()
        _RUNNING[self._worker_id] = self

    def stop(self) -> None:
        self._stop.set()
        if _RUNNING.get(self._worker_id) is self:
            del _RUNNING[self._worker_id]
        if self._handle is not None:
            self._handle.cancel()

    def longest_recent(self) -> float | None:
        """The longest stall of the window in seconds (an ongoing one counts); None if none."""
        now = time.monotonic()
        longest = 0.0
        for ended, length in list(self._stalls):
            if ended >= now - self._window:
                longest = max(longest, length)
        started = self._stall_started
        if started is not None:
            longest = max(longest, now - started)
        return round(longest, 3) if longest > 0 else None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stamp = time.monotonic()
        if not self._stop.is_set():
            self._handle = loop.call_later(TICK, self._tick, loop)

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_EVERY):
            stamp = self._stamp
            now = time.monotonic()
            if self._stall_started is None:
                if now - stamp > self._threshold:
                    with contextlib.suppress(Exception):  # never let the watchdog die
                        self._stall_jobs = list(self._running_jobs())
                    self._stall_started = stamp
            elif stamp > self._stall_started:
                self._stall_ended(self._stall_started, stamp)

    def _stall_ended(self, started: float, resumed: float) -> None:
        length = max(resumed - started - TICK, 0.0)
        self._stall_started = None
        self._stalls.append((resumed, length))
        while self._stalls and self._stalls[0][0] < resumed - self._window:
            self._stalls.popleft()
        jobs = self._stall_jobs
        running = (
            ", ".join(f"job {job_id} ({task})" for job_id, task in jobs)
            if jobs else "no job (gw's own code or a plugin)"
        )
        log.warning(
            "event loop of worker %s was blocked for %.1fs while running %s: %s",
            self._worker_id, length, running, FIX,
            extra={"gw": {"action": "stall", "worker_id": self._worker_id,
                          "stall_seconds": round(length, 3),
                          "job_ids": [job_id for job_id, _ in jobs],
                          "tasks": sorted({task for _, task in jobs})}},
        )
