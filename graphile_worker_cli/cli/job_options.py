"""What ``gw add-job`` and the ``gw jobs`` commands share: the options saying when and how a
job runs, reading those values, and a job as JSON. Only click (through ``commands``) and
the small ``durations`` module are imported: ``gw add-job`` loads this, not ``jobs_cmd``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from graphile_worker_cli import durations
from graphile_worker_cli.cli.commands import option
from graphile_worker_cli.errors import BadInputError

if TYPE_CHECKING:
    from graphile_worker_cli import job

run_at_option = option(
    "--run-at", help="When to run: ISO 8601, e.g. 2030-01-31T09:00:00Z (no offset means UTC)."
)
delay_option = option("--delay", help=f"Run after this delay: {durations.DURATION_HELP}.")
priority_option = option("--priority", type=int, help="Lower runs first (default 0).")
max_attempts_option = option(
    "--max-attempts", type=int, help="Attempts before giving up (default 25)."
)


def parse_time(value: str, option: str = "--run-at") -> datetime:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInputError(
            f"invalid {option} {value!r}: expected an ISO 8601 time like 2030-01-31T09:00:00Z"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def when(run_at: str | None, delay: str | None) -> datetime | None:
    """The time ``--run-at`` or ``--delay`` names (at most one of them), or None."""
    if run_at is not None and delay is not None:
        raise BadInputError("give either --run-at or --delay, not both")
    if run_at is not None:
        return parse_time(run_at)
    if delay is not None:
        try:
            seconds = durations.parse_duration(delay)
        except BadInputError as error:
            raise BadInputError(f"option --delay: {error.message}") from None
        return datetime.now(UTC) + timedelta(seconds=seconds)
    return None


def job_to_dict(record: job.Job, now: datetime | None = None) -> dict[str, Any]:
    """A job as JSON-ready values (times in ISO 8601), with its state."""
    from graphile_worker_cli import job

    values = dataclasses.asdict(record)
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = value.isoformat()
    values["state"] = job.job_state(record, now or datetime.now(UTC)).value
    return values
