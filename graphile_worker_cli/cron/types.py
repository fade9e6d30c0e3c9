"""What a parsed crontab item is: ``Crontab``, its ``CrontabFill`` and ``CronJobKeyMode``,
and the checks every value of an item passes, whether it comes from text or from ``Cron``."""

from __future__ import annotations

import enum
import functools
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from graphile_worker_cli.cron.matcher import CrontabTimer, DstRule, field_number, next_runs
from graphile_worker_cli.errors import CrontabError

ID_PATTERN = re.compile(r"[_a-zA-Z][-_a-zA-Z0-9]*\Z")
QUEUE_PATTERN = re.compile(r"[-a-zA-Z0-9_:]+\Z")
_FILL_PART = re.compile(r"([0-9]+)([smhdw])")
_FILL_WHOLE = re.compile(r"(?:[0-9]+[smhdw])+\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_FILL = timedelta(days=366)
"""The longest ``fill``: a yearly item can make up its one missed run (the reference has
no limit, and a fill past its date range breaks its backfill; see docs/compatibility.md)."""
_MAX_FILL_TEXT = "366d (52w2d)"
_NOT_ZONES = frozenset({"Factory", "localtime", "posixrules"})
SMALLINT_MIN, SMALLINT_MAX = -32768, 32767
MAX_KEY_LENGTH = 512
MAX_NAME_LENGTH = 128


class CronJobKeyMode(enum.StrEnum):
    """What a cron job does when a job with its ``jobKey`` already exists."""

    REPLACE = "replace"
    PRESERVE_RUN_AT = "preserve_run_at"


@dataclass(frozen=True, slots=True, order=True)
class CrontabFill:
    """How far back a known item is backfilled after downtime (0 means not at all)."""

    duration: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if not timedelta(0) <= self.duration <= MAX_FILL:
            raise CrontabError(
                f"invalid fill {self.duration}: expected a period from 0s to {_MAX_FILL_TEXT}"
            )

    @classmethod
    def seconds(cls, n: int) -> CrontabFill:
        return cls._of(n, 1)

    @classmethod
    def minutes(cls, n: int) -> CrontabFill:
        return cls._of(n, 60)

    @classmethod
    def hours(cls, n: int) -> CrontabFill:
        return cls._of(n, 3600)

    @classmethod
    def days(cls, n: int) -> CrontabFill:
        return cls._of(n, 86400)

    @classmethod
    def weeks(cls, n: int) -> CrontabFill:
        return cls._of(n, 604800)

    @classmethod
    def _of(cls, n: int, unit: int) -> CrontabFill:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise CrontabError(f"invalid fill {n!r}: expected a whole number >= 0")
        return cls._bounded(n * unit, repr(n))

    @classmethod
    def _bounded(cls, seconds: int, shown: str) -> CrontabFill:
        if seconds > MAX_FILL.total_seconds():
            raise CrontabError(f"invalid fill {shown}: expected at most {_MAX_FILL_TEXT}")
        return cls(timedelta(seconds=seconds))

    @classmethod
    def parse(cls, phrase: str) -> CrontabFill:
        """Parse a period like ``4w3d2h1m30s`` (units s, m, h, d, w; no spaces)."""
        if not isinstance(phrase, str) or not _FILL_WHOLE.match(phrase):
            raise CrontabError(
                f"invalid fill {phrase!r}: expected a period like 1h, 30m or 4w3d2h1m30s "
                "(units s, m, h, d, w)"
            )
        total = sum(
            field_number(amount) * _UNIT_SECONDS[unit]
            for amount, unit in _FILL_PART.findall(phrase)
        )
        return cls._bounded(total, repr(phrase))

    def __str__(self) -> str:
        remaining = int(self.duration.total_seconds())
        if remaining == 0:
            return "0s"
        parts: list[str] = []
        for unit in ("w", "d", "h", "m", "s"):
            amount, remaining = divmod(remaining, _UNIT_SECONDS[unit])
            if amount:
                parts.append(f"{amount}{unit}")
        return "".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Crontab:
    """One schedule: when (``timer``), which task, and the options of the jobs it adds.

    ``identifier`` is the item's ``id`` (defaults to the task identifier): the key of its
    row in ``_private_known_crontabs``, which drives backfill and exactly-once scheduling.
    """

    timer: CrontabTimer
    task_identifier: str
    identifier: str
    pattern: str = ""  # the five fields as written, for display
    fill: CrontabFill = field(default_factory=CrontabFill)
    max_attempts: int | None = None
    queue_name: str | None = None
    priority: int | None = None
    job_key: str | None = None
    job_key_mode: CronJobKeyMode | None = None
    payload: dict[str, Any] | None = None
    tz: ZoneInfo | None = None
    dst: DstRule = DstRule.WALL

    def matches(self, ts: datetime) -> bool:
        """Whether this item is due at the UTC minute ``ts`` (judged in its zone)."""
        return self.timer.matches(ts, self.tz, self.dst)

    def next_runs(self, after: datetime | None = None, count: int = 5) -> list[datetime]:
        """The next ``count`` due times (UTC) strictly after ``after`` (default now)."""
        return next_runs(self.timer, after or datetime.now(UTC), count, self.tz, self.matches)

    def options_text(self) -> str:
        """The options as a crontab ``?query`` string (empty when there are none)."""
        pairs: list[tuple[str, str]] = []
        if self.identifier != self.task_identifier:
            pairs.append(("id", self.identifier))
        if self.fill.duration:
            pairs.append(("fill", str(self.fill)))
        if self.max_attempts is not None:
            pairs.append(("max", str(self.max_attempts)))
        if self.queue_name is not None:
            pairs.append(("queue", self.queue_name))
        if self.priority is not None:
            pairs.append(("priority", str(self.priority)))
        if self.job_key is not None:
            pairs.append(("jobKey", self.job_key))
        if self.job_key_mode is not None:
            pairs.append(("jobKeyMode", self.job_key_mode.value))
        if self.tz is not None:
            pairs.append(("tz", self.tz.key))
        if self.dst is not DstRule.WALL:
            pairs.append(("dst", self.dst.value))
        return "&".join(f"{key}={value}" for key, value in pairs)


def check_id(value: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise CrontabError(
            f"invalid id {value!r}: expected a letter or _ then letters, digits, - or _"
        )
    return value


def check_task(value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise CrontabError(
            f"invalid task identifier {value!r}: expected 1 to {MAX_NAME_LENGTH} characters"
        )
    return value


def check_queue(value: str) -> str:
    if not isinstance(value, str) or not QUEUE_PATTERN.match(value) or len(value) > 128:
        raise CrontabError(
            f"invalid queue {value!r}: expected up to 128 letters, digits, -, _ or :"
        )
    return value


def check_max_attempts(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SMALLINT_MAX:
        raise CrontabError(f"invalid max {value!r}: expected a whole number from 1 to 32767")
    return value


def check_priority(value: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not SMALLINT_MIN <= value <= SMALLINT_MAX
    ):
        raise CrontabError(
            f"invalid priority {value!r}: expected a whole number from -32768 to 32767"
        )
    return value


def check_job_key(value: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise CrontabError(
            f"invalid jobKey {value!r}: expected 1 to {MAX_KEY_LENGTH} characters"
        )
    return value


def check_job_key_mode(value: str | CronJobKeyMode) -> CronJobKeyMode:
    try:
        return CronJobKeyMode(value)
    except ValueError:
        raise CrontabError(
            f"invalid jobKeyMode {value!r}: expected replace or preserve_run_at"
        ) from None


@functools.cache
def iana_zone_names() -> frozenset[str]:
    """The zone names of the IANA database this machine (or the tzdata package) has.

    Not the files that sit beside them: ``localtime`` (whatever zone the machine is in),
    ``posixrules`` (a template), ``posix/``/``right/`` copies (``right/`` counts leap
    seconds), nor IANA's ``Factory`` (a placeholder with no time of its own).
    """
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def check_tz(value: str | ZoneInfo) -> ZoneInfo:
    name = value.key if isinstance(value, ZoneInfo) else value
    error = CrontabError(
        f"invalid tz {name!r}: expected an IANA time zone name like Europe/Paris or UTC"
    )
    if not isinstance(name, str) or name not in iana_zone_names():
        raise error
    if isinstance(value, ZoneInfo):
        return value
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise error from None


def check_dst(value: str | DstRule) -> DstRule:
    try:
        return DstRule(value)
    except ValueError:
        raise CrontabError(f"invalid dst {value!r}: expected wall or once") from None


def check_payload(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CrontabError(f"invalid payload {value!r}: expected a JSON object")
    return value
