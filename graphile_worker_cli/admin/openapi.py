"""The OpenAPI 3.1 description of the admin API, written by hand."""

from __future__ import annotations

from typing import Any

from graphile_worker_cli.admin.params import (
    JOB_FILTERS,
    MAX_BULK,
    MAX_PAGE,
    STATES,
    WINDOWS,
)
from graphile_worker_cli.admin.service import ACTIONS, MAINTENANCE
from graphile_worker_cli.queries.admin import ERROR_EXCERPT_CHARS
from graphile_worker_cli.version import __version__

_ERROR = {
    "description": "One-line reason",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
        }
    },
}
_OBJECT = {"type": "object"}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or _OBJECT}},
    }


def _get(summary: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": _ok(summary, schema)}, **extra}}


def _post(summary: str, body: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/csrf"}],
        "responses": {
            "200": _ok(summary),
            "400": _ERROR,
            "403": {"description": "read-only mode, CSRF token missing, or cross-origin"},
        },
        **extra,
    }
    if body is not None:
        operation["requestBody"] = {
            "content": {"application/json": {"schema": body}},
            "required": False,
        }
    return {"post": operation}


_JOB_FIELDS = {
    "id": {"type": "integer"},
    "task": {"type": "string"},
    "queue": {"type": ["string", "null"]},
    "state": {"enum": list(STATES)},
    "priority": {"type": "integer"},
    "run_at": {"type": "string", "format": "date-time"},
    "attempts": {"type": "integer"},
    "max_attempts": {"type": "integer"},
    "key": {"type": ["string", "null"]},
    "locked_at": {"type": ["string", "null"], "format": "date-time"},
    "locked_by": {"type": ["string", "null"]},
}
_JOB = {
    "type": "object",
    "properties": {
        **_JOB_FIELDS,
        "payload": {},
        "last_error": {"type": ["string", "null"]},
    },
}
_JOB_ROW = {
    "type": "object",
    "properties": {
        **_JOB_FIELDS,
        "last_error_excerpt": {
            "type": ["string", "null"],
            "description": f"the first {ERROR_EXCERPT_CHARS} characters of last_error",
        },
        "last_error_truncated": {
            "type": "boolean", "description": "whether last_error is longer than the excerpt",
        },
    },
}
_COUNTS = {
    "type": "object",
    "properties": {name: {"type": "integer"} for name in (*STATES, "total")},
}
_ACTION_BODY = {
    "type": "object",
    "properties": {
        "run_at": {"type": "string", "format": "date-time", "description": "reschedule"},
        "priority": {"type": "integer", "description": "reschedule"},
        "attempts": {"type": "integer", "description": "reschedule"},
        "max_attempts": {"type": "integer", "description": "reschedule"},
        "reason": {"type": "string", "description": "fail: the last_error to record"},
    },
}
_FILTER_DOCS = {
    "state": "one of " + ", ".join(STATES),
    "task": "task identifier (exact)",
    "queue": "queue name (exact)",
    "key": "job key (exact)",
    "error": "text anywhere in last_error (case-insensitive)",
    "limit": f"page size, 1 to {MAX_PAGE} (default 50)",
    "offset": "rows to skip (default 0)",
}

_HISTORY_ENTRY = {
    "type": "object",
    "properties": {
        "job_id": {"type": "integer"},
        "task_identifier": {"type": "string"},
        "queue_name": {"type": ["string", "null"]},
        "key": {"type": ["string", "null"]},
        "attempts": {"type": "integer"},
        "max_attempts": {"type": "integer"},
        **{name: {"type": "string", "format": "date-time"}
           for name in ("created_at", "run_at", "finished_at")},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "duration": {"type": ["number", "null"], "description": "seconds, finished - started"},
        "wait": {"type": ["number", "null"], "description": "seconds, started - run_at"},
        "worker_id": {"type": "string"},
        "outcome": {"enum": ["completed", "failed"]},
        "last_error": {"type": ["string", "null"]},
    },
}
_HISTORY_FILTER_DOCS = {
    "task": "task identifier (exact)",
    "failed": "true: only jobs failed for good",
    "limit": f"how many, 1 to {MAX_PAGE} (default 50)",
}


def _series(*names: str) -> dict[str, Any]:
    return {"type": "object", "properties": {
        "t": {"type": "string", "format": "date-time", "description": "bucket start"},
        **{name: {"type": ["number", "null"]} for name in names},
    }}


def schema(root_path: str = "") -> dict[str, Any]:
    """The document; ``root_path`` is where the app is mounted."""
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gw admin API",
            "version": __version__,
            "description": (
                "Inspect and fix a Graphile Worker queue. Writes need the X-CSRF-Token header "
                "(GET /api/session gives it and sets its cookie) unless the request carries "
                "the bearer token; in read-only mode every write is a 403."
            ),
        },
        "servers": [{"url": root_path or "/"}],
        "components": {
            "parameters": {
                "csrf": {
                    "name": "X-CSRF-Token", "in": "header", "required": False,
                    "schema": {"type": "string"},
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
        "paths": {
            "/api/session": _get("Mode, CSRF token, schema and redacted database"),
            "/api/overview": _get(
                "Job counts by state: overall, per task, per queue",
                {"type": "object", "properties": {
                    "counts": _COUNTS,
                    "by_task": {"type": "array", "items": _COUNTS},
                    "by_queue": {"type": "array", "items": _COUNTS},
                }},
            ),
            "/api/jobs": _get(
                "A page of jobs, newest first (no payloads; the start of each last_error)",
                {"type": "object", "properties": {
                    "jobs": {"type": "array", "items": _JOB_ROW},
                    "total": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "offset": {"type": "integer"},
                }},
                parameters=[
                    {"name": name, "in": "query", "required": False,
                     "description": _FILTER_DOCS[name], "schema": {"type": "string"}}
                    for name in JOB_FILTERS
                ],
            ),
            "/api/jobs/{job_id}": {
                "get": {
                    "summary": "One job with payload and last error",
                    "parameters": [job_id],
                    "responses": {"200": _ok("The job", _JOB), "400": _ERROR, "404": _ERROR},
                }
            },
            "/api/jobs/{job_id}/{action}": _post(
                "Act on one job: " + ", ".join(a.replace("_", "-") for a in ACTIONS),
                _ACTION_BODY,
            )
            | {"parameters": [job_id, {"name": "action", "in": "path", "required": True,
                                       "schema": {"enum": [a.replace("_", "-")
                                                           for a in ACTIONS]}}]},
            "/api/jobs/actions": _post(
                f"Act on up to {MAX_BULK} jobs at once",
                {**_ACTION_BODY, "required": ["action", "ids"], "properties": {
                    **_ACTION_BODY["properties"],  # type: ignore[dict-item]
                    "action": {"enum": list(ACTIONS)},
                    "ids": {"type": "array", "items": {"type": "integer"}},
                }},
            ),
            "/api/jobs/remove-by-key": _post(
                "Remove the job with this key (404 when none has it)",
                {"type": "object", "required": ["key"],
                 "properties": {"key": {"type": "string"}}},
            ),
            "/api/history": _get(
                "The job history (history_retention), newest first",
                {"type": "object", "properties": {
                    "available": {"type": "boolean",
                                  "description": "false before gw migration 2"},
                    "entries": {"type": "array", "items": _HISTORY_ENTRY},
                }},
                parameters=[
                    {"name": name, "in": "query", "required": False,
                     "description": description, "schema": {"type": "string"}}
                    for name, description in _HISTORY_FILTER_DOCS.items()
                ],
            ),
            "/api/charts": _get(
                "Chart series of a window: outcomes and queue wait per bucket (from the "
                "history), queue depth (from the minute samples)",
                {"type": "object", "properties": {
                    "available": {"type": "boolean"},
                    "window": {"enum": list(WINDOWS)},
                    "window_seconds": {"type": "integer"},
                    "bucket_seconds": {"type": "integer"},
                    "now": {"type": "string", "format": "date-time"},
                    "outcomes": {"type": "array", "items": _series("completed", "failed")},
                    "wait": {"type": "array", "items": _series("p50", "p95")},
                    "depth": {"type": "array",
                              "items": _series("ready", "scheduled", "locked", "failed")},
                }},
                parameters=[{
                    "name": "window", "in": "query", "required": False,
                    "description": "one of " + ", ".join(WINDOWS) + " (default hour)",
                    "schema": {"enum": list(WINDOWS)},
                }],
            ),
            "/api/queues": _get("Named queues with their locks and job counts"),
            "/api/workers": _get(
                "Registered workers with heartbeats and liveness (late, session alive, stale, "
                "longest stall); other lock holders"
            ),
            "/api/crontabs": _get("Known crontabs: last execution, next run"),
            "/api/maintenance/{operation}": _post(
                "Maintenance: " + ", ".join(m.replace("_", "-") for m in MAINTENANCE),
                {"type": "object", "properties": {
                    "tasks": {"type": "array", "items": {"type": "string"},
                              "description": "cleanup"},
                    "keep": {"type": "array", "items": {"type": "string"},
                             "description": "cleanup: task identifiers to keep"},
                    "worker_ids": {"type": "array", "items": {"type": "string"},
                                   "description": "force-unlock"},
                    "dry_run": {"type": "boolean", "default": True, "description": "sweep"},
                    "threshold": {"type": "number", "description": "sweep, seconds"},
                }},
            ),
            "/api/openapi.json": _get("This document"),
        },
    }
