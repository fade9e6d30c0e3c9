"""``gw config show``: the effective settings, where each came from, passwords hidden."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphile_worker_cli import durations
from graphile_worker_cli.cli import common
from graphile_worker_cli.cli.commands import group

if TYPE_CHECKING:
    from graphile_worker_cli import config
else:
    config = common.lazy_module("graphile_worker_cli.config")

config_group = group("config", help="Inspect gw's configuration.", no_args_is_help=True)


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


@config_group.command("show")
@common.database_options
@common.json_option
def show(
    connection: str | None, schema: str | None, config_path: Path | None, json_output: bool
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

