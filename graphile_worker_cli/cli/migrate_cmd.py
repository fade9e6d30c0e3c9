"""``gw migrate``: bring the Graphile Worker schema up to date (or show where it stands)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from graphile_worker_cli.cli import common
from graphile_worker_cli.cli.commands import command, option

if TYPE_CHECKING:
    from graphile_worker_cli import logs, migrate
else:
    logs = common.lazy_module("graphile_worker_cli.logs")
    migrate = common.lazy_module("graphile_worker_cli.migrate")


@command("migrate", short_help="Migrate the schema (Graphile Worker 0.18.0, then gw's).")
@common.database_options
@option("--status", is_flag=True, help="Only show the schema's migration, change nothing.")
@common.json_option
@option("--database-wait",
        help="Wait this long for an unreachable database (an init container started before "
        "PostgreSQL), e.g. 60s (default 0s).")
@option("--verbose", "-v", count=True, help="More logs (repeat for more).")
def migrate_command(
    connection: str | None, schema: str | None, config_path: Path | None, status: bool,
    json_output: bool, database_wait: str | None, verbose: int,
) -> None:
    """Migrate the schema to Graphile Worker 0.18.0's (20 migrations), then gw's own.

    Exit code 57 when the database has a breaking migration newer than this gw knows.
    """
    settings = common.load_settings(connection, schema, config_path, database_wait=database_wait)
    logs.configure(
        fmt=settings.log_format,
        level=logs.level_from_verbosity(verbose, 0, default=settings.log_level),
    )
    if verbose == 0:
        # the summary line on stdout already says what the migrate logger would say
        logging.getLogger(migrate.logger.name).setLevel(logging.WARNING)
    name = settings.schema_name
    result = common.run(migrate.migrate_configured_database(settings, only_status=status))
    if json_output:
        common.print_json(_as_dict(result))
        return
    common.stdout.print(_summary(name, result), highlight=False, markup=False, soft_wrap=True)


def _summary(schema: str, result: migrate.MigrationResult) -> str:
    status = result.status
    if status.latest is None:
        return f"Schema {schema} is not migrated (gw supports up to {migrate.LATEST_MIGRATION})"
    line = f"Schema {schema} is at migration {status.latest} (applied {len(result.applied)} now)"
    if status.gw_latest is not None:
        line += f"; gw migrations at {status.gw_latest} (applied {len(result.gw_applied)} now)"
    return line


def _as_dict(result: migrate.MigrationResult) -> dict[str, object]:
    status = result.status
    return {
        "schema": status.schema,
        "migration": status.latest,
        "latest_breaking": status.latest_breaking,
        "gw_migration": status.gw_latest,
        "applied": result.applied,
        "gw_applied": result.gw_applied,
        "supported": migrate.LATEST_MIGRATION,
    }
