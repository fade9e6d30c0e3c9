"""Task "hello": a plain sync function with the raw JSON payload. gw runs sync functions
in a thread pool, so blocking code (time.sleep, a sync HTTP client) does not stall the
worker; it checks the abort signal so a shutdown can stop it early.

    gw add-job hello '{"name": "Ada"}'
"""

from __future__ import annotations

from typing import Any

from graphile_worker_cli.context import WorkerContext


def task(payload: Any, ctx: WorkerContext) -> None:
    name = payload.get("name", "world") if isinstance(payload, dict) else "world"
    for _ in range(3):
        ctx.abort_signal.raise_if_set()  # the worker is shutting down: stop here
        ctx.abort_signal.wait_sync(0.01)  # stands in for blocking work
    ctx.logger.info("hello, %s!", name)
