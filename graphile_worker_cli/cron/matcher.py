"""The five time fields of a crontab line and the test "is this minute due?".

Field syntax is the reference's: ``*``, ``*/n``, ``n``, ``a-b`` and comma lists of those.
Day of week runs 0-6 with 0 for Sunday (7 is accepted as another Sunday). When both day of
month and day of week are restricted, a minute matches if either one does (classic cron).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from graphile_worker_cli.errors import CrontabError

ONE_MINUTE = timedelta(minutes=1)

_NUMBER = re.compile(r"^[0-9]+$")
_RANGE = re.compile(r"^([0-9]+)-([0-9]+)$")
_WILDCARD = re.compile(r"^\*(?:/([0-9]+))?$")
FIELD_CHARS = r"[0-9*/,-]+"
EXPECTED_SYNTAX = "a number, a range a-b, * or */n (or a comma list of those)"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One time field: its name and the values it may take."""

    name: str
    low: int
    high: int
    wraps: bool = False  # day of week: high + 1 (7) means low (0, Sunday)


MINUTE = FieldSpec("minute", 0, 59)
HOUR = FieldSpec("hour", 0, 23)
DAY_OF_MONTH = FieldSpec("day of month", 1, 31)
MONTH = FieldSpec("month", 1, 12)
DAY_OF_WEEK = FieldSpec("day of week", 0, 6, wraps=True)
FIELDS = (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)


class FieldError(CrontabError):
    """One time field is not valid; the parser adds where it was found."""

    def __init__(self, field: FieldSpec, text: str, problem: str) -> None:
        self.field = field
        self.text = text
        self.problem = problem
        super().__init__(f"{field.name} field {text!r}: {problem}")


def parse_field(field: FieldSpec, text: str) -> tuple[int, ...]:
    """The sorted distinct values that ``text`` selects; FieldError when it is not valid."""
    values: set[int] = set()
    for part in text.split(","):
        values.update(_parse_part(field, text, part))
    return tuple(sorted(values))


def _parse_part(field: FieldSpec, text: str, part: str) -> list[int]:
    if _NUMBER.match(part):
        return [_checked(field, text, int(part))]
    if match := _RANGE.match(part):
        first, last = int(match.group(1)), int(match.group(2))
        if last <= first:
            raise FieldError(
                field, text, f"range {part!r} must go from a smaller to a larger number"
            )
        return [_checked(field, text, value) for value in range(first, last + 1)]
    if match := _WILDCARD.match(part):
        step = int(match.group(1)) if match.group(1) is not None else 1
        if step < 1:
            raise FieldError(field, text, f"step in {part!r} must be at least 1")
        return list(range(field.low, field.high + 1, step))
    raise FieldError(field, text, f"{part!r} is not valid; expected {EXPECTED_SYNTAX}")


def _checked(field: FieldSpec, text: str, value: int) -> int:
    if field.wraps and value == field.high + 1:
        return field.low
    if not field.low <= value <= field.high:
        raise FieldError(
            field, text, f"value {value} is out of range; expected {field.low}-{field.high}"
        )
    return value


@dataclass(frozen=True, slots=True)
class CrontabTimer:
    """When a crontab item is due: the allowed values of each of the five fields."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    dows: tuple[int, ...]

    @classmethod
    def parse(cls, fields: tuple[str, str, str, str, str] | list[str]) -> CrontabTimer:
        """Build a timer from the five field texts (minute hour day month weekday)."""
        if len(fields) != 5:
            raise CrontabError(
                f"a cron schedule has 5 fields (minute hour day month weekday), got {len(fields)}"
            )
        values = [parse_field(spec, text) for spec, text in zip(FIELDS, fields, strict=True)]
        return cls(*values)

    def matches_local(self, moment: datetime) -> bool:
        """Whether the wall-clock minute ``moment`` (in whatever zone it carries) is due."""
        if not (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
        ):
            return False
        day_restricted = len(self.days) != 31
        dow_restricted = len(self.dows) != 7
        day_ok = moment.day in self.days
        dow_ok = (moment.isoweekday() % 7) in self.dows  # isoweekday: Sunday is 7
        if day_restricted and dow_restricted:
            return day_ok or dow_ok
        if day_restricted:
            return day_ok
        if dow_restricted:
            return dow_ok
        return True

    def matches(self, ts: datetime, tz: ZoneInfo | None = None) -> bool:
        """Whether the UTC minute ``ts`` is due, judged in UTC or in the zone ``tz``."""
        return self.matches_local(ts.astimezone(tz or UTC))


def floor_minute(moment: datetime) -> datetime:
    """The start of the minute that ``moment`` is in (an aware UTC datetime)."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def ceil_minute(moment: datetime) -> datetime:
    """The first minute boundary at or after ``moment``."""
    floor = floor_minute(moment)
    return floor if floor == moment else floor + ONE_MINUTE


def next_runs(
    timer: CrontabTimer, after: datetime, count: int, tz: ZoneInfo | None = None
) -> list[datetime]:
    """The next ``count`` due minutes strictly after ``after``, in UTC.

    Searches at most eight years ahead (every valid schedule fires by then: 29 February
    on a given weekday can take up to 28 years, which we do not chase).
    """
    results: list[datetime] = []
    ts = floor_minute(after) + ONE_MINUTE
    limit = ts + timedelta(days=366 * 8)
    while len(results) < count and ts < limit:
        local = ts.astimezone(tz or UTC)
        # Skip whole local hours that cannot match (hour steps stay right across DST).
        if (
            local.month not in timer.months
            or local.hour not in timer.hours
            or not _day_possible(timer, local)
        ):
            ts += timedelta(minutes=60 - local.minute)
            continue
        if timer.matches_local(local):
            results.append(ts)
        ts += ONE_MINUTE
    return results


def _day_possible(timer: CrontabTimer, local: datetime) -> bool:
    probe = local.replace(minute=timer.minutes[0])
    return timer.matches_local(probe)
