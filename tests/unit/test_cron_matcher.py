"""The two places where gw's matcher (the reference's rules) and croniter part ways: the
reason gw does its own cron arithmetic (docs/architecture.md, "Why not croniter")."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from graphile_worker_cli.cron.matcher import CrontabTimer, DstRule, next_runs


def _runs(expression: str, after: datetime, count: int, zone: str | None = None) -> list[str]:
    tz = ZoneInfo(zone) if zone else None
    timer = CrontabTimer.parse(expression.split())
    return [run.astimezone(tz or UTC).isoformat() for run in next_runs(timer, after, count, tz)]


def test_a_day_field_naming_every_day_leaves_the_weekday_in_charge() -> None:
    # croniter reads 1-31 as restricted and so runs every day (1-31 OR Monday).
    assert _runs("0 0 1-31 * 1", datetime(2026, 3, 1, tzinfo=UTC), 3) == [
        "2026-03-02T00:00:00+00:00", "2026-03-09T00:00:00+00:00", "2026-03-16T00:00:00+00:00",
    ]


def test_both_restricted_fields_match_either() -> None:
    assert _runs("0 0 1 * 1", datetime(2026, 3, 1, tzinfo=UTC), 3) == [
        "2026-03-02T00:00:00+00:00", "2026-03-09T00:00:00+00:00", "2026-03-16T00:00:00+00:00",
    ]


def test_a_local_time_skipped_by_spring_forward_does_not_run_on_the_wall_clock() -> None:
    # 2026-03-29 in London: 01:00 becomes 02:00; croniter runs the 01:30 item at 02:00.
    assert _runs("30 1 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC), 2, "Europe/London") == [
        "2026-03-30T01:30:00+01:00", "2026-03-31T01:30:00+01:00",
    ]


def test_the_once_rule_runs_a_skipped_time_after_the_gap() -> None:
    timer = CrontabTimer.parse(["30", "1", "*", "*", "*"])
    london = ZoneInfo("Europe/London")
    spring_forward = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 02:00 BST, first minute after
    assert timer.matches(spring_forward, london, DstRule.ONCE)
    assert not timer.matches(spring_forward, london, DstRule.WALL)
