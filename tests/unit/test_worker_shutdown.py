"""ShutdownSignal, the OS signal handler context manager, and retry backoff."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from graphile_worker_cli.worker import backoff
from graphile_worker_cli.worker.shutdown import ShutdownSignal, os_signal_handlers


async def test_shutdown_signal_set_from_another_thread_wakes_a_waiter() -> None:
    shutdown = ShutdownSignal()
    waiter = asyncio.create_task(shutdown.wait())
    await asyncio.sleep(0)
    assert not waiter.done() and not shutdown.is_set()
    thread = threading.Thread(target=shutdown.set, args=("from thread",))
    thread.start()
    await asyncio.wait_for(waiter, 5)
    thread.join()
    assert shutdown.is_set() and not shutdown.hurry
    assert shutdown.reason == "from thread"


async def test_second_request_means_hurry() -> None:
    shutdown = ShutdownSignal()
    second = asyncio.create_task(shutdown.wait(times=2))
    shutdown.set("first")
    await asyncio.sleep(0)
    assert not second.done()
    shutdown.set("second")
    await asyncio.wait_for(second, 5)
    assert shutdown.hurry and shutdown.reason == "first" and shutdown.count == 2


async def test_os_signal_handlers_route_signals_and_restore_previous_handlers() -> None:
    seen: list[signal.Signals] = []
    got = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        seen.append(sig)
        got.set()

    def previous(signum: int, frame: object) -> None:
        raise AssertionError("the previous handler must not run inside the context")

    old = signal.signal(signal.SIGHUP, previous)
    try:
        with os_signal_handlers(on_signal):
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(got.wait(), 5)
        assert seen == [signal.SIGHUP]
        assert signal.getsignal(signal.SIGHUP) is previous
    finally:
        signal.signal(signal.SIGHUP, old)


@pytest.mark.parametrize("attempt", [1, 2, 5, 10, 100])
def test_backoff_is_capped_and_jittered(attempt: int) -> None:
    ceiling = min(backoff.CAP_SECONDS, backoff.BASE_SECONDS * 2 ** (min(attempt, 30) - 1))
    for _ in range(50):
        value = backoff.delay(attempt)
        assert ceiling / 2 <= value <= ceiling


def test_os_signal_handlers_off_the_main_thread_leave_signals_alone() -> None:
    before = signal.getsignal(signal.SIGTERM)
    errors: list[BaseException] = []

    async def inside() -> None:
        with os_signal_handlers(lambda sig: None):
            assert signal.getsignal(signal.SIGTERM) is before

    def run() -> None:
        try:
            asyncio.run(inside())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert errors == []
