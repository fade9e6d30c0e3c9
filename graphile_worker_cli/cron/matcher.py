"""The five time fields of a crontab line and the test "is this minute due?".

Field syntax is the reference's: ``*``, ``*/n``, ``n``, ``a-b`` and comma lists of those.
Day of week runs 0-6 with 0 for Sunday (7 is accepted as another Sunday). When both day of
month and day of week are restricted, a minute matches if either one does (classic cron).

With a time zone the fields are read on that zone's wall clock. ``DstRule`` says what happens
to the local times a daylight saving change skips or repeats.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
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


class DstRule(enum.StrEnum):
    """What a schedule in a time zone does when clocks change (gw's ``dst`` option).

    ``WALL`` (the default) follows the wall clock: a local time skipped when clocks spring
    forward does not run that day, and one repeated when they fall back runs twice.
    ``ONCE`` is the rule of classic Unix cron, for items at specific hours (every hour
    field but ``*``): a skipped local time runs at the first minute after the change, and
    a repeated one runs only the first time. Items that run every hour follow the wall
    clock either way.
    """

    WALL = "wall"
    ONCE = "once"


_HUGE = 10**18  # stands for any number too long to convert; every field rejects it


def field_number(digits: str) -> int:
    """The value of a string of ASCII digits, leading zeros allowed, however long."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 18 else _HUGE


def parse_field(field: FieldSpec, text: str) -> tuple[int, ...]:
    """The sorted distinct values that ``text`` selects; FieldError when it is not valid."""
    values: set[int] = set()
    for part in text.split(","):
        values.update(_parse_part(field, text, part))
    return tuple(sorted(values))


def _parse_part(field: FieldSpec, text: str, part: str) -> list[int]:
    if _NUMBER.match(part):
        return [_checked(field, text, field_number(part))]
    if match := _RANGE.match(part):
        first, last = field_number(match.group(1)), field_number(match.group(2))
        if last <= first:
            raise FieldError(
                field, text, f"range {part!r} must go from a smaller to a larger number"
            )
        return [_checked(field, text, value) for value in range(first, last + 1)]
    if match := _WILDCARD.match(part):
        step = field_number(match.group(1)) if match.group(1) is not None else 1
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

    def matches(
        self, ts: datetime, tz: ZoneInfo | None = None, dst: DstRule = DstRule.WALL
    ) -> bool:
        """Whether the UTC minute ``ts`` is due, judged in UTC or in the zone ``tz``."""
        local = ts.astimezone(tz or UTC)
        if dst is DstRule.WALL or tz is None or len(self.hours) == 24:
            return self.matches_local(local)
        if local.fold and _is_repeated(local):
            return False
        return self.matches_local(local) or self._skipped_just_before(ts, local, tz)

    def _skipped_just_before(self, ts: datetime, local: datetime, tz: ZoneInfo) -> bool:
        """Whether the clocks just sprang forward over a local minute that is due."""
        before = (ts - ONE_MINUTE).astimezone(tz).replace(tzinfo=None)
        wall = local.replace(tzinfo=None)
        missing = before + ONE_MINUTE
        while missing < wall:
            if self.matches_local(missing):
                return True
            missing += ONE_MINUTE
        return False

    def hour_possible(self, local: datetime) -> bool:
        """Whether any minute of the local hour that ``local`` is in can match."""
        return (
            local.month in self.months
            and local.hour in self.hours
            and self.matches_local(local.replace(minute=self.minutes[0]))
        )


def _is_repeated(local: datetime) -> bool:
    """Whether the wall time ``local`` (fold=1) also happened an hour or so earlier."""
    return local.utcoffset() != local.replace(fold=0).utcoffset()


def floor_minute(moment: datetime) -> datetime:
    """The start of the minute that ``moment`` is in (an aware UTC datetime)."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def ceil_minute(moment: datetime) -> datetime:
    """The first minute boundary at or after ``moment``."""
    floor = floor_minute(moment)
    return floor if floor == moment else floor + ONE_MINUTE


def due_minutes(
    timer: CrontabTimer,
    first: datetime,
    end: datetime,
    tz: ZoneInfo | None = None,
    matches: Callable[[datetime], bool] | None = None,
) -> Iterator[datetime]:
    """The due UTC minutes from ``first`` (a minute boundary) up to, not including, ``end``.

    ``matches`` (default: the timer in ``tz`` on the wall clock) decides each minute; whole
    local hours the timer cannot match are skipped unless the zone's offset changes in them.
    """
    zone = tz or UTC
    check = matches or (lambda ts: timer.matches(ts, tz))
    ts = first
    last_offset: timedelta | None = None
    while ts < end:
        local = ts.astimezone(zone)
        offset = local.utcoffset()
        possible = timer.hour_possible(local)
        # The first minute after a clock change may match outside the timer's hours.
        if (possible or offset != last_offset) and check(ts):
            yield ts
        last_offset = offset
        step = ONE_MINUTE
        if not possible:
            hour_end = ts + timedelta(minutes=60 - local.minute)
            if hour_end.astimezone(zone).utcoffset() == offset:
                step = hour_end - ts
        ts += step


def next_runs(
    timer: CrontabTimer,
    after: datetime,
    count: int,
    tz: ZoneInfo | None = None,
    matches: Callable[[datetime], bool] | None = None,
) -> list[datetime]:
    """The next ``count`` due minutes strictly after ``after``, in UTC.

    Searches at most eight years ahead (every valid schedule fires by then: 29 February
    on a given weekday can take up to 28 years, which we do not chase).
    """
    first = floor_minute(after) + ONE_MINUTE
    runs: list[datetime] = []
    for ts in due_minutes(timer, first, first + timedelta(days=366 * 8), tz, matches):
        runs.append(ts)
        if len(runs) == count:
            break
    return runs
