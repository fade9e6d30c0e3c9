"""``gw jobs list|history|show|complete|fail|cancel|reschedule|remove``, ``gw cleanup``
(``gw add-job`` is in ``add_job_cmd``).

Thin: each command parses its options, makes one ``WorkerUtils`` call and prints the
result, a table for people or JSON with ``--json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from graphile_worker_cli import durations
from graphile_worker_cli.cli import common
from graphile_worker_cli.cli.commands import argument, command, group, option
from graphile_worker_cli.cli.job_options import (
    delay_option,
    job_to_dict,
    max_attempts_option,
    parse_time,
    priority_option,
    run_at_option,
    when,
)
from graphile_worker_cli.errors import (
    EXIT_FAILURE,
    EXIT_USAGE,
    BadInputError,
)

if TYPE_CHECKING:
    from graphile_worker_cli import config, job, job_input
    from graphile_worker_cli.worker_utils import WorkerUtils

# The library modules are imported by the commands that use them, so that `gw jobs --help`
# and each command load only what they need.

jobs_group = group("jobs", help="Inspect and manage queued jobs.", no_args_is_help=True)

job_ids_argument = argument("job_ids", type=int, nargs=-1, help="Job ids.")
T = TypeVar("T")


# --- plumbing -------------------------------------------------------------------------------


async def _call(
    settings: config.Settings, call: Callable[[WorkerUtils], Awaitable[T]]
) -> T:
    """``call(worker_utils)`` on the configured database: the body of most commands."""
    from graphile_worker_cli.worker_utils import configured_worker_utils

    async with configured_worker_utils(settings) as worker_utils:
        return await call(worker_utils)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


BATCH_FAILURES = "Batch failures:\n"
_PIPE_WIDTH = 10_000


def error_summary(last_error: str | None) -> str:
    """A job's last error on one line: its first line, or for a batch job the items' errors
    (the first line alone would only say "Batch failures:")."""
    if not last_error:
        return ""
    if last_error.startswith(BATCH_FAILURES):
        items = [line for line in last_error[len(BATCH_FAILURES):].splitlines() if line]
        return "Batch failures: " + "; ".join(items)
    return last_error.split("\n", 1)[0]


def _print_jobs(records: list[job.Job], title: str) -> None:
    from graphile_worker_cli import job

    now = datetime.now(UTC)
    rows = [
        {
            "id": str(record.id),
            "state": job.job_state(record, now).value,
            "prio": str(record.priority),
            "run at (UTC)": record.run_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "tries": f"{record.attempts}/{record.max_attempts}",
            "task": record.task_identifier,
            "queue": record.queue_name or "",
            "key": record.key or "",
            "locked by": record.locked_by or "",
            "last error": _cut(error_summary(record.last_error), 80),
        }
        for record in records
    ]
    # Only the last error is shortened (`gw jobs show ID` prints it in full).
    _print_rows(
        rows, title, ("queue", "key", "locked by", "last error"),
        lambda row: f"{row['id']}  {row['state']}  prio {row['prio']}  tries {row['tries']}  "
                    f"run at {row['run at (UTC)']} UTC",
        ("task",),
    )


def _print_rows(
    rows: list[dict[str, str]],
    title: str,
    optional: tuple[str, ...],
    head: Callable[[dict[str, str]], str],
    named: tuple[str, ...],
) -> None:
    """Rows as a table when it fits the terminal (always in a pipe), else a block per row:
    ``head(row)``, then the ``named`` and ``optional`` values each whole on its own line.
    Optional columns empty in every row are left out; no value is cut here."""
    from rich import box
    from rich.measure import Measurement

    columns = [name for name in (rows[0] if rows else {}) if name not in optional or any(
        row[name] for row in rows
    )]
    table = common.table(
        *columns, title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
        padding=(0, 1),
    )
    for row in rows:
        table.add_row(*(row[name] for name in columns))
    console = common.stdout
    unbounded = console.options.update_width(_PIPE_WIDTH)
    if Measurement.get(console, unbounded, table).maximum <= console.width:
        console.print(table)
        return
    console.print(title, highlight=False, markup=False)
    for row in rows:
        console.print(head(row), highlight=False, markup=False, soft_wrap=True)
        for name in (*named, *optional):
            if row.get(name):
                console.print(f"  {name + ':':<11} {row[name]}", highlight=False, markup=False,
                              soft_wrap=True)


def _report(
    records: list[job.Job], ids: Sequence[int], verb: str, json_output: bool
) -> None:
    """Print what changed; jobs that were not touched are an error line and exit 1."""
    if json_output:
        common.print_json([job_to_dict(record) for record in records])
    else:
        done = ", ".join(str(record.id) for record in records) or "none"
        common.stdout.print(f"{verb} {len(records)} job(s): {done}", highlight=False)
    untouched = sorted(set(ids) - {record.id for record in records})
    if untouched:
        listed = ", ".join(str(job_id) for job_id in untouched)
        common.fail(
            f"job(s) {listed} not {verb}: no such job, or locked by a worker", EXIT_FAILURE
        )


# --- gw jobs ... ----------------------------------------------------------------------------


@jobs_group.command("list")
@option("--task", help="Only this task identifier.")
@option("--queue", help="Only this queue.")
@option("--state", help="ready, scheduled, locked or failed.")
@option("--limit", type=click.IntRange(min=0), default=100, help="At most this many jobs.")
@common.database_options
@common.json_option
def list_command(
    task: str | None, queue: str | None, state: str | None, limit: int,
    connection: str | None, schema: str | None, config_path: Path | None, json_output: bool,
) -> None:
    """List jobs in id order."""
    settings = common.load_settings(connection, schema, config_path)

    records = common.run(_call(
        settings, lambda worker_utils: worker_utils.list_jobs(
            task=task, queue=queue, state=state, limit=limit
        ),
    ))
    if json_output:
        common.print_json([job_to_dict(record) for record in records])
    elif not records:
        common.stdout.print("no jobs", highlight=False)
    else:
        _print_jobs(records, f"jobs in schema {settings.schema_name}")
        if len(records) == limit:
            common.stderr.print(
                f"showing the first {limit} jobs; use --limit for more", highlight=False
            )


def parse_since(value: str) -> datetime | timedelta:
    """``--since``: how long ago (a duration such as 1h) or an ISO 8601 time."""
    try:
        return timedelta(seconds=durations.parse_duration(value))
    except BadInputError:
        pass
    try:
        return parse_time(value, "--since")
    except BadInputError:
        raise BadInputError(
            f"invalid --since {value!r}: expected how long ago ({durations.DURATION_HELP}) "
            "or an ISO 8601 time like 2030-01-31T09:00:00Z"
        ) from None


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


def history_to_dict(entry: job.JobHistoryEntry) -> dict[str, Any]:
    """A history entry as JSON-ready values (times in ISO 8601, seconds as numbers)."""
    values = dataclasses.asdict(entry)
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = value.isoformat()
    return values


def _print_history(entries: list[job.JobHistoryEntry], title: str) -> None:
    rows = [
        {
            "job id": str(entry.job_id),
            "outcome": entry.outcome,
            "finished (UTC)": entry.finished_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "took": _seconds(entry.duration),
            "waited": _seconds(entry.wait),
            "tries": f"{entry.attempts}/{entry.max_attempts}",
            "task": entry.task_identifier,
            "queue": entry.queue_name or "",
            "key": entry.key or "",
            "worker": entry.worker_id or "(by hand)",
            "last error": _cut(error_summary(entry.last_error), 80),
        }
        for entry in entries
    ]
    _print_rows(
        rows, title, ("queue", "key", "last error"),
        lambda row: f"{row['job id']}  {row['outcome']}  finished {row['finished (UTC)']} UTC"
                    f"  took {row['took']}  waited {row['waited']}  tries {row['tries']}",
        ("task", "worker"),
    )


@jobs_group.command("history")
@option("--task", help="Only this task identifier.")
@option("--since", help="Only jobs finished since: how long ago (1h, 2d) or an ISO 8601 time.")
@option("--failed", is_flag=True, help="Only jobs that failed for good.")
@option("--limit", type=click.IntRange(min=0), default=100, help="At most this many jobs.")
@common.database_options
@common.json_option
def history_command(
    task: str | None, since: str | None, failed: bool, limit: int, connection: str | None,
    schema: str | None, config_path: Path | None, json_output: bool,
) -> None:
    """Jobs gw workers completed or failed for good, newest first (needs history_retention
    on the workers)."""
    settings = common.load_settings(connection, schema, config_path)

    async def history() -> list[job.JobHistoryEntry]:
        after = parse_since(since) if since is not None else None
        return await _call(settings, lambda worker_utils: worker_utils.list_history(
            task=task, since=after, failed=failed, limit=limit
        ))

    entries = common.run(history())
    if json_output:
        common.print_json([history_to_dict(entry) for entry in entries])
    elif not entries:
        common.stdout.print(
            "no job history (workers record it with history_retention set)", highlight=False
        )
    else:
        _print_history(entries, f"job history in schema {settings.schema_name}")
        if len(entries) == limit:
            common.stderr.print(
                f"showing the newest {limit} jobs; use --limit for more", highlight=False
            )


@jobs_group.command("show")
@argument("job_id", type=int, required=False, help="Job id (or --key).")
@option("--key", help="The job's key instead of its id.")
@common.database_options
@common.json_option
def show_command(
    job_id: int | None, key: str | None, connection: str | None, schema: str | None,
    config_path: Path | None, json_output: bool,
) -> None:
    """Show one job, by id or by --key, payload included."""
    if (job_id is None) == (key is None):
        common.fail("gw jobs show: give a job id or --key KEY (one of them)", EXIT_USAGE)
    settings = common.load_settings(connection, schema, config_path)

    values = job_to_dict(common.run(_call(
        settings, lambda worker_utils: worker_utils.get_job(job_id, key=key)
    )))
    if json_output:
        common.print_json(values)
        return
    payload = values.pop("payload")
    values["flags"] = ", ".join(values["flags"]) if values["flags"] else None
    width = max(len(name) for name in values)
    for name, value in values.items():
        common.stdout.print(f"{name:<{width}}  {'' if value is None else value}",
                            highlight=False, markup=False, soft_wrap=True)
    common.stdout.print(f"{'payload':<{width}}", highlight=False)
    common.stdout.print_json(data=payload)


@jobs_group.command("complete")
@job_ids_argument
@common.database_options
@common.json_option
def complete_command(
    job_ids: tuple[int, ...], connection: str | None, schema: str | None,
    config_path: Path | None, json_output: bool,
) -> None:
    """Mark jobs as done (deletes them). Jobs a worker holds are left alone."""
    settings = common.load_settings(connection, schema, config_path)

    completed = common.run(_call(
        settings, lambda worker_utils: worker_utils.complete_jobs(job_ids)
    ))
    _report(completed, job_ids, "completed", json_output)


@jobs_group.command("fail")
@job_ids_argument
@option("--reason", help="Stored as last_error.")
@common.database_options
@common.json_option
def fail_command(
    job_ids: tuple[int, ...], reason: str | None, connection: str | None, schema: str | None,
    config_path: Path | None, json_output: bool,
) -> None:
    """Fail jobs for good: they will not run again. Jobs a worker holds are left alone."""
    settings = common.load_settings(connection, schema, config_path)

    failed = common.run(_call(
        settings, lambda worker_utils: worker_utils.permanently_fail_jobs(job_ids, reason)
    ))
    _report(failed, job_ids, "failed", json_output)


@jobs_group.command("cancel")
@job_ids_argument
@common.database_options
@common.json_option
def cancel_command(
    job_ids: tuple[int, ...], connection: str | None, schema: str | None,
    config_path: Path | None, json_output: bool,
) -> None:
    """Cancel jobs: they will not run again. A job not running is failed for good now
    (last_error "cancelled"); a job a gw worker runs is aborted and then failed; a job a
    reference (Node.js) worker runs cannot be interrupted, only marked."""
    settings = common.load_settings(connection, schema, config_path)

    results = common.run(_call(
        settings, lambda worker_utils: worker_utils.cancel_jobs(job_ids)
    ))
    if json_output:
        common.print_json([
            {"job_id": r.job_id, "outcome": r.outcome.value, "worker_id": r.worker_id}
            for r in results
        ])
    else:
        for result in results:
            common.stdout.print(
                f"job {result.job_id}: {_cancel_line(result)}", highlight=False, markup=False
            )
    missing = [str(r.job_id) for r in results if r.outcome.value == "not_found"]
    if missing:
        common.fail(f"job(s) {', '.join(missing)} not found", EXIT_FAILURE)


def _cancel_line(result: job_input.JobCancellation) -> str:
    from graphile_worker_cli.job_input import CancelOutcome

    return {
        CancelOutcome.CANCELLED: "cancelled (failed for good)",
        CancelOutcome.REQUESTED: (
            f"cancel requested (running on worker {result.worker_id}): it is aborted, "
            "then failed for good as cancelled"
        ),
        CancelOutcome.MARKED: (
            f"running on {result.worker_id}, a worker gw cannot interrupt (a reference "
            "worker?): marked only; it runs on and will not run again"
        ),
        CancelOutcome.ALREADY_FAILED: "already failed for good; left as it is",
        CancelOutcome.NOT_FOUND: "not found",
    }[result.outcome]


@jobs_group.command("reschedule")
@job_ids_argument
@run_at_option
@delay_option
@priority_option
@option("--attempts", type=int, help="Set the attempt count (0 = fresh).")
@max_attempts_option
@common.database_options
@common.json_option
def reschedule_command(
    job_ids: tuple[int, ...], run_at: str | None, delay: str | None, priority: int | None,
    attempts: int | None, max_attempts: int | None, connection: str | None,
    schema: str | None, config_path: Path | None, json_output: bool,
) -> None:
    """Change when and how jobs run. Jobs a worker holds are left alone."""
    settings = common.load_settings(connection, schema, config_path)

    from graphile_worker_cli import job_input

    async def reschedule() -> list[job.Job]:
        options = job_input.RescheduleJobOptions(
            run_at=when(run_at, delay), priority=priority, attempts=attempts,
            max_attempts=max_attempts,
        )
        if options == job_input.RescheduleJobOptions():
            raise BadInputError(
                "nothing to change: give --run-at, --delay, --priority, --attempts "
                "or --max-attempts"
            )
        return await _call(
            settings, lambda worker_utils: worker_utils.reschedule_jobs(job_ids, options)
        )

    _report(common.run(reschedule()), job_ids, "rescheduled", json_output)


@jobs_group.command("remove")
@argument("job_key", help="Job key.")
@common.database_options
@common.json_option
def remove_command(
    job_key: str, connection: str | None, schema: str | None, config_path: Path | None,
    json_output: bool,
) -> None:
    """Remove the job with this key. A job a worker holds loses its key instead, and will
    not run again after the current attempt."""
    settings = common.load_settings(connection, schema, config_path)

    removed = common.run(_call(
        settings, lambda worker_utils: worker_utils.remove_job(job_key)
    ))
    if removed is None:
        common.fail(f"no job with key {job_key!r}", EXIT_FAILURE)
    if json_output:
        common.print_json(job_to_dict(removed))
    elif removed.locked_at is not None:
        common.stdout.print(
            f"job {removed.id} is locked by {removed.locked_by}: its key was removed and it "
            "will not run again after this attempt", highlight=False, markup=False,
        )
    else:
        common.stdout.print(f"removed job {removed.id}", highlight=False)


# --- gw cleanup -----------------------------------------------------------------------------


@command("cleanup", short_help="Delete unused task names and queues, failed jobs.")
@option(
    "--task", multiple=True,
    help="GC_TASK_IDENTIFIERS, GC_JOB_QUEUES or DELETE_PERMAFAILED_JOBS (repeatable; "
    "default: the two GC tasks).",
)
@option("--keep-task", multiple=True,
        help="Task identifier GC_TASK_IDENTIFIERS keeps (repeatable).")
@common.database_options
@common.json_option
def cleanup_command(
    task: tuple[str, ...], keep_task: tuple[str, ...], connection: str | None,
    schema: str | None, config_path: Path | None, json_output: bool,
) -> None:
    """Delete unused task identifiers and queues, and permanently failed jobs."""
    settings = common.load_settings(connection, schema, config_path)

    from graphile_worker_cli import job_input
    from graphile_worker_cli.worker_utils import configured_worker_utils

    async def cleanup() -> dict[job_input.CleanupTask, int]:
        tasks = [job_input.cleanup_task(name) for name in task] if task else None
        async with configured_worker_utils(settings) as worker_utils:
            if tasks is None:
                return await worker_utils.cleanup(task_identifiers_to_keep=keep_task or ())
            return await worker_utils.cleanup(tasks, keep_task or ())

    deleted = common.run(cleanup())
    if json_output:
        common.print_json({name.value: count for name, count in deleted.items()})
        return
    for name, count in deleted.items():
        common.stdout.print(f"{name.value}: deleted {count}", highlight=False)
