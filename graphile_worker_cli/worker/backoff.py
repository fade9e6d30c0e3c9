"""Capped exponential backoff with jitter, for every "the database went away, try again"."""

from __future__ import annotations

import asyncio
import contextlib
import random

import asyncpg

from graphile_worker_cli import db

TRANSIENT_ERRORS = db.TRANSIENT_ERRORS
FATAL_ERRORS = (asyncpg.exceptions.SyntaxOrAccessError,)
"""Errors no retry can fix: undefined table/function (schema not migrated), permissions..."""

BASE_SECONDS = 0.1
CAP_SECONDS = 5.0


def delay(attempt: int, *, base: float = BASE_SECONDS, cap: float = CAP_SECONDS) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): exponential, capped,
    and jittered between half and the full value so a fleet does not retry in step."""
    ceiling = min(cap, base * 2 ** max(0, min(attempt, 30) - 1))
    return float(ceiling * random.uniform(0.5, 1.0))


async def pause(wake: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` before a retry, or less once ``wake`` is set (a connection came
    back, or the worker is stopping); clears ``wake``."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), seconds)
    wake.clear()
