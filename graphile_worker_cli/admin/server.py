"""Serving the dashboard (``gw admin``): the socket, the uvicorn server, and the
``WorkerUtils`` the app runs on, for the database the settings name."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from graphile_worker_cli import db, embedded
from graphile_worker_cli.admin.app import create_app
from graphile_worker_cli.errors import GraphileWorkerError
from graphile_worker_cli.worker_utils import WorkerUtils

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

    from graphile_worker_cli import config, cron
    from graphile_worker_cli.admin.auth import AdminAuth


async def serve(
    settings: config.Settings,
    *,
    host: str,
    port: int,
    auth: AdminAuth,
    read_only: bool,
    crontabs: list[cron.Crontab],
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Serve the dashboard on host:port for the database the settings name (the embedded
    one when none is) until SIGINT/SIGTERM; ``on_listening(port)`` once the socket is bound
    (the port actually bound: port 0 picks a free one)."""
    async with (
        embedded.database_url(settings) as url,
        await WorkerUtils.connect(
            url, schema=settings.schema_name, prepared_statements=settings.prepared_statements
        ) as worker_utils,
    ):
        app = create_app(
            worker_utils, settings.schema_name, read_only=read_only, auth=auth,
            crontabs=crontabs, database_label=db.redact_url(url),
        )
        sock = listen(host, port)
        server = _server(app)
        if on_listening is not None:
            on_listening(sock.getsockname()[1])
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()


def _server(app: Starlette) -> uvicorn.Server:
    import uvicorn  # the admin extra: imported only when the dashboard is served

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # SIGINT/SIGTERM are how the dashboard is meant to stop: shut down, exit 0.
            # (uvicorn would re-raise the signal afterwards: a traceback for Ctrl-C.)
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return Server(uvicorn.Config(app, log_level="warning", access_log=False))


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or one clear error line (port in use, no such host)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise GraphileWorkerError(f"cannot listen on {host}:{port}: {error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)  # connections wait in the backlog until uvicorn serves them
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise GraphileWorkerError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock
