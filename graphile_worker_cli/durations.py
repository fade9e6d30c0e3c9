"""Parsing of human durations: ``250ms``, ``2s``, ``5m``, ``1h``, ``1d``.

Text always carries its unit: ``2000`` is milliseconds to the reference's flags and would be
seconds to gw's, so a bare number (other than ``0``) is refused with both readings.
A number given in code (``WorkerOptions(poll_interval=2.0)``) is seconds.
"""

from __future__ import annotations

import re
from datetime import timedelta

from graphile_worker_cli.errors import BadInputError

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")

DURATION_HELP = "a duration like 250ms, 2s, 5m, 1h or 1d"


class BareNumberError(BadInputError):
    """A duration written as a bare number: milliseconds or seconds?"""


def bare_number_message(number: object, quote: str = "") -> str:
    """The error for a duration written without a unit, showing both readings."""
    return f"{number}: add a unit, e.g. {quote}{number}ms{quote} or {quote}{number}s{quote}"


def parse_duration(value: str | float | int | timedelta) -> float:
    """Return the duration in seconds; raise BadInputError naming what was expected.

    Text needs a unit (``0`` excepted); numbers are seconds.
    """
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
        number, unit = match.groups()
        if unit is None:
            if float(number) != 0:
                raise BareNumberError(bare_number_message(number))
            unit = "s"
        seconds = float(number) * _UNIT_SECONDS[unit]
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
