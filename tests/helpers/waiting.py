"""Waiting for a condition: poll it with a deadline, never sleep a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 20.0,
    describe: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s. {describe()}")
        await asyncio.sleep(0.05)


async def resolved(value: bool) -> bool:
    """``value`` as an awaitable, for ``wait_until(lambda: resolved(...))`` on plain state."""
    return value
