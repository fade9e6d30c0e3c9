"""``create_app``: the dashboard as a Starlette application, standalone or mounted.

    app = create_app(worker_utils)                    # or a pool, or a database URL
    outer = Starlette(routes=[Mount("/admin", app=app)])

Given a URL, the app opens its pool on the first request (in the loop that serves it) and
closes it at lifespan shutdown; given a pool or a WorkerUtils, the caller owns it.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeAlias

import asyncpg
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphile_worker_cli import cron, db, worker_utils
from graphile_worker_cli.admin import auth as admin_auth
from graphile_worker_cli.admin.routes import Api
from graphile_worker_cli.admin.service import AdminService

STATIC_DIR = Path(__file__).parent / "static"
PAGE_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
Source: TypeAlias = "worker_utils.WorkerUtils | asyncpg.Pool | str"


class ResponseHeaders:
    """ASGI middleware: the headers every response of the dashboard carries, refusals
    included. Nothing is stored by a cache (API answers hold job data and tokens; a static
    file is revalidated, so an upgraded gw never meets an old script), and no browser
    guesses a content type other than the one sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = admin_auth.relative_path(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "no-cache" if path.startswith("/static/") else "no-store"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                if path.startswith("/api"):
                    headers["Content-Security-Policy"] = API_CSP
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Backend:
    """Builds the service once, on first use, in the event loop that serves requests."""

    def __init__(self, source: Source, schema: str, crontabs: Sequence[cron.Crontab]) -> None:
        self.source = source
        self.schema = schema
        self.crontabs = crontabs
        self._service: AdminService | None = None
        self._owned: worker_utils.WorkerUtils | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> AdminService:
        if self._service is not None:
            return self._service
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._service is None:
                self._service = AdminService(await self._utils(), self.crontabs)
        return self._service

    async def _utils(self) -> worker_utils.WorkerUtils:
        if isinstance(self.source, worker_utils.WorkerUtils):
            return self.source
        if isinstance(self.source, str):
            self._owned = await worker_utils.WorkerUtils.connect(self.source, schema=self.schema)
            return self._owned
        return worker_utils.WorkerUtils(self.source, schema=self.schema)

    async def close(self) -> None:
        if self._owned is not None:
            await self._owned.close()
            self._owned = None
            self._service = None


def create_app(
    utils_or_pool: Source,
    schema: str | None = None,
    *,
    read_only: bool = False,
    auth: admin_auth.AdminAuth | None = None,
    crontabs: Sequence[cron.Crontab] = (),
    database_label: str | None = None,
) -> Starlette:
    """The dashboard (page + JSON API under /api) for one schema.

    ``auth``: a token and/or basic credentials; without, only loopback clients are served.
    ``crontabs``: the parsed crontab items, so the page can show next run times.
    ``database_label``: what to show as the database (redacted before display); defaults to
    the URL when one is given.
    """
    if isinstance(utils_or_pool, worker_utils.WorkerUtils):
        schema = schema or utils_or_pool.schema
    schema = schema or db.DEFAULT_SCHEMA
    db.escape_identifier(schema)
    auth = auth or admin_auth.AdminAuth()
    label = database_label or (utils_or_pool if isinstance(utils_or_pool, str) else None)
    backend = _Backend(utils_or_pool, schema, crontabs)
    api = Api(
        backend.get, read_only=read_only, auth_config=auth,
        database=db.redact_url(label) if label else None,
    )
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return HTMLResponse(
            page.replace("__BASE__", html.escape(root + "/", quote=True)),
            headers={"Content-Security-Policy": PAGE_CSP},
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await backend.close()

    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            *api.routes(),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[
            Middleware(ResponseHeaders),
            Middleware(admin_auth.AdminGuard, auth=auth, read_only=read_only),
        ],
        lifespan=lifespan,
    )
