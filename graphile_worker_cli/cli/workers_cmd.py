"""``gw workers list|check|sweep|force-unlock``: the worker registry and dead-worker
recovery."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from graphile_worker_cli import durations
from graphile_worker_cli.cli import common

if TYPE_CHECKING:
    from graphile_worker_cli import config, embedded, recovery
else:
    config = common.lazy_module("graphile_worker_cli.config")
    embedded = common.lazy_module("graphile_worker_cli.embedded")
    recovery = common.lazy_module("graphile_worker_cli.recovery")
from graphile_worker_cli.errors import BadInputError

workers_app = typer.Typer(
    name="workers",
    help="Inspect gw workers and recover the jobs of dead ones.",
    no_args_is_help=True,
)

ThresholdOption = Annotated[
    str | None,
    typer.Option(
        "--threshold",
        help="Heartbeat age after which a registered worker is dead (default: sweep_threshold).",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(workers_app)


@asynccontextmanager
async def _connection(settings: config.Settings) -> AsyncIterator[recovery.Executor]:
    """A connection to a migrated schema with gw's registry; database errors become one line."""
    async with (
        embedded.database_url(settings) as url,
        recovery.registry_connection(url, settings.schema_name) as conn,
    ):
        yield conn


def _duration(option: str, value: str | None) -> float | None:
    """A duration flag in seconds; a bad one is one line naming the flag, exit code 2."""
    if value is None:
        return None
    try:
        return durations.parse_duration(value)
    except BadInputError as error:
        common.fail(f"option {option}: {error.message}", error.exit_code)


def _age(seconds: float) -> str:
    return durations.format_duration(round(seconds)) if seconds >= 1 else f"{int(seconds * 1000)}ms"


def _state(row: recovery.ActiveWorkerRow) -> str:
    if row.stale:
        return "[red]stale[/]"
    if row.late:
        # Its process still holds its session: stalled or busy, never swept.
        return "[yellow]late (session alive)[/]"
    return "[green]alive[/]"


def _print_workers(
    rows: list[recovery.ActiveWorkerRow], holders: list[recovery.LockHolderRow]
) -> None:
    table = common.table(
        "id", "host", "pid", "age", "last heartbeat", "longest stall", "jobs", "queues", "state",
        title="registered gw workers", title_justify="left",
    )
    for row in rows:
        table.add_row(
            row.id, row.host, str(row.pid), _age(row.age), f"{_age(row.heartbeat_age)} ago",
            "-" if row.longest_stall is None else _age(row.longest_stall),
            str(row.jobs_held), str(row.queues_held), _state(row),
        )
    if rows:
        common.stdout.print(table)
    else:
        common.stdout.print("no registered gw workers")
    if holders:
        other = common.table(
            "id", "jobs", "oldest lock",
            title="unregistered lock holders (never swept; 4-hour rule only)",
            title_justify="left",
        )
        for holder in holders:
            other.add_row(holder.id, str(holder.jobs_held), holder.oldest_lock_at.isoformat())
        common.stdout.print(other)


