"""Task "flaky_webhook": fails on its first attempts and then succeeds, to show retries.
Each failure is stored as the job's last_error and the job runs again after
exp(attempts) seconds (about 3 s, then 7 s).

    gw add-job flaky_webhook '{"url": "https://example.com/hook", "succeed_on_attempt": 3}'
"""

from __future__ import annotations

from pydantic import BaseModel

from graphile_worker_cli.context import WorkerContext


class Webhook(BaseModel):
    url: str
    succeed_on_attempt: int = 3


async def task(payload: Webhook, ctx: WorkerContext) -> None:
    if ctx.attempts < payload.succeed_on_attempt:
        # A real task would POST to the URL; here the endpoint is "down" until then.
        raise ConnectionError(
            f"{payload.url} is not answering (attempt {ctx.attempts} of {ctx.max_attempts})"
        )
    ctx.logger.info("delivered webhook to %s on attempt %d", payload.url, ctx.attempts)
