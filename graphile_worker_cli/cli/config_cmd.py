"""``gw config show``: the effective settings, where each came from, passwords hidden."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from graphile_worker_cli import durations
from graphile_worker_cli.cli import common

if TYPE_CHECKING:
    from graphile_worker_cli import config
else:
    config = common.lazy_module("graphile_worker_cli.config")

config_app = typer.Typer(
    name="config",
    help="Inspect gw's configuration.",
    no_args_is_help=True,
)

def _source_label(source: str) -> str:
    return {
        config.SOURCE_DEFAULT: "default",
        config.SOURCE_FILE: "config file",
        config.SOURCE_ENV: "environment",
        config.SOURCE_CLI: "command line",
    }[source]


def _display(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in config.DURATION_KEYS:
        return durations.format_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value) if value else "[]"
    return str(value)


@config_app.command("show")
def show(
    connection: common.ConnectionOption = None,
    schema: common.SchemaOption = None,
    config_path: common.ConfigOption = None,
    json_output: common.JsonOption = False,
) -> None:
    """Print the effective settings (defaults < config file < environment < flags)."""
    settings = common.load_settings(connection, schema, config_path)
    values = settings.redacted()
    config_file = str(settings.config_file) if settings.config_file is not None else None
    if json_output:
        common.print_json(
            {"config_file": config_file, "settings": values, "sources": settings.sources}
        )
        return
    if config_file is None:
        common.stdout.print("config file: none", highlight=False)
    else:
        common.stdout.print(f"config file: {config_file}", highlight=False)
    table = common.table("key", "value", "source", box=None, pad_edge=False)
    sources = settings.sources
    for key, value in values.items():
        table.add_row(key, _display(key, value), _source_label(sources[key]))
    common.stdout.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group to the app."""
    app.add_typer(config_app)
