"""Checking what API callers send: job filters, job ids, action options.

Every problem is a ``BadInputError`` whose message names the value and what was expected;
the routes turn it into a 400 with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphile_worker_cli import job
from graphile_worker_cli.errors import BadInputError

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_BULK = 1000
MAX_TEXT = 512
MAX_JOB_ID = 2**63 - 1  # bigint
JOB_FILTERS = ("state", "task", "queue", "key", "error", "limit", "offset")
HISTORY_FILTERS = ("task", "failed", "limit")
WINDOWS = {"hour": (3600, 60), "day": (86400, 900)}
"""Chart windows: name -> (window seconds, bucket seconds)."""
STATES = tuple(state.value for state in job.JobState)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFilters:
    """One page of the jobs list; None filters match everything."""

    state: str | None = None
    task: str | None = None
    queue: str | None = None
    key: str | None = None
    error: str | None = None
    limit: int = DEFAULT_PAGE
    offset: int = 0

    def error_pattern(self) -> str | None:
        """``error`` as a case-insensitive LIKE pattern matching it anywhere."""
        if self.error is None:
            return None
        escaped = self.error.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"


def job_filters(params: Mapping[str, str]) -> JobFilters:
    """JobFilters from query parameters; empty values mean "any"."""
    unknown = sorted(set(params) - set(JOB_FILTERS))
    if unknown:
        raise BadInputError(
            f"unknown filter {unknown[0]!r}: expected one of {', '.join(JOB_FILTERS)}"
        )
    texts = {name: _text(params.get(name), name) for name in ("task", "queue", "key", "error")}
    state = params.get("state") or None
    if state is not None and state not in STATES:
        raise BadInputError(f"unknown state {state!r}: expected one of {', '.join(STATES)}")
    return JobFilters(
        state=state,
        limit=_whole(params.get("limit"), "limit", 1, MAX_PAGE, DEFAULT_PAGE),
        offset=_whole(params.get("offset"), "offset", 0, 2**62, 0),
        **texts,
    )


def _text(value: str | None, name: str) -> str | None:
    if not value:
        return None
    if len(value) > MAX_TEXT:
        raise BadInputError(f"{name} filter too long: expected at most {MAX_TEXT} characters")
    return _without_nul(value, f"{name} filter")


def _without_nul(value: str, what: str) -> str:
    """PostgreSQL text cannot hold a NUL character: refuse it here, as bad input."""
    if "\x00" in value:
        raise BadInputError(
            f"invalid {what}: it contains a NUL character, which text cannot hold"
        )
    return value


def _whole(value: str | None, name: str, low: int, high: int, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadInputError(f"invalid {name} {value!r}: expected a whole number") from None
    if not low <= number <= high:
        raise BadInputError(f"invalid {name} {number}: expected a number from {low} to {high}")
    return number


def job_id(value: str) -> int:
    """A job id from a URL path segment."""
    try:
        number = int(value)
    except ValueError:
        raise BadInputError(f"invalid job id {value!r}: expected a whole number") from None
    return _in_id_range(number)


def _in_id_range(number: int) -> int:
    if not 1 <= number <= MAX_JOB_ID:
        raise BadInputError(f"invalid job id {number}: expected a positive 64-bit number")
    return number


def job_ids(value: Any) -> list[int]:
    """The ``ids`` of a bulk request: 1 to MAX_BULK job ids."""
    if not isinstance(value, list) or not value:
        raise BadInputError("invalid ids: expected a non-empty list of job ids")
    if len(value) > MAX_BULK:
        raise BadInputError(f"too many ids ({len(value)}): expected at most {MAX_BULK} per call")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise BadInputError(f"invalid job id {item!r}: expected a positive whole number")
        _in_id_range(item)
    return list(dict.fromkeys(value))


def body_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInputError("invalid request body: expected a JSON object")
    return value


def optional_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInputError(f"invalid {name} {value!r}: expected a whole number")
    return value


def optional_time(body: Mapping[str, Any], name: str) -> datetime | None:
    """An ISO 8601 time with a UTC offset (``2026-01-01T09:00:00Z``)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadInputError(f"invalid {name} {value!r}: expected an ISO 8601 time string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInputError(
            f"invalid {name} {value!r}: expected an ISO 8601 time like 2026-01-01T09:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise BadInputError(f"invalid {name} {value!r}: expected a time with a UTC offset or Z")
    return moment


def optional_seconds(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInputError(f"invalid {name} {value!r}: expected a number of seconds")
    if value < 0:
        raise BadInputError(f"invalid {name} {value}: expected a number of seconds >= 0")
    return float(value)


def string_list(body: Mapping[str, Any], name: str, *, required: bool = False) -> list[str]:
    value = body.get(name)
    if value is None and not required:
        return []
    if (
        not isinstance(value, list)
        or (required and not value)
        or not all(isinstance(item, str) and item for item in value)
    ):
        need = "a non-empty list" if required else "a list"
        raise BadInputError(f"invalid {name}: expected {need} of non-empty strings")
    for item in value:
        _without_nul(item, name)
    return value


def optional_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadInputError(f"invalid {name} {value!r}: expected a non-empty string")
    return _without_nul(value, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryFilters:
    """The history list: newest first, of ``task``, failed only."""

    task: str | None = None
    failed: bool = False
    limit: int = DEFAULT_PAGE


def history_filters(params: Mapping[str, str]) -> HistoryFilters:
    """HistoryFilters from query parameters; empty values mean "any"."""
    unknown = sorted(set(params) - set(HISTORY_FILTERS))
    if unknown:
        raise BadInputError(
            f"unknown filter {unknown[0]!r}: expected one of {', '.join(HISTORY_FILTERS)}"
        )
    failed = (params.get("failed") or "false").lower()
    if failed not in ("true", "false", "1", "0"):
        raise BadInputError(f"invalid failed {failed!r}: expected true or false")
    return HistoryFilters(
        task=_text(params.get("task"), "task"),
        failed=failed in ("true", "1"),
        limit=_whole(params.get("limit"), "limit", 1, MAX_PAGE, DEFAULT_PAGE),
    )


def window(value: str | None) -> str:
    """A chart window name (default hour)."""
    name = value or "hour"
    if name not in WINDOWS:
        raise BadInputError(f"unknown window {name!r}: expected one of {', '.join(WINDOWS)}")
    return name
