"""``gw admin``: serve the admin dashboard (page + JSON API) with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from graphile_worker_cli.cli import common
from graphile_worker_cli.errors import (
    EXIT_USAGE,
    BadInputError,
    CrontabError,
)

if TYPE_CHECKING:
    from graphile_worker_cli import cron
    from graphile_worker_cli.admin import AdminAuth
else:
    cron = common.lazy_module("graphile_worker_cli.cron")

TOKEN_ENV = "GW_ADMIN_TOKEN"
DEFAULT_CRONTAB = Path("crontab")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("admin", short_help="Serve the admin dashboard (jobs, queues, workers, cron).")(
        admin_command
    )


def admin_command(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback unless auth is set).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 5678,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything, change nothing (writes 403).")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help=f"Bearer token required on every request, at least 16 "
            f"characters (env {TOKEN_ENV}).",
            show_default=False,
        ),
    ] = None,
    basic_auth: Annotated[
        str | None,
        typer.Option("--basic-auth", help="HTTP basic credentials user:password.",
                     show_default=False),
    ] = None,
    crontab: Annotated[
        Path | None,
        typer.Option("--crontab", help="Crontab file for next run times (default: config, "
                     "./crontab when present).", show_default=False),
    ] = None,
    connection: common.ConnectionOption = None,
    schema: common.SchemaOption = None,
    config_path: common.ConfigOption = None,
) -> None:
    """Serve the admin dashboard: overview, jobs, queues, workers, crontabs, maintenance.

    Listens on 127.0.0.1:5678 by default. Listening on any other address needs --token
    (or GW_ADMIN_TOKEN) or --basic-auth. Log in with a token at /?token=TOKEN.
    """
    try:
        from graphile_worker_cli import admin
    except ImportError as error:
        common.fail(
            f"gw admin needs the admin extra ({error.name} is missing): "
            "pip install 'graphile-worker-cli[admin]'", EXIT_USAGE,
        )
    try:
        auth = admin.AdminAuth.from_options(token or os.environ.get(TOKEN_ENV), basic_auth)
    except BadInputError as error:
        common.fail(error.message, EXIT_USAGE)
    check_bind(host, auth)
    settings = common.load_settings(connection, schema, config_path)
    crontabs = _crontabs(crontab or settings.crontab)
    from graphile_worker_cli.admin import server

    def announce(bound: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        mode = " (read-only)" if read_only else ""
        common.stderr.print(
            f"gw admin{mode}: http://{shown}:{bound}/ · schema {settings.schema_name} · "
            f"auth {auth.describe()}",
            highlight=False, markup=False, soft_wrap=True,
        )

    common.run(server.serve(
        settings, host=host, port=port, auth=auth, read_only=read_only, crontabs=crontabs,
        on_listening=announce,
    ))


def check_bind(host: str, auth: AdminAuth) -> None:
    """Refuse to listen beyond loopback with no authentication (exit 2)."""
    from graphile_worker_cli import admin

    if not auth.configured and not admin.is_loopback_host(host):
        common.fail(
            f"refusing to serve the dashboard on {host} without authentication: "
            f"pass --token (or {TOKEN_ENV}) or --basic-auth user:password, "
            "or listen on 127.0.0.1",
            EXIT_USAGE,
        )


def _crontabs(path: Path | None) -> list[cron.Crontab]:
    if path is None:
        if not DEFAULT_CRONTAB.is_file():
            return []
        path = DEFAULT_CRONTAB
    try:
        return cron.parse_crontab_file(path)
    except CrontabError as error:
        common.fail(error.message, EXIT_USAGE)
