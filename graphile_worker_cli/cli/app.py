"""The typer application; each command group lives in its own module with ``register``."""

from __future__ import annotations

import typer

from graphile_worker_cli.cli import (
    admin_cmd,
    config_cmd,
    cron_cmd,
    jobs_cmd,
    migrate_cmd,
    run_cmd,
    workers_cmd,
)

app = typer.Typer(
    name="gw",
    help="Graphile Worker for Python: run and manage a PostgreSQL job queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (run_cmd, migrate_cmd, jobs_cmd, config_cmd, cron_cmd, workers_cmd, admin_cmd):
    module.register(app)


def main() -> None:
    app()
