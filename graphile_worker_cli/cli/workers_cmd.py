"""``gw workers list|check|sweep|force-unlock``: the worker registry and dead-worker
recovery."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphile_worker_cli import durations
from graphile_worker_cli.cli import common
from graphile_worker_cli.cli.commands import argument, group, option

if TYPE_CHECKING:
    from graphile_worker_cli import config, embedded, recovery
else:
    config = common.lazy_module("graphile_worker_cli.config")
    embedded = common.lazy_module("graphile_worker_cli.embedded")
    recovery = common.lazy_module("graphile_worker_cli.recovery")
from graphile_worker_cli.errors import BadInputError

workers_group = group(
    "workers", help="Inspect gw workers and recover the jobs of dead ones.", no_args_is_help=True
)

threshold_option = option(
    "--threshold",
    help="Heartbeat age after which a registered worker is dead (default: sweep_threshold).",
)


@asynccontextmanager
async def _connection(settings: config.Settings) -> AsyncIterator[recovery.Executor]:
    """A connection to a migrated schema with gw's registry; database errors become one line."""
    async with (
        embedded.database_url(settings) as url,
        recovery.registry_connection(
            url, settings.schema_name, prepared_statements=settings.prepared_statements
        ) as conn,
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


def _connections(row: recovery.ActiveWorkerRow) -> str:
    """Its connection budget as ``pool+sessions`` (``-`` when it did not report one)."""
    if row.pool_connections is None or row.session_connections is None:
        return "-"
    return f"{row.pool_connections}+{row.session_connections}"


def _print_workers(
    rows: list[recovery.ActiveWorkerRow], holders: list[recovery.LockHolderRow]
) -> None:
    table = common.table(
        "id", "host", "pid", "age", "last heartbeat", "longest stall", "conns", "jobs",
        "queues", "state", title="registered gw workers", title_justify="left",
    )
    for row in rows:
        table.add_row(
            row.id, row.host, str(row.pid), _age(row.age), f"{_age(row.heartbeat_age)} ago",
            "-" if row.longest_stall is None else _age(row.longest_stall),
            _connections(row), str(row.jobs_held), str(row.queues_held), _state(row),
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


@workers_group.command("list")
@common.database_options
@threshold_option
@common.json_option
def list_command(
    connection: str | None, schema: str | None, config_path: Path | None,
    threshold: str | None, json_output: bool,
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
    if json_output:
        common.print_json(
            {
                "workers": [dataclasses.asdict(row) for row in rows],
                "unregistered_lock_holders": [dataclasses.asdict(h) for h in holders],
            }
        )
    else:
        _print_workers(rows, holders)


@workers_group.command("check")
@common.database_options
@option("--host", help="Host the worker runs on (default: this machine's name).")
@option("--pid", type=int, help="Only the worker with this process id.")
@option("--max-age", help="Oldest acceptable heartbeat (default: 3 x heartbeat_interval).")
def check_command(
    connection: str | None, schema: str | None, config_path: Path | None, host: str | None,
    pid: int | None, max_age: str | None,
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


@workers_group.command("sweep")
@common.database_options
@threshold_option
@option("--recovery-delay",
        help="Delay before recovered jobs may run (default: recovery_delay).")
@option("--dry-run", is_flag=True, help="Report what would be recovered; change nothing.")
@common.json_option
def sweep_command(
    connection: str | None, schema: str | None, config_path: Path | None,
    threshold: str | None, recovery_delay: str | None, dry_run: bool, json_output: bool,
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
    if json_output:
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


@workers_group.command("force-unlock")
@argument("ids", nargs=-1, help="Worker ids (locked_by values) to unlock.")
@common.database_options
@option("--force", is_flag=True, help="Unlock even workers whose heartbeat is fresh.")
def force_unlock_command(
    ids: tuple[str, ...], connection: str | None, schema: str | None,
    config_path: Path | None, force: bool,
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
