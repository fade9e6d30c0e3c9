"""Typed schedules: each constructor gives the crontab line's item; bad values fail at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from graphile_worker_cli.cron import (
    Cron,
    CronBuilder,
    CronJobKeyMode,
    CrontabError,
    CrontabFill,
    DstRule,
    parse_cron_input,
    parse_crontab,
)
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.tasks import TaskHandler


class SendEmail(TaskHandler):
    IDENTIFIER: ClassVar[str] = "send_email"
    to: str = "ops@example.com"

    async def run(self, ctx: object) -> None:
        del ctx


@pytest.mark.parametrize(
    ("cron", "line"),
    [
        (Cron.every_minute("t"), "* * * * * t"),
        (Cron.every_n_minutes("t", 15), "*/15 * * * * t"),
        (Cron.hourly_at("t", 7), "7 * * * * t"),
        (Cron.daily_at("t", 8, 30), "30 8 * * * t"),
        (Cron.weekly_on("t", 0, 9, 0), "0 9 * * 0 t"),
        (Cron.weekly_on("t", 7, 9, 0), "0 9 * * 0 t"),
        (Cron.monthly_on("t", 31, 23, 59), "59 23 31 * * t"),
        (Cron.yearly_on("t", 2, 29, 0, 0), "0 0 29 2 * t"),
        (Cron.from_pattern("t", "0 9 * * 1-5"), "0 9 * * 1-5 t"),
    ],
)
def test_schedules_equal_their_crontab_line(cron: Cron, line: str) -> None:
    assert cron.build() == parse_crontab(line)[0]


def test_options_equal_their_crontab_line() -> None:
    built = (
        Cron.daily_at(SendEmail, 8, 0)
        .id("morning")
        .fill(CrontabFill.hours(1))
        .max_attempts(3)
        .queue("mail")
        .priority(-1)
        .job_key("morning-mail")
        .job_key_mode(CronJobKeyMode.PRESERVE_RUN_AT)
        .payload({"to": "a@b.c"})
        .tz("Europe/Paris")
        .build()
    )
    [parsed] = parse_crontab(
        "0 8 * * * send_email ?id=morning&fill=1h&max=3&queue=mail&priority=-1"
        "&jobKey=morning-mail&jobKeyMode=preserve_run_at&tz=Europe/Paris {to: 'a@b.c'}"
    )
    assert built == parsed
    assert built.task_identifier == "send_email"
    assert built.tz == ZoneInfo("Europe/Paris")


def test_task_class_payload_and_defaults() -> None:
    item = Cron.hourly_at(SendEmail, 0).payload(SendEmail(to="x@y.z")).job_key("k").build()
    assert item.payload == {"to": "x@y.z"}
    assert item.job_key_mode is CronJobKeyMode.REPLACE
    assert item.identifier == "send_email"
    assert Cron.every_minute("t").fill("1h30m").build().fill.duration == timedelta(minutes=90)
    assert CronBuilder is Cron


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Cron.every_n_minutes("t", 0), "invalid n 0: expected a whole number from 1 to 59"),
        (lambda: Cron.hourly_at("t", 60),
         "invalid minute 60: expected a whole number from 0 to 59"),
        (lambda: Cron.daily_at("t", 24, 0),
         "invalid hour 24: expected a whole number from 0 to 23"),
        (lambda: Cron.weekly_on("t", 8, 0, 0),
         "invalid weekday 8: expected a whole number from 0 to 7"),
        (lambda: Cron.monthly_on("t", 0, 0, 0),
         "invalid day 0: expected a whole number from 1 to 31"),
        (lambda: Cron.yearly_on("t", 13, 1, 0, 0),
         "invalid month 13: expected a whole number from 1 to 12"),
        (lambda: Cron.yearly_on("t", 2, 30, 0, 0), "invalid date: month 2 has no day 30"),
        (lambda: Cron.daily_at("t", True, 0),
         "invalid hour True: expected a whole number from 0 to 23"),
        (lambda: Cron.every_minute(""), "invalid task identifier '': expected 1 to 128 characters"),
        (lambda: Cron.every_minute(object), "invalid task <class 'object'>: expected an "
         "identifier string or a task class with IDENTIFIER"),
        (lambda: Cron.every_minute("t").id("bad id"),
         "invalid id 'bad id': expected a letter or _ then letters, digits, - or _"),
        (lambda: Cron.every_minute("t").fill("soon"), "invalid fill 'soon'"),
        (lambda: Cron.every_minute("t").max_attempts(0),
         "invalid max 0: expected a whole number from 1 to 32767"),
        (lambda: Cron.every_minute("t").queue("a b"), "invalid queue 'a b'"),
        (lambda: Cron.every_minute("t").priority(40000), "invalid priority 40000"),
        (lambda: Cron.every_minute("t").job_key(""), "invalid jobKey ''"),
        (lambda: Cron.every_minute("t").job_key_mode("unsafe_dedupe"),
         "invalid jobKeyMode 'unsafe_dedupe': expected replace or preserve_run_at"),
        (lambda: Cron.every_minute("t").payload([1]),
         "invalid payload [1]: expected a JSON object"),
        (lambda: Cron.every_minute("t").tz("Mars/Olympus"), "invalid tz 'Mars/Olympus'"),
        (lambda: Cron.every_minute("t").tz(ZoneInfo("localtime")), "invalid tz 'localtime'"),
        (lambda: Cron.every_minute("t").tz("Factory"), "invalid tz 'Factory'"),
        (lambda: Cron.every_minute("t").tz("UTC", dst="later"),
         "invalid dst 'later': expected wall or once"),
        (lambda: Cron.every_minute("t").fill("367d"),
         "invalid fill '367d': expected at most 366d (52w2d)"),
        (lambda: Cron.every_minute("t").fill(CrontabFill.weeks(53)),
         "invalid fill 53: expected at most 366d (52w2d)"),
        (lambda: Cron.every_minute("t" * 129), "invalid task identifier 'ttt"),
        (lambda: Cron.every_minute("t").id("foo\n"), "invalid id 'foo\\n'"),
        (lambda: Cron.every_minute("t").queue("q\n"), "invalid queue 'q\\n'"),
        (lambda: Cron.from_pattern("t", "* * *"), "invalid pattern '* * *': expected 5 fields"),
        (lambda: Cron.from_pattern("t", "61 * * * *"),
         "minute field '61': value 61 is out of range; expected 0-59"),
    ],
)
def test_invalid_values_fail_when_built(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(CrontabError) as info:
        make()
    assert info.value.message.startswith(message)
    assert isinstance(info.value, BadInputError)


def test_parse_cron_input() -> None:
    cron = Cron.daily_at("t", 1, 2)
    assert parse_cron_input(cron) == [cron.build()]
    assert parse_cron_input(cron.build()) == [cron.build()]
    items = parse_cron_input("0 1 * * * a\n0 2 * * * b ?fill=1d")
    assert [i.identifier for i in items] == ["a", "b"]
    with pytest.raises(CrontabError, match=r"^<with_cron>:1: "):
        parse_cron_input("0 1 * * a")


def test_tz_with_a_dst_rule_equals_its_crontab_line() -> None:
    built = Cron.daily_at("t", 2, 30).tz("America/New_York", dst=DstRule.ONCE).build()
    assert built == parse_crontab("30 2 * * * t ?tz=America/New_York&dst=once")[0]
    assert built.dst is DstRule.ONCE
    assert Cron.daily_at("t", 2, 30).tz("UTC").build().dst is DstRule.WALL


def test_next_runs_of_a_typed_schedule() -> None:
    item = Cron.weekly_on("t", 1, 9, 30).tz("America/New_York").build()
    start = datetime(2030, 1, 6, tzinfo=UTC)
    assert item.next_runs(start, 2) == [
        datetime(2030, 1, 7, 14, 30, tzinfo=UTC), datetime(2030, 1, 14, 14, 30, tzinfo=UTC),
    ]


def test_with_cron_on_worker_options() -> None:
    from graphile_worker_cli.worker.options import WorkerOptions

    options = (
        WorkerOptions()
        .with_cron(Cron.daily_at(SendEmail, 8, 0).fill(CrontabFill.hours(1)))
        .with_cron("0 4 * * * cleanup ?fill=1d\n*/5 * * * * ping")
    )
    assert [c.identifier for c in options.crontabs] == ["send_email", "cleanup", "ping"]
    with pytest.raises(CrontabError, match=r"<with_cron>:1: minute field"):
        WorkerOptions().with_cron("61 * * * * t")
