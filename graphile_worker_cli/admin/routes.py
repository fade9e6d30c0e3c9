"""The JSON API under /api: each endpoint checks its input, calls the service, answers JSON.

Errors are ``{"error": "<one line>"}``: 400 for bad input (with the reason), 404 for an
unknown job, 503 when the database cannot be reached, 500 for other database errors (and,
logged with its traceback, for any unexpected error).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graphile_worker_cli import errors
from graphile_worker_cli.admin import auth, openapi, params
from graphile_worker_cli.admin.service import ACTIONS, AdminService

_log = logging.getLogger("gw.admin")
ServiceGetter = Callable[[], Awaitable[AdminService]]
Handler = Callable[[Request], Awaitable[Response]]


def error_response(error: errors.GraphileWorkerError) -> JSONResponse:
    if isinstance(error, errors.JobNotFoundError):
        status = 404
    elif isinstance(error, errors.BadInputError):
        status = 400
    elif isinstance(error, errors.DatabaseConnectError):
        status = 503
    else:
        status = 500
    return JSONResponse({"error": error.message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return params.body_object(json.loads(raw))
    except (ValueError, UnicodeDecodeError):
        raise errors.BadInputError("invalid request body: expected JSON") from None
    except RecursionError:
        raise errors.BadInputError(
            "invalid request body: JSON nested too deeply; expected a flat JSON object"
        ) from None


class Api:
    """The endpoints, bound to how they reach the service and to the app's settings."""

    def __init__(
        self, service: ServiceGetter, *, read_only: bool, auth_config: auth.AdminAuth,
        database: str | None,
    ) -> None:
        self.service = service
        self.read_only = read_only
        self.auth = auth_config
        self.database = database

    def routes(self) -> list[Route]:
        def route(path: str, handler: Handler, method: str = "GET") -> Route:
            return Route(path, _guarded(handler), methods=[method])

        return [
            route("/api/openapi.json", self.openapi),
            route("/api/session", self.session),
            route("/api/overview", self.overview),
            route("/api/jobs", self.jobs),
            route("/api/jobs/actions", self.bulk_action, "POST"),
            route("/api/jobs/remove-by-key", self.remove_by_key, "POST"),
            route("/api/jobs/{job_id}", self.job),
            route("/api/jobs/{job_id}/{action}", self.job_action, "POST"),
            route("/api/history", self.history),
            route("/api/charts", self.charts),
            route("/api/queues", self.queues),
            route("/api/workers", self.workers),
            route("/api/crontabs", self.crontabs),
            route("/api/maintenance/{operation}", self.maintenance, "POST"),
        ]

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi.schema(request.scope.get("root_path", "")))

    async def session(self, request: Request) -> Response:
        """What the page needs to start: mode, CSRF token (also set as a cookie), labels."""
        token = request.cookies.get(auth.CSRF_COOKIE) or auth.new_csrf_token()
        service = await self.service()
        response = JSONResponse({
            "read_only": self.read_only,
            "csrf_token": token,
            "schema": service.schema,
            "database": self.database,
            "auth": self.auth.describe(),
        })
        response.set_cookie(
            auth.CSRF_COOKIE, token, httponly=True, samesite="strict",
            path=auth.cookie_path(request.scope), secure=request.url.scheme == "https",
        )
        return response

    async def overview(self, request: Request) -> Response:
        return JSONResponse(await (await self.service()).overview())

    async def jobs(self, request: Request) -> Response:
        filters = params.job_filters(request.query_params)
        return JSONResponse(await (await self.service()).list_jobs(filters))

    async def job(self, request: Request) -> Response:
        job_id = params.job_id(request.path_params["job_id"])
        return JSONResponse(await (await self.service()).job(job_id))

    async def job_action(self, request: Request) -> Response:
        job_id = params.job_id(request.path_params["job_id"])
        action = request.path_params["action"].replace("-", "_")
        body = await _body(request)
        service = await self.service()
        if action in ACTIONS and not await service.existing([job_id]):
            raise errors.JobNotFoundError(f"no job with id {job_id}")
        return JSONResponse(await service.act(action, [job_id], body))

    async def bulk_action(self, request: Request) -> Response:
        body = await _body(request)
        action = body.get("action")
        if not isinstance(action, str):
            raise errors.BadInputError(
                f"invalid action {action!r}: expected one of {', '.join(ACTIONS)}"
            )
        ids = params.job_ids(body.get("ids"))
        return JSONResponse(await (await self.service()).act(action, ids, body))

    async def remove_by_key(self, request: Request) -> Response:
        body = await _body(request)
        key = params.optional_text(body, "key")
        if key is None:
            raise errors.BadInputError("missing key: expected the job key to remove")
        return JSONResponse(await (await self.service()).remove_by_key(key))

    async def history(self, request: Request) -> Response:
        filters = params.history_filters(request.query_params)
        return JSONResponse(await (await self.service()).history(filters))

    async def charts(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"window"})
        if unknown:
            raise errors.BadInputError(f"unknown parameter {unknown[0]!r}: expected window")
        window = params.window(request.query_params.get("window"))
        return JSONResponse(await (await self.service()).charts(window))

    async def queues(self, request: Request) -> Response:
        return JSONResponse({"queues": await (await self.service()).queues()})

    async def workers(self, request: Request) -> Response:
        return JSONResponse(await (await self.service()).workers())

    async def crontabs(self, request: Request) -> Response:
        return JSONResponse(await (await self.service()).crontabs_json())

    async def maintenance(self, request: Request) -> Response:
        operation = request.path_params["operation"].replace("-", "_")
        body = await _body(request)
        return JSONResponse(await (await self.service()).maintain(operation, body))


def _guarded(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except errors.GraphileWorkerError as error:
            return error_response(error)
        except Exception:
            _log.exception("admin API: %s %s failed", request.method, request.url.path)
            return JSONResponse(
                {"error": "internal error in the admin API (see the gw admin log)"},
                status_code=500,
            )

    endpoint.__name__ = handler.__name__
    return endpoint
