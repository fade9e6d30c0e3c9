"""The stall watchdog: a blocked event loop is seen from a thread and reported once."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from graphile_worker_cli import stall_watchdog as watchdog


async def test_a_blocked_loop_is_reported_once_with_its_jobs_and_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dog = watchdog.StallWatchdog(lambda: [(7, "report"), (9, "resize")], worker_id="gw-w")
    dog.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gw.worker"):
            await asyncio.sleep(0.3)
            assert dog.longest_recent() is None
            time.sleep(1.6)  # the mistake being detected
            deadline = time.monotonic() + 5
            while not caplog.records and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
    finally:
        dog.stop()
    [record] = [r for r in caplog.records if "blocked" in r.getMessage()]
    message = record.getMessage()
    assert "worker gw-w was blocked for 1." in message
    assert "job 7 (report), job 9 (resize)" in message
    assert watchdog.FIX in message
    longest = dog.longest_recent()
    assert longest is not None and 1.3 < longest < 2.5


async def test_short_pauses_are_not_stalls(caplog: pytest.LogCaptureFixture) -> None:
    dog = watchdog.StallWatchdog(list, worker_id="gw-w")
    dog.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gw.worker"):
            for _ in range(3):
                time.sleep(0.3)
                await asyncio.sleep(0.05)
    finally:
        dog.stop()
    assert not [r for r in caplog.records if "blocked" in r.getMessage()]
    assert dog.longest_recent() is None


async def test_the_metric_reads_the_running_watchdog_of_a_worker() -> None:
    dog = watchdog.StallWatchdog(list, worker_id="gw-metric")
    dog.start()
    try:
        assert watchdog.longest_recent_stall("gw-metric") is None
        time.sleep(1.3)
        await asyncio.sleep(0.3)
        stall = watchdog.longest_recent_stall("gw-metric")
        assert stall is not None and stall > 1.0
    finally:
        dog.stop()
    assert watchdog.longest_recent_stall("gw-metric") is None
