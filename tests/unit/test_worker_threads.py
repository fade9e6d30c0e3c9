"""The daemon thread pool that runs sync handlers under ``gw run``."""

from __future__ import annotations

import asyncio
import threading

import pytest

from graphile_worker_cli.worker.threads import DaemonThreadExecutor


async def test_runs_calls_in_daemon_threads_and_passes_errors_back() -> None:
    executor = DaemonThreadExecutor(2)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(executor)
    names = await asyncio.gather(*(asyncio.to_thread(lambda: threading.current_thread())
                                   for _ in range(6)))
    assert all(thread.daemon and thread.name.startswith("gw-task") for thread in names)
    assert len({thread.name for thread in names}) <= 2

    def boom() -> None:
        raise ValueError("in a thread")

    with pytest.raises(ValueError, match="in a thread"):
        await asyncio.to_thread(boom)


def test_shutdown_does_not_wait_for_a_stuck_call() -> None:
    executor = DaemonThreadExecutor(1)
    release = threading.Event()
    started = threading.Event()

    def stuck() -> None:
        started.set()
        release.wait()

    future = executor.submit(stuck)
    assert started.wait(10)
    executor.shutdown(wait=True)  # returns although the call is still running
    assert not future.done()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(stuck)
    release.set()
    future.result(timeout=10)
