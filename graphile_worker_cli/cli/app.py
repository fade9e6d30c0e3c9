"""The typer application; each command group lives in its own module with ``register``.

``gw <command> ...`` imports only that command's module (a worker start-up does not pay for
the admin UI, the jobs API or the tables of the other commands); anything else
(``gw --help``, an unknown command) builds the whole application. ``app`` — the whole
application — is built on first access. ``gw --version`` builds nothing.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

HELP = "Graphile Worker for Python: run and manage a PostgreSQL job queue."
EPILOG = (
    "The common options -c/--connection, -s/--schema and --config may also come before "
    "the command: gw -c URL jobs list."
)


def build_app(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    """An application with the commands of ``modules`` (``graphile_worker_cli.cli.<name>``)."""
    import typer

    from graphile_worker_cli.cli import common

    common.install_usage_errors()
    application = typer.Typer(
        name="gw",
        help=HELP,
        epilog=EPILOG,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    for name in modules:
        importlib.import_module(f"graphile_worker_cli.cli.{name}").register(application)
    _whole_summaries(application)
    return application


def _whole_summaries(application: typer.Typer) -> None:
    """Give each command its first sentence as the summary command lists show: click would
    cut a longer one to the terminal's width ("...") rather than wrap it."""
    import inspect
    import re

    for command in application.registered_commands:
        if command.short_help is None and command.callback is not None:
            doc = inspect.getdoc(command.callback) or ""
            first = re.split(r"\.\s", doc, maxsplit=1)[0]
            command.short_help = " ".join(first.split()).rstrip(".") + "."
    for group in application.registered_groups:
        if group.typer_instance is not None:
            _whole_summaries(group.typer_instance)


_full: typer.Typer | None = None


def full_app() -> typer.Typer:
    """The application with every command (and ``gw --version``)."""
    global _full
    if _full is None:
        import typer

        def print_version(value: bool) -> None:
            if value:
                typer.echo(version_line())
                raise typer.Exit()

        def root(
            version: bool = typer.Option(
                False, "--version", callback=print_version, is_eager=True,
                help="Print gw's version and the Graphile Worker protocol it speaks, and exit.",
            ),
        ) -> None:
            """Graphile Worker for Python: run and manage a PostgreSQL job queue."""

        _full = build_app()
        _full.callback(epilog=EPILOG)(root)
    return _full


def version_line() -> str:
    """gw's version and the protocol it speaks, for ``gw --version`` and bug reports."""
    import platform

    from graphile_worker_cli import __version__, protocol

    return (
        f"gw {__version__} (Graphile Worker {protocol.PROTOCOL_VERSION} protocol, "
        f"{protocol.LATEST_MIGRATION} migrations; Python {platform.python_version()})"
    )


def __getattr__(name: str) -> Any:
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Options every database command takes, which may also come before the command name
# (`gw -c URL jobs list`): each takes one value.
_COMMON_OPTIONS = frozenset({"-c", "--connection", "-s", "--schema", "--config"})


def hoist_common_options(args: list[str]) -> list[str]:
    """``args`` with common options given before the command moved after it.

    Click reads a group's options before the command name and a command's after it; gw's
    common options belong to the commands, so ``-c URL jobs list`` becomes
    ``jobs list -c URL`` (appended last, before any ``--``, so nested commands see them).
    Anything else before the command is left alone for click to judge.
    """
    leading: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name = arg.split("=", 1)[0]
        if name not in _COMMON_OPTIONS:
            break
        if "=" in arg and name.startswith("--"):
            leading.append(arg)
            index += 1
        elif index + 1 < len(args):
            leading += args[index:index + 2]
            index += 2
        else:
            break
    if not leading:
        return args
    rest = args[index:]
    if "--" in rest:
        cut = rest.index("--")
        return rest[:cut] + leading + rest[cut:]
    return rest + leading


def main() -> None:
    sys.argv[1:] = hoist_common_options(sys.argv[1:])
    if sys.argv[1:] == ["--version"]:
        # Answered without building the application (or importing typer at all).
        sys.stdout.write(version_line() + "\n")
        return
    module = COMMAND_MODULES.get(sys.argv[1]) if len(sys.argv) > 1 else None
    if module is None:
        full_app()()
        return
    application = build_app((module,))

    @application.callback()
    def _group() -> None:
        """Keep the command a subcommand (a one-command typer app would drop its name)."""

    application()
