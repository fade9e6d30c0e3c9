"""Task "send_email": a typed payload. The model is the payload; a job whose payload does
not validate fails with a clear last_error (e.g. ``field "to": Field required``).

    gw add-job send_email '{"to": "ada@example.com", "subject": "Welcome"}'
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from graphile_worker_cli.context import WorkerContext
from graphile_worker_cli.tasks import TaskHandler


class SendEmail(TaskHandler):
    IDENTIFIER = "send_email"

    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    subject: str
    body: str = ""

    async def run(self, ctx: WorkerContext) -> None:
        # A real task would talk to an SMTP server or an email API here.
        await asyncio.sleep(0.05)
        ctx.logger.info("sent %r to %s", self.subject, self.to, extra={"gw": {"to": self.to}})