@workers_app.command("list")
def list_command(
    connection: common.ConnectionOption = None,
    schema: common.SchemaOption = None,
    config_path: common.ConfigOption = None,
    threshold: ThresholdOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """List registered workers (age, heartbeat, jobs held, stale or not) and other lock holders."""
    settings = common.load_settings(
        connection, schema, config_path, sweep_threshold=_duration("--threshold", threshold)
    )

    async def main() -> tuple[list[recovery.ActiveWorkerRow], list[recovery.LockHolderRow]]:
        async with _connection(settings) as conn:
            rows = await recovery.list_active_workers(
                conn, settings.schema_name, threshold=settings.sweep_threshold
            )
            holders = await recovery.list_unregistered_lock_holders(conn, settings.schema_name)
        return rows, holders

    rows, holders = common.run(main())
    if as_json:
        common.print_json(
            {
                "workers": [dataclasses.asdict(row) for row in rows],
                "unregistered_lock_holders": [dataclasses.asdict(h) for h in holders],
            }
        )
    else:
        _print_workers(rows, holders)


@workers_app.command("check")
def check_command(
    connection: common.ConnectionOption = None,
    schema: common.SchemaOption = None,
    config_path: common.ConfigOption = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Host the worker runs on (default: this machine's name).",
                     show_default=False),
    ] = None,
    pid: Annotated[
        int | None,
        typer.Option("--pid", help="Only the worker with this process id.", show_default=False),
    ] = None,
    max_age: Annotated[
        str | None,
        typer.Option("--max-age", help="Oldest acceptable heartbeat "
                     "(default: 3 x heartbeat_interval).", show_default=False),
    ] = None,
) -> None:
    """Exit 0 when a gw worker of this host (or --host/--pid) heartbeated recently, else 1:
    a probe for monitoring, readiness or liveness checks."""
    settings = common.load_settings(connection, schema, config_path)
    wanted_host = host if host is not None else socket.gethostname()
    limit = _duration("--max-age", max_age)
    if limit is None:
        limit = 3 * settings.heartbeat_interval

    async def main() -> list[recovery.ActiveWorkerRow]:
        async with _connection(settings) as conn:
            return await recovery.list_active_workers(conn, settings.schema_name)

    rows = [
        row for row in common.run(main())
        if row.host == wanted_host and (pid is None or row.pid == pid)
    ]
    who = f"host {wanted_host}" + (f", pid {pid}" if pid is not None else "")
    fresh = [row for row in rows if row.heartbeat_age <= limit]
    if not fresh:
        seen = (
            f"last heartbeat {_age(min(row.heartbeat_age for row in rows))} ago"
            if rows else "none registered"
        )
        common.fail(
            f"no gw worker of {who} heartbeated within {_age(limit)} ({seen})"
        )
    newest = min(fresh, key=lambda row: row.heartbeat_age)
    common.stdout.print(
        f"ok: {len(fresh)} gw worker(s) of {who}, last heartbeat "
        f"{_age(newest.heartbeat_age)} ago", highlight=False,
    )


@workers_app.command("sweep")
def sweep_command(
    connection: common.ConnectionOption = None,
    schema: common.SchemaOption = None,
    config_path: common.ConfigOption = None,
    threshold: ThresholdOption = None,
    recovery_delay: Annotated[
        str | None,
        typer.Option(
            "--recovery-delay",
            help="Delay before recovered jobs may run (default: recovery_delay).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be recovered; change nothing.")
    ] = False,
    as_json: common.JsonOption = False,
) -> None:
    """Recover the jobs of registered workers whose heartbeat is older than the threshold."""
    settings = common.load_settings(
        connection,
        schema,
        config_path,
        sweep_threshold=_duration("--threshold", threshold),
        recovery_delay=_duration("--recovery-delay", recovery_delay),
    )
    options = recovery.SweepStaleWorkersOptions(
        threshold=settings.sweep_threshold,
        recovery_delay=settings.recovery_delay,
        dry_run=dry_run,
    )

    async def main() -> recovery.SweepStaleWorkersResult:
        async with _connection(settings) as conn:
            return await recovery.sweep_stale_workers(conn, settings.schema_name, options)

    result = common.run(main())
    if as_json:
        payload: dict[str, Any] = dataclasses.asdict(result)
        payload["recovered_count"] = result.recovered_count
        common.print_json(payload)
        return
    if result.skipped:
        common.stdout.print("another sweep is running; nothing done")
        return
    verb = "would recover" if dry_run else "recovered"
    if not result.worker_ids:
        common.stdout.print("no dead workers")
        return
    common.stdout.print(
        f"{verb} {result.recovered_count} job(s) and {len(result.unlocked_queue_names)} "
        f"queue(s) from {len(result.worker_ids)} dead worker(s): {', '.join(result.worker_ids)}",
        highlight=False,
    )


@workers_app.command("force-unlock")
def force_unlock_command(
    ids: Annotated[list[str], typer.Argument(help="Worker ids (locked_by values) to unlock.")],
    connection: common.ConnectionOption = None,
    schema: common.SchemaOption = None,
    config_path: common.ConfigOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Unlock even workers whose heartbeat is fresh.")
    ] = False,
) -> None:
    """Release the jobs and queues locked by the given workers (only for dead workers)."""
    settings = common.load_settings(connection, schema, config_path)

    async def main() -> int:
        async with _connection(settings) as conn:
            if not force:
                rows = await recovery.list_active_workers(
                    conn, settings.schema_name, threshold=settings.sweep_threshold
                )
                alive = [row.id for row in rows if row.id in ids and not row.stale]
                if alive:
                    raise BadInputError(
                        f"worker(s) {', '.join(alive)} are alive (fresh heartbeat): unlocking "
                        "their jobs would run them twice; pass --force if you are sure"
                    )
            return await recovery.force_unlock_workers(conn, settings.schema_name, ids)

    held = common.run(main())
    common.stdout.print(f"unlocked {held} job(s) held by {', '.join(ids)}", highlight=False)
