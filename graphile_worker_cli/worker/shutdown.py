"""Asking a worker to stop: ``ShutdownSignal`` and the OS signal handlers.

A shutdown has two levels. The first request stops fetching and lets running jobs finish
within the grace period; a second one ("hurry") cuts the grace period short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger("gw.worker")

SHUTDOWN_ABORT_REASON = "worker shutdown"
"""The reason a job's abort signal carries when the worker stops past its grace period."""

OS_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ShutdownSignal:
    """A shareable "please stop" flag: set it from any thread, await it from asyncio.

    Setting it twice asks for an immediate shutdown (the grace period is cut short).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._reason: str | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def set(self, reason: str = "shutdown requested") -> None:
        """Request a shutdown (safe from any thread and from signal handlers)."""
        with self._lock:
            self._count += 1
            if self._reason is None:
                self._reason = reason
            waiters = list(self._waiters)
        for loop, event in waiters:
            if loop.is_closed():
                continue
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def is_set(self) -> bool:
        return self._count > 0

    @property
    def hurry(self) -> bool:
        """True once a second request came in."""
        return self._count > 1

    @property
    def count(self) -> int:
        return self._count

    @property
    def reason(self) -> str | None:
        return self._reason

    async def wait(self, *, times: int = 1) -> None:
        """Return once the signal has been set ``times`` times."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._waiters.append(entry)
        try:
            while self._count < times:
                event.clear()
                if self._count >= times:
                    break
                await event.wait()
        finally:
            with self._lock:
                self._waiters.remove(entry)


@contextlib.contextmanager
def os_signal_handlers(
    on_signal: Callable[[signal.Signals], None],
    signals: tuple[signal.Signals, ...] = OS_SIGNALS,
) -> Iterator[None]:
    """Route SIGINT/SIGTERM/SIGHUP to ``on_signal`` while inside; restore the previous
    handlers on the way out. Must be entered on the running loop's thread."""
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, object] = {}
    if threading.current_thread() is not threading.main_thread():
        log.warning("not on the main thread: OS signals are left to the application")
        signals = ()
    try:
        for sig in signals:
            previous[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, on_signal, sig)
    except NotImplementedError:  # event loops without signal support (Windows)
        log.warning("this event loop cannot handle OS signals; use request_shutdown()")
    try:
        yield
    finally:
        for sig, old in previous.items():
            loop.remove_signal_handler(sig)
            if old is not None:
                signal.signal(sig, old)  # type: ignore[arg-type]


async def sleep_unless_set(event: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``; return True early once ``event`` is set (a worker stopping)."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
