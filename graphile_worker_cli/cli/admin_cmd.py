"""``gw admin``: serve the admin dashboard (page + JSON API) with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from graphile_worker_cli.cli import common
from graphile_worker_cli.cli.commands import command, option, path_type
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


@command("admin", short_help="Serve the admin dashboard (jobs, queues, workers, cron).")
@option("--host", default="127.0.0.1",
        help="Address to listen on (loopback unless auth is set).")
@option("--port", type=click.IntRange(0, 65535), default=5678, help="Port.")
@option("--read-only", is_flag=True, help="Show everything, change nothing (writes 403).")
@option("--token", help=f"Bearer token required on every request, at least 16 characters "
        f"(env {TOKEN_ENV}).")
@option("--basic-auth", help="HTTP basic credentials user:password.")
@option("--crontab", type=path_type(),
        help="Crontab file for next run times (default: config, ./crontab when present).")
@common.database_options
def admin_command(
    host: str, port: int, read_only: bool, token: str | None, basic_auth: str | None,
    crontab: Path | None, connection: str | None, schema: str | None,
    config_path: Path | None,
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
