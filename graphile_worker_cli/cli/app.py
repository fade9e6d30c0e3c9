"""The typer application; each command group lives in its own module with ``register``.

``gw <command> ...`` imports only that command's module (a worker start-up does not pay for
the admin UI, the jobs API or the tables of the other commands); anything else
(``gw --help``, an unknown command) builds the whole application. ``app`` — the whole
application — is built on first access.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

MODULES = ("run_cmd", "migrate_cmd", "jobs_cmd", "config_cmd", "cron_cmd", "workers_cmd",
           "admin_cmd")
"""Command modules, in the order their commands are listed."""

COMMAND_MODULES = {
    "run": "run_cmd",
    "migrate": "migrate_cmd",
    "jobs": "jobs_cmd",
    "add-job": "jobs_cmd",
    "cleanup": "jobs_cmd",
    "config": "config_cmd",
    "cron": "cron_cmd",
    "workers": "workers_cmd",
    "admin": "admin_cmd",
}
"""The module that registers each top-level command."""


def build_app(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    """An application with the commands of ``modules`` (``graphile_worker_cli.cli.<name>``)."""
    application = typer.Typer(
        name="gw",
        help="Graphile Worker for Python: run and manage a PostgreSQL job queue.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in modules:
        importlib.import_module(f"graphile_worker_cli.cli.{name}").register(application)
    return application


_full: typer.Typer | None = None


def full_app() -> typer.Typer:
    """The application with every command (and ``gw --version``)."""
    global _full
    if _full is None:
        _full = build_app()
        _full.callback()(_root)
    return _full


def version_line() -> str:
    """gw's version and the protocol it speaks, for ``gw --version`` and bug reports."""
    import platform

    from graphile_worker_cli import __version__, migrate

    return (
        f"gw {__version__} (Graphile Worker {migrate.PROTOCOL_VERSION} protocol, "
        f"{migrate.LATEST_MIGRATION} migrations; Python {platform.python_version()})"
    )


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True,
        help="Print gw's version and the Graphile Worker protocol it speaks, and exit.",
    ),
) -> None:
    """Graphile Worker for Python: run and manage a PostgreSQL job queue."""


def __getattr__(name: str) -> Any:
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    module = COMMAND_MODULES.get(sys.argv[1]) if len(sys.argv) > 1 else None
    if module is None:
        full_app()()
        return
    application = build_app((module,))

    @application.callback()
    def _group() -> None:
        """Keep the command a subcommand (a one-command typer app would drop its name)."""

    application()
