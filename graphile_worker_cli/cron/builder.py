"""Typed schedules: ``Cron.daily_at(SendEmail, 8, 0).fill(CrontabFill.hours(1))``.

Every value is checked when it is given, so a bad schedule fails where it is written, not
at run time. ``build()`` gives the same ``Crontab`` a crontab line would.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self
from zoneinfo import ZoneInfo

from graphile_worker_cli.cron import types
from graphile_worker_cli.cron.matcher import CrontabTimer, DstRule
from graphile_worker_cli.cron.parser import parse_crontab
from graphile_worker_cli.cron.types import CronJobKeyMode, Crontab, CrontabFill
from graphile_worker_cli.errors import CrontabError

TaskRef = str | type


def _task_identifier(task: TaskRef) -> str:
    if isinstance(task, str):
        return types.check_task(task)
    identifier = getattr(task, "IDENTIFIER", None)
    if not isinstance(identifier, str):
        raise CrontabError(
            f"invalid task {task!r}: expected an identifier string or a task class with IDENTIFIER"
        )
    return types.check_task(identifier)


def _number(value: int, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CrontabError(
            f"invalid {name} {value!r}: expected a whole number from {low} to {high}"
        )
    return value


class Cron:
    """A schedule under construction; the class methods start one, the others refine it."""

    def __init__(self, task: TaskRef, fields: tuple[str, str, str, str, str]) -> None:
        identifier = _task_identifier(task)
        self._crontab = Crontab(
            timer=CrontabTimer.parse(fields),
            task_identifier=identifier,
            identifier=identifier,
            pattern=" ".join(fields),
        )

    # -- schedules -------------------------------------------------------------------------

    @classmethod
    def every_minute(cls, task: TaskRef) -> Cron:
        return cls(task, ("*", "*", "*", "*", "*"))

    @classmethod
    def every_n_minutes(cls, task: TaskRef, n: int) -> Cron:
        """At minutes 0, n, 2n... of every hour (so n that divides 60 gives even spacing)."""
        return cls(task, (f"*/{_number(n, 'n', 1, 59)}", "*", "*", "*", "*"))

    @classmethod
    def hourly_at(cls, task: TaskRef, minute: int) -> Cron:
        return cls(task, (str(_number(minute, "minute", 0, 59)), "*", "*", "*", "*"))

    @classmethod
    def daily_at(cls, task: TaskRef, hour: int, minute: int) -> Cron:
        return cls(task, (*_clock(hour, minute), "*", "*", "*"))

    @classmethod
    def weekly_on(cls, task: TaskRef, weekday: int, hour: int, minute: int) -> Cron:
        """``weekday`` 0-6 with 0 for Sunday (7 is Sunday too), like the crontab field."""
        day = _number(weekday, "weekday", 0, 7) % 7
        return cls(task, (*_clock(hour, minute), "*", "*", str(day)))

    @classmethod
    def monthly_on(cls, task: TaskRef, day: int, hour: int, minute: int) -> Cron:
        return cls(task, (*_clock(hour, minute), str(_number(day, "day", 1, 31)), "*", "*"))

    @classmethod
    def yearly_on(cls, task: TaskRef, month: int, day: int, hour: int, minute: int) -> Cron:
        month = _number(month, "month", 1, 12)
        day = _number(day, "day", 1, 31)
        if (month, day) in ((2, 30), (2, 31), (4, 31), (6, 31), (9, 31), (11, 31)):
            raise CrontabError(f"invalid date: month {month} has no day {day}")
        return cls(task, (*_clock(hour, minute), str(day), str(month), "*"))

    @classmethod
    def from_pattern(cls, task: TaskRef, pattern: str) -> Cron:
        """Any five-field pattern, e.g. ``"0 9 * * 1-5"``."""
        parts = pattern.split()
        if len(parts) != 5:
            raise CrontabError(
                f"invalid pattern {pattern!r}: expected 5 fields (minute hour day month weekday)"
            )
        return cls(task, (parts[0], parts[1], parts[2], parts[3], parts[4]))

    # -- options ---------------------------------------------------------------------------

    def _set(self, **changes: Any) -> Self:
        self._crontab = dataclasses.replace(self._crontab, **changes)
        return self

    def id(self, identifier: str) -> Self:
        return self._set(identifier=types.check_id(identifier))

    def fill(self, fill: CrontabFill | str) -> Self:
        if isinstance(fill, str):
            fill = CrontabFill.parse(fill)
        if not isinstance(fill, CrontabFill):
            raise CrontabError(f"invalid fill {fill!r}: expected a CrontabFill or a period like 1h")
        return self._set(fill=fill)

    def max_attempts(self, value: int) -> Self:
        return self._set(max_attempts=types.check_max_attempts(value))

    def queue(self, name: str) -> Self:
        return self._set(queue_name=types.check_queue(name))

    def priority(self, value: int) -> Self:
        return self._set(priority=types.check_priority(value))

    def job_key(self, key: str) -> Self:
        mode = self._crontab.job_key_mode or CronJobKeyMode.REPLACE
        return self._set(job_key=types.check_job_key(key), job_key_mode=mode)

    def job_key_mode(self, mode: CronJobKeyMode | str) -> Self:
        return self._set(job_key_mode=types.check_job_key_mode(mode))

    def payload(self, value: Any) -> Self:
        """A dict, or a pydantic model (such as the task's own TaskHandler) dumped to JSON."""
        dump = getattr(value, "model_dump", None)
        if callable(dump):
            value = dump(mode="json")
        return self._set(payload=types.check_payload(value))

    def tz(self, zone: str | ZoneInfo, dst: DstRule | str = DstRule.WALL) -> Self:
        """Match the schedule in this IANA zone's local time (gw only); ``dst`` says what
        local times skipped or repeated by a clock change do (see ``DstRule``)."""
        return self._set(tz=types.check_tz(zone), dst=types.check_dst(dst))

    def build(self) -> Crontab:
        return self._crontab

    def __repr__(self) -> str:
        return f"Cron({self._crontab.pattern} {self._crontab.task_identifier})"


CronBuilder = Cron


def _clock(hour: int, minute: int) -> tuple[str, str]:
    return str(_number(minute, "minute", 0, 59)), str(_number(hour, "hour", 0, 23))


def parse_cron_input(item: str | Cron | Crontab) -> list[Crontab]:
    """What ``WorkerOptions.with_cron`` accepts: crontab text, a ``Cron`` or a ``Crontab``."""
    if isinstance(item, Cron):
        return [item.build()]
    if isinstance(item, Crontab):
        return [item]
    if isinstance(item, str):
        return parse_crontab(item, source="<with_cron>")
    raise CrontabError(f"invalid cron item {item!r}: expected a crontab line or a Cron")
