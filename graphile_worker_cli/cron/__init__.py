"""Cron: crontab files and typed schedules, and the scheduler that turns them into jobs."""

from __future__ import annotations

from graphile_worker_cli.cron.builder import Cron, CronBuilder, parse_cron_input
from graphile_worker_cli.cron.clock import Clock, MockClock, SystemClock
from graphile_worker_cli.cron.matcher import CrontabTimer, DstRule
from graphile_worker_cli.cron.parser import (
    check_unique_ids,
    parse_crontab,
    parse_crontab_file,
    parse_crontab_line,
)
from graphile_worker_cli.cron.store import KnownCrontab
from graphile_worker_cli.cron.types import CronJobKeyMode, Crontab, CrontabFill
from graphile_worker_cli.errors import CrontabError

JobKeyMode = CronJobKeyMode
CrontabParseError = CrontabError
CronInput = str | Cron | Crontab
"""What ``WorkerOptions.with_cron`` accepts."""

__all__ = [
    "Clock",
    "Cron",
    "CronBuilder",
    "CronInput",
    "CronJobKeyMode",
    "Crontab",
    "CrontabError",
    "CrontabFill",
    "CrontabParseError",
    "CrontabTimer",
    "DstRule",
    "JobKeyMode",
    "KnownCrontab",
    "MockClock",
    "SystemClock",
    "check_unique_ids",
    "parse_cron_input",
    "parse_crontab",
    "parse_crontab_file",
    "parse_crontab_line",
]
