"""Parsing of human durations: ``250ms``, ``2s``, ``5m``, ``1h``, ``1d`` or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta

from graphile_worker_cli.errors import BadInputError

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")

DURATION_HELP = "a duration like 250ms, 2s, 5m, 1h, 1d or a number of seconds"


def parse_duration(value: str | float | int | timedelta) -> float:
    """Return the duration in seconds; raise BadInputError naming what was expected."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise BadInputError(f"invalid duration {value!r}: expected {DURATION_HELP}")
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if match is None:
            raise BadInputError(f"invalid duration {value!r}: expected {DURATION_HELP}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if seconds < 0:
        raise BadInputError(f"invalid duration {value!r}: it must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration, for display and for writing TOML."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    millis = seconds * 1000
    if millis.is_integer():
        return f"{int(millis)}ms"
    return f"{seconds}s"
