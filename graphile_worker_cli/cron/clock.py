"""Time for the scheduler: the real clock, and a ``MockClock`` tests move by hand.

The scheduler reads the time and waits only through a ``Clock``, so a test can replay
hours of minutes, late timers and clock jumps without waiting for any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

MAX_REAL_WAIT_SECONDS = 30.0  # re-read the wall clock at least this often (it may jump)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, when: datetime, stop: asyncio.Event) -> None:
        """Return at ``when``, or earlier when ``stop`` is set. May return early (a
        spurious wake-up): callers re-read ``now()``."""
        ...


async def _wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class SystemClock:
    """The wall clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime, stop: asyncio.Event) -> None:
        delay = (when - self.now()).total_seconds()
        # 1 ms past the boundary, so a timer that fires on time lands in the new minute
        await _wait_or_stop(stop, min(delay + 0.001, MAX_REAL_WAIT_SECONDS))


class MockClock:
    """A clock that moves only when told to. ``sleep_until`` waits for ``advance``/``set``."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2030, 1, 1, tzinfo=UTC)).astimezone(UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (forwards or backwards) and wake whoever is due."""
        self._now = moment.astimezone(UTC)
        due = [entry for entry in self._sleepers if entry[0] <= self._now]
        self._sleepers = [entry for entry in self._sleepers if entry[0] > self._now]
        for _, future in due:
            if not future.done():
                future.set_result(None)
        self._signal()

    def wake_early(self) -> None:
        """Wake every sleeper without moving the time (a timer that fires too soon)."""
        sleepers, self._sleepers = self._sleepers, []
        for _, future in sleepers:
            if not future.done():
                future.set_result(None)
        self._signal()

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)

    @property
    def sleepers(self) -> int:
        """How many callers are waiting for a time still in the future."""
        return len(self._sleepers)

    async def sleep_until(self, when: datetime, stop: asyncio.Event) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (when, future)
        self._sleepers.append(entry)
        self._signal()
        stop_wait: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
        waiters: set[asyncio.Future[Any]] = {future, stop_wait}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            if entry in self._sleepers:
                self._sleepers.remove(entry)
                self._signal()

    async def wait_for_sleepers(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` callers are blocked in ``sleep_until`` (that is, idle)."""
        async with asyncio.timeout(timeout):
            while len(self._sleepers) < count:
                self._changed.clear()
                await self._changed.wait()

    def _signal(self) -> None:
        self._changed.set()
