"""Task "resize_image": a plain async function whose payload is a dataclass (validated,
so ``"width": "640"`` becomes 640 and ``"width": "wide"`` fails the job).

    gw add-job resize_image '{"path": "uploads/cat.png", "width": 640}'
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from graphile_worker_cli.context import WorkerContext


@dataclass
class Resize:
    path: str
    width: int
    height: int | None = None


async def task(payload: Resize, ctx: WorkerContext) -> None:
    height = payload.height or payload.width
    # A real task would load the image, resize it and store the result here.
    await asyncio.sleep(0.01)
    ctx.logger.info("resized %s to %dx%d", payload.path, payload.width, height)
